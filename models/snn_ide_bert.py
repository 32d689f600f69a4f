"""Spiking BERT student for general (task-agnostic) knowledge distillation."""
from models.pretrained import SpikingBertPreTrainedModel


class SpikingBertForGeneralKD(SpikingBertPreTrainedModel):
    """forward -> (attention_scores, reps).

    attention_scores: N tensors [B, A, L, L] of pre-softmax masked scores (surrogate's
    in training, mean over T in evaluation); reps: N + 1 tensors [B, L, fit_size],
    fit_dense applied to the embedding population's rate and each layer's output rate.
    """

    def __init__(self, config):
        super().__init__(config)
        self.apply(self.init_weights)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        rates, attention_scores = self.bert(input_ids, token_type_ids, attention_mask)
        return attention_scores, self.fit_representations(rates)

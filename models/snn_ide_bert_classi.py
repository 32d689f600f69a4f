"""Spiking BERT student for sequence classification or regression (num_labels = 1)."""
import logging

import torch
import torch.nn as nn

from models.pretrained import SpikingBertPreTrainedModel

logger = logging.getLogger(__name__)


def mean_rate_per_example(rate, attention_mask):
    """[B, L, W] rates -> [B] mean over real tokens and neurons."""
    mask = attention_mask.to(rate.dtype)
    return (rate.mean(-1) * mask).sum(-1) / mask.sum(-1).clamp(min=1)


class SpikingBertForSequenceClassification(SpikingBertPreTrainedModel):
    """forward -> (logits, attention_scores, reps[, rates]).

    logits = classifier(relu(r_output_N[:, 0])): the [CLS] rate of the last layer, no
    pooler. reps and attention_scores as in SpikingBertForGeneralKD. With
    output_rates=True, also a [B, P] tensor of each population's mean rate over
    real tokens (names: population_names()).
    """

    def __init__(self, config, num_labels):
        super().__init__(config)
        self.config.num_labels = int(num_labels)
        self.classifier = nn.Linear(self.config.hidden_size, self.config.num_labels)
        self.classifier_initialized = True
        self.apply(self.init_weights)

    @classmethod
    def build(cls, config):
        if getattr(config, "num_labels", None) is None:
            raise ValueError("num_labels is neither in the student config nor given")
        return cls(config, config.num_labels)

    def after_loading(self, model_dir):
        """A classifier missing from the checkpoint, or with another label count, stays fresh."""
        fresh = self.loading_info["missing_keys"] + self.loading_info["mismatched_keys"]
        self.classifier_initialized = any(key.startswith("classifier.") for key in fresh)
        if any(key.startswith("classifier.") for key in self.loading_info["mismatched_keys"]):
            logger.warning("%s: the checkpoint's classifier has another label count than %d; "
                           "initialising a new classifier", model_dir, self.config.num_labels)
        elif self.classifier_initialized:
            logger.info("%s: no classifier in the checkpoint; initialising a new one", model_dir)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, output_rates=False):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        rates, attention_scores = self.bert(input_ids, token_type_ids, attention_mask)
        last_output = rates.layer_outputs()[-1]
        logits = self.classifier(torch.relu(last_output[:, 0]))
        reps = self.fit_representations(rates)
        if not output_rates:
            return logits, attention_scores, reps
        per_population = torch.stack([mean_rate_per_example(r.detach(), attention_mask) for r in rates.flat()], 1)
        return logits, attention_scores, reps, per_population

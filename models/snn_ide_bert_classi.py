"""The classification student of task KD (the published code's file name): the backbone of
models/snn_ide_bert.py with a classifier on the last layer's [CLS] spike rate."""
import logging

import torch
import torch.nn as nn

from models.snn_ide_bert import SpikingBertPreTrainedModel

logger = logging.getLogger(__name__)


class SpikingBertForSequenceClassification(SpikingBertPreTrainedModel):
    """The student of task KD: SpikingBertOutput with logits = classifier(relu(r_output_N[:, 0])),
    the [CLS] rate of the last layer, no pooler (num_labels 1: regression)."""

    def __init__(self, config, num_labels):
        super().__init__(config)
        self.config.num_labels = int(num_labels)
        self.classifier = nn.Linear(self.config.hidden_size, self.config.num_labels)
        self.classifier_initialized = True
        self.apply(self.init_weights)

    @classmethod
    def build(cls, config):
        if config.num_labels is None:
            raise ValueError("num_labels is neither in the student config nor given")
        return cls(config, config.num_labels)

    def fresh_weights_allowed(self, key):
        """Also the classifier: a general-KD student, or a head for another label count."""
        return key.startswith("classifier.") or super().fresh_weights_allowed(key)

    def after_loading(self, model_dir, loading_info):
        """A classifier missing from the checkpoint, or with another label count, stays fresh."""
        fresh = loading_info["missing_keys"] + loading_info["mismatched_keys"]
        self.classifier_initialized = any(key.startswith("classifier.") for key in fresh)
        if any(key.startswith("classifier.") for key in loading_info["mismatched_keys"]):
            logger.warning("%s: the checkpoint's classifier has another label count than %d; "
                           "initialising a new classifier", model_dir, self.config.num_labels)
        elif self.classifier_initialized:
            logger.info("%s: no classifier in the checkpoint; initialising a new one", model_dir)

    def logits_of(self, last_output_rates):
        """The logits of the last layer's output rates [B, L, H] (after t_conv steps, or the running rates of an
        unfinished simulation): the classifier on relu of the [CLS] rate."""
        return self.classifier(torch.relu(last_output_rates[:, 0]))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, output_rates=False):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        rates, attention_scores = self.bert(input_ids, token_type_ids, attention_mask)
        logits = self.logits_of(rates.layers[-1].output)
        return self.outputs(rates, attention_scores, attention_mask, output_rates, logits=logits)

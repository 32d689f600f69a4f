"""What both spiking students share: config checks, weight init, loading and saving."""
import copy
import logging
import os

import torch.nn as nn

from modules.snnide_bert_multilayer_modules import SpikingBertModel
from transformer.checkpoint import CONFIG_NAME, load_weights, weights_file
from transformer.modeling import BertConfig, BertPreTrainedModel, load_pretrained_state

logger = logging.getLogger(__name__)

SPIKING_DEFAULTS = dict(t_conv=125, vth=1.0, leaky=1.0, feedback=False, model_type="spiking_bert")


def validate_config(config, source="config"):
    """Fill spiking defaults and reject impossible values with a one-line error naming ``source``."""
    for key, value in SPIKING_DEFAULTS.items():
        if getattr(config, key, None) is None:
            setattr(config, key, value)
    if isinstance(config.t_conv, bool) or int(config.t_conv) != config.t_conv or config.t_conv < 1:
        raise ValueError(f"{source}: t_conv must be an integer >= 1, got {config.t_conv!r}")
    config.t_conv = int(config.t_conv)
    if not config.vth > 0:
        raise ValueError(f"{source}: vth must be > 0, got {config.vth!r}")
    if not 0 <= config.leaky <= 1:
        raise ValueError(f"{source}: leaky must be in [0, 1], got {config.leaky!r}")
    if config.num_hidden_layers < 1:
        raise ValueError(f"{source}: num_hidden_layers must be >= 1, got {config.num_hidden_layers!r}")
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(f"{source}: hidden_size {config.hidden_size} is not divisible by "
                         f"num_attention_heads {config.num_attention_heads}")
    if getattr(config, "fit_size", None) is None:
        config.fit_size = config.hidden_size


class SpikingBertPreTrainedModel(BertPreTrainedModel):
    """Base of the students: spiking backbone ``bert`` and ``fit_dense``; the teacher's init and
    save_pretrained; a lenient from_pretrained.

    ``config`` is copied and validated; the copy is ``self.config``.
    """

    def __init__(self, config):
        config = copy.deepcopy(config)
        validate_config(config)
        super().__init__(config)
        self.bert = SpikingBertModel(self.config)
        self.fit_dense = nn.Linear(self.config.hidden_size, self.config.fit_size)

    def fit_representations(self, rates):
        """fit_dense applied to [embedding rate, each layer's output rate] (N + 1 tensors)."""
        return [self.fit_dense(r) for r in [rates.embedding] + rates.layer_outputs()]

    def population_names(self):
        return self.bert.population_names()

    def num_parameters(self, trainable_only=False):
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @classmethod
    def build(cls, config):
        return cls(config)

    @classmethod
    def from_pretrained(cls, model_dir, **overrides):
        """Student from ``model_dir`` (config.json; weights when present).

        ``overrides`` (e.g. t_conv, vth, leaky, feedback from command-line flags)
        replace config values and are recorded in ``model.config``; None means "not
        given". Without a weights file the model is randomly initialised. Loading
        is lenient (transformer.modeling.load_pretrained_state): missing, unexpected
        and mismatched keys are logged and reported in ``model.loading_info``.
        """
        config = BertConfig.from_pretrained(model_dir)
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        validate_config(config, source=os.path.join(model_dir, CONFIG_NAME))
        model = cls.build(config)
        if weights_file(model_dir) is None:
            logger.info("%s: no weights file; student initialised randomly", model_dir)
        else:
            model.loading_info = load_pretrained_state(model, load_weights(model_dir), source=model_dir)
            model.after_loading(model_dir)
        return model

    def after_loading(self, model_dir):
        """Hook for heads that must know what the checkpoint had."""

"""BERT in plain PyTorch: configuration, model, sequence-classification head."""
import copy
import json
import logging
import os

from transformer.checkpoint import CONFIG_NAME, read_json

logger = logging.getLogger(__name__)


class BertConfig:
    """Plain-data BERT configuration read from a Hugging Face ``config.json``.

    Unknown keys (``model_type``, the spiking student's ``t_conv`` ...) are kept as
    attributes and written back by ``to_dict``.
    """

    defaults = dict(
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
    )

    def __init__(self, **kwargs):
        for key, value in {**self.defaults, **kwargs}.items():
            setattr(self, key, value)

    @classmethod
    def from_dict(cls, values):
        return cls(**values)

    @classmethod
    def from_json_file(cls, path):
        values = read_json(path)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object")
        return cls.from_dict(values)

    @classmethod
    def from_pretrained(cls, model_dir):
        path = os.path.join(model_dir, CONFIG_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{model_dir}: no {CONFIG_NAME} found")
        return cls.from_json_file(path)

    def to_dict(self):
        return copy.deepcopy(self.__dict__)

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json_string())

    def save_pretrained(self, model_dir):
        os.makedirs(model_dir, exist_ok=True)
        self.to_json_file(os.path.join(model_dir, CONFIG_NAME))

    def __repr__(self):
        return f"{type(self).__name__} {self.to_json_string()}"

    def __eq__(self, other):
        return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

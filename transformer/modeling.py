"""BERT in plain PyTorch: configuration, model, sequence-classification and masked-LM heads."""
import copy
import json
import logging
import os
import re
from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from transformer.checkpoint import CONFIG_NAME, load_weights, read_json, save_model_dir, weight_shapes, weights_file

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

    # Keys a config.json may lack, and what a missing one means: read like any attribute, written only when set.
    # num_labels and id2label belong to task models, classifier_head to teachers, fit_size, teacher_size and
    # do_lower_case to spiking students (models/config.py).
    optional = dict(num_labels=None, id2label=None, pad_token_id=0, classifier_head="tinybert", fit_size=None,
                    teacher_size=None, do_lower_case=None)

    def __init__(self, **kwargs):
        for key, value in {**self.defaults, **kwargs}.items():
            setattr(self, key, value)

    def __getattr__(self, name):  # called only for an attribute that is not set
        try:
            return type(self).optional[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no {name!r}") from None

    @classmethod
    def from_dict(cls, values):
        return cls(**values)

    @classmethod
    def from_json_file(cls, path):
        values = read_json(path)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object")
        config = cls.from_dict(values)
        problem = shape_problem(config)
        if problem:
            raise ValueError(f"{path}: {problem}")
        return config

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


def _positive_integer(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Keys of a config.json that build the model: key -> (is the value possible?, what it must be).
SHAPE_CHECKS = {
    **{key: (_positive_integer, "must be an integer >= 1")
       for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                   "max_position_embeddings", "type_vocab_size")},
    **{key: (lambda v: _number(v) and 0 <= v <= 1, "must be a number in [0, 1]")
       for key in ("hidden_dropout_prob", "attention_probs_dropout_prob")},
    "layer_norm_eps": (lambda v: _number(v) and v > 0, "must be a number > 0"),
    "initializer_range": (lambda v: _number(v) and v >= 0, "must be a number >= 0"),
}


def shape_problem(config):
    """Why ``config`` cannot build a BERT ("num_attention_heads must be ..."), or None."""
    for key, (is_possible, requirement) in SHAPE_CHECKS.items():
        value = getattr(config, key)
        if not is_possible(value):
            return f"{key} {requirement}, got {value!r}"
    if config.hidden_size % config.num_attention_heads:
        return f"hidden_size {config.hidden_size} is not divisible by num_attention_heads {config.num_attention_heads}"
    return None


# ----------------------------------------------------------------------------
# Model. Module names follow Hugging Face's BertModel so its checkpoints load as-is.


class BertModelOutput(NamedTuple):
    """What the BERT models return (a NamedTuple, so DataParallel can gather it)."""
    # num_hidden_layers + 1 tensors [B, L, H], the embedding output first.
    hidden_states: List[torch.Tensor]
    # num_hidden_layers pre-softmax masked scores [B, A, L, L].
    attention_scores: List[torch.Tensor]
    # tanh(dense(first token's last hidden state)) [B, H].
    pooled_output: Optional[torch.Tensor] = None
    # BertForSequenceClassification: [B, num_labels].
    logits: Optional[torch.Tensor] = None
    # With output_values: the last layer's value vectors [B, L, H] (MiniLM's value relation).
    last_values: Optional[torch.Tensor] = None

ACTIVATIONS = {
    "gelu": F.gelu,  # exact erf form
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}

CLASSIFIER_HEADS = ("tinybert", "hf")


def get_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"hidden_act {name!r} is not supported (choose from {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]


def extended_attention_mask(attention_mask, dtype):
    """[B, L] 1/0 mask -> [B, 1, 1, L] additive mask: 0 for tokens, -10000 for padding."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * -10000.0


def embed_inputs(embeddings, input_ids, token_type_ids=None, attention_mask=None):
    """(embeddings(ids, segments) [B, L, H], additive mask [B, 1, 1, L]); missing segments are
    all 0 and a missing mask keeps every token, as in BERT."""
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    embedding_output = embeddings(input_ids, token_type_ids)
    return embedding_output, extended_attention_mask(attention_mask, embedding_output.dtype)


class BertEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        seq_length = input_ids.size(1)
        if seq_length > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"sequence length {seq_length} exceeds max_position_embeddings "
                f"{self.position_embeddings.num_embeddings}"
            )
        position_ids = torch.arange(seq_length, device=input_ids.device)
        words = self.word_embeddings(input_ids)
        positions = self.position_embeddings(position_ids)
        token_types = self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(words + positions + token_types))


class BertSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        if config.hidden_size % config.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size {config.hidden_size} is not a multiple of "
                f"num_attention_heads {config.num_attention_heads}"
            )
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def split_heads(self, x):
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, hidden_states, attention_mask):
        """Returns the context [B, L, H] and the masked pre-softmax scores [B, A, L, L]."""
        q = self.split_heads(self.query(hidden_states))
        k = self.split_heads(self.key(hidden_states))
        v = self.split_heads(self.value(hidden_states))
        scores = q @ k.transpose(-1, -2) * self.head_size**-0.5 + attention_mask
        probs = self.dropout(torch.softmax(scores, dim=-1))
        context = (probs @ v).transpose(1, 2).flatten(2)
        return context, scores


class BertResidualOutput(nn.Module):
    """LayerNorm(dropout(dense(x)) + residual): BERT's attention output (``input_size`` H) and layer output
    (``input_size`` I) alike."""

    def __init__(self, config, input_size):
        super().__init__()
        self.dense = nn.Linear(input_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertAttention(nn.Module):
    self_attention_class = BertSelfAttention  # a subclass may use another (the spiking student's)

    def __init__(self, config):
        super().__init__()
        self.self = self.self_attention_class(config)
        self.output = BertResidualOutput(config, config.hidden_size)

    def forward(self, hidden_states, attention_mask):
        context, scores = self.self(hidden_states, attention_mask)
        return self.output(context, hidden_states), scores


class BertIntermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = get_activation(config.hidden_act)

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states))


class BertLayer(nn.Module):
    attention_class = BertAttention  # a subclass may use another (the spiking student's)

    def __init__(self, config):
        super().__init__()
        self.attention = self.attention_class(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertResidualOutput(config, config.intermediate_size)

    def forward(self, hidden_states, attention_mask):
        attention_output, scores = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output), scores


class BertEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden_states, attention_mask):
        all_hidden_states = [hidden_states]
        all_scores = []
        for layer in self.layer:
            hidden_states, scores = layer(hidden_states, attention_mask)
            all_hidden_states.append(hidden_states)
            all_scores.append(scores)
        return all_hidden_states, all_scores


class BertPooler(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states):
        return torch.tanh(self.dense(hidden_states[:, 0]))


# ----------------------------------------------------------------------------
# Loading and saving.

LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}
# Keys of checkpoints that carry nothing a model uses: pre-training heads (for every model but
# the masked LM, see BertPreTrainedModel.ignored_prefixes) and the position-id buffer older
# transformers versions saved.
IGNORED_PREFIXES = ("cls.",)
IGNORED_KEYS = ("embeddings.position_ids", "bert.embeddings.position_ids")


def _rename_key(key, own_keys):
    """Map a checkpoint key onto this model's key: legacy LayerNorm names, ``bert.`` prefix."""
    for old, new in LEGACY_SUFFIXES.items():
        if key.endswith(old):
            key = key[: -len(old)] + new
    if key in own_keys:
        return key
    if key.startswith("bert.") and key[len("bert."):] in own_keys:
        return key[len("bert."):]
    if "bert." + key in own_keys:
        return "bert." + key
    return key


def match_state(model, file_shapes):
    """How a checkpoint's tensors (``file_shapes``: name -> shape) map onto ``model``'s.

    The report has ``loads`` (checkpoint key -> model key of each tensor that loads), ``missing_keys``
    (left at their initial values), ``unexpected_keys`` (not used), ``mismatched_keys`` (shape differs,
    left at their initial values, e.g. a classifier with another label count; ``file_shapes`` gives their
    shapes in the checkpoint) and ``ignored_keys`` (the model's ``ignored_prefixes``, by default the
    pre-training heads ``cls.*``, its ``tied_keys`` and the ``position_ids`` buffer). Tied parameters are
    never reported missing: they are loaded under the name of the tensor they share.
    """
    own = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    ignored_prefixes = getattr(model, "ignored_prefixes", IGNORED_PREFIXES)
    tied = getattr(model, "tied_keys", ())
    ignored, unexpected, mismatched = [], [], []
    loads, mismatched_shapes = {}, {}
    for key, shape in file_shapes.items():
        name = _rename_key(key, own)
        if key.startswith(ignored_prefixes) or key in IGNORED_KEYS or name in tied:
            ignored.append(key)
            continue
        if name not in own:
            unexpected.append(key)
        elif own[name] != tuple(shape):
            mismatched.append(name)
            mismatched_shapes[name] = tuple(shape)
        else:
            loads[key] = name
    loaded = set(loads.values())
    missing = [key for key in own if key not in loaded and key not in mismatched and key not in tied]
    return dict(loads=loads, missing_keys=missing, unexpected_keys=unexpected, mismatched_keys=mismatched,
                ignored_keys=ignored, file_shapes=mismatched_shapes)


def load_pretrained_state(model, state_dict, source=""):
    """Load ``state_dict`` into ``model`` leniently; return the loading report (match_state's, without
    ``loads``). Ignored keys are dropped without a warning; the others are logged."""
    report = match_state(model, {key: value.shape for key, value in state_dict.items()})
    model.load_state_dict({name: state_dict[key] for key, name in report.pop("loads").items()}, strict=False)
    if report["ignored_keys"]:
        logger.info("%s: ignored %d pre-training head / buffer keys: %s", source, len(report["ignored_keys"]),
                    ", ".join(report["ignored_keys"]))
    if report["missing_keys"]:
        logger.warning("%s: weights not in the checkpoint, initialised randomly: %s", source,
                       ", ".join(report["missing_keys"]))
    if report["mismatched_keys"]:
        logger.warning("%s: weights with another shape, initialised randomly: %s", source,
                       ", ".join(report["mismatched_keys"]))
    if report["unexpected_keys"]:
        logger.warning("%s: checkpoint weights not used by %s: %s",
                       source, type(model).__name__, ", ".join(report["unexpected_keys"]))
    return report


# A checkpoint's tensors of encoder layers beyond the config's num_hidden_layers (in any naming).
LAYER_KEY = re.compile(r"(^|\.)encoder\.layer\.\d+\.")


def check_fit(model, report, path, fresh_allowed=lambda key: False, hint="fix config.json"):
    """Raise a one-line ValueError naming ``path`` and the first offending tensors when the weights do not
    fit the model its config builds: a tensor of the model missing from the file or with another shape
    (unless ``fresh_allowed(key)``: it may start fresh), or a tensor of the file that the model should have
    used and has no place for (``model.refuses_unused(key)``: e.g. the layers of a deeper model)."""
    own = model.state_dict()
    absent = [key for key in report["missing_keys"] if not fresh_allowed(key)]
    reshaped = [key for key in report["mismatched_keys"] if not fresh_allowed(key)]
    unused = [key for key in report["unexpected_keys"] if model.refuses_unused(key)]
    if not absent and not reshaped and not unused:
        return
    problems = [f"{key} missing" for key in absent[:3]] + [
        f"{key} {tuple(report['file_shapes'][key])} in the file, {tuple(own[key].shape)} in the model"
        for key in reshaped[:3]] + [f"{key} in the file, not in the model" for key in unused[:3]]
    raise ValueError(f"{path}: {len(absent) + len(reshaped) + len(unused)} tensors do not fit the config "
                     f"({'; '.join(problems)}); {hint}")


class BertPreTrainedModel(nn.Module):
    """Weight initialisation, ``from_pretrained`` and ``save_pretrained`` shared by BERT models."""

    # Checkpoint keys the model has no use for, dropped on loading without a warning.
    ignored_prefixes = IGNORED_PREFIXES
    # Parameters that are another parameter under a second name: neither saved nor loaded.
    tied_keys = ()

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.loading_info = None

    def init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def refuses_unused(self, key):
        """A checkpoint tensor this model has no place for although it should (check_fit): another layer."""
        return bool(LAYER_KEY.search(key))

    @classmethod
    def from_pretrained(cls, model_dir, strict=False, fresh_allowed=(), **config_overrides):
        """Model from a directory with ``config.json`` and weights; ``config_overrides`` replace config keys.

        ``strict``: the weights must fit the config (check_fit): every tensor present with its shape, except
        those starting with one of the ``fresh_allowed`` prefixes (a new classifier, an unused pooler), which
        start from random values; else a one-line ValueError naming the file and the tensors. Without it,
        what does not fit is logged and left random.
        """
        config = cls._config(model_dir, config_overrides)
        state_dict = load_weights(model_dir)
        model = cls(config)
        if strict:
            check_fit(model, match_state(model, {key: value.shape for key, value in state_dict.items()}),
                      weights_file(model_dir), lambda key: key.startswith(tuple(fresh_allowed)))
        model.loading_info = load_pretrained_state(model, state_dict, source=model_dir)
        return model

    @classmethod
    def check_weights(cls, model_dir, fresh_allowed=(), **config_overrides):
        """from_pretrained(strict=True)'s check from the config and the weights file's header alone (the model
        is built on the meta device, without memory): before anything is loaded or written."""
        config = cls._config(model_dir, config_overrides)
        with torch.device("meta"):
            model = cls(config)
        check_fit(model, match_state(model, weight_shapes(model_dir)), weights_file(model_dir),
                  lambda key: key.startswith(tuple(fresh_allowed)))

    @staticmethod
    def _config(model_dir, config_overrides):
        if not os.path.isdir(model_dir):
            raise FileNotFoundError(f"{model_dir}: model directory not found")
        config = BertConfig.from_pretrained(model_dir)
        for key, value in config_overrides.items():
            setattr(config, key, value)
        return config

    def save_pretrained(self, model_dir, vocab_file=None, overwrite=False):
        """Atomically write weights (safetensors), config and optionally a copy of ``vocab_file``."""
        # safetensors refuses tensors that share memory; a tied parameter is saved once, under its owner's name.
        state_dict = {k: v for k, v in self.state_dict().items() if k not in self.tied_keys}
        save_model_dir(model_dir, state_dict, self.config.to_dict(), vocab_file=vocab_file, overwrite=overwrite)


class BertModel(BertPreTrainedModel):
    """BERT encoder returning every hidden state, every layer's attention scores and the pooled output.

    ``add_pooling_layer=False`` leaves the pooler out (the masked LM does not use it); the pooled
    output is then None.
    """

    def __init__(self, config, add_pooling_layer=True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.apply(self.init_weights)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, output_values=False):
        """BertModelOutput with hidden_states, attention_scores, pooled_output (and last_values)."""
        embedding_output, mask = embed_inputs(self.embeddings, input_ids, token_type_ids, attention_mask)
        hidden_states, attention_scores = self.encoder(embedding_output, mask)
        pooled_output = self.pooler(hidden_states[-1]) if self.pooler is not None else None
        # One more value projection of the last layer's input, only when asked for.
        values = self.encoder.layer[-1].attention.self.value(hidden_states[-2]) if output_values else None
        return BertModelOutput(hidden_states, attention_scores, pooled_output, last_values=values)


class BertForSequenceClassification(BertPreTrainedModel):
    """BERT with a linear classifier (or regressor when num_labels == 1) on the pooled output.

    ``config.classifier_head`` picks the head: "tinybert" (default, TinyBERT's teachers)
    computes classifier(relu(pooled)); "hf" computes classifier(dropout(pooled)) like
    Hugging Face's model.
    """

    def __init__(self, config, num_labels=None):
        config = copy.deepcopy(config)
        if num_labels is None:
            num_labels = config.num_labels
        if num_labels is None and config.id2label:
            num_labels = len(config.id2label)
        if num_labels is None:
            raise ValueError("num_labels is not given and the config has no num_labels")
        config.num_labels = int(num_labels)
        config.classifier_head = config.classifier_head  # written to config.json, the default made explicit
        if config.classifier_head not in CLASSIFIER_HEADS:
            raise ValueError(
                f"classifier_head {config.classifier_head!r} is not one of {', '.join(CLASSIFIER_HEADS)}"
            )
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights(self.classifier)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, output_values=False):
        """BertModelOutput of the encoder with its logits."""
        outputs = self.bert(input_ids, token_type_ids, attention_mask, output_values=output_values)
        if self.config.classifier_head == "tinybert":
            logits = self.classifier(torch.relu(outputs.pooled_output))
        else:
            logits = self.classifier(self.dropout(outputs.pooled_output))
        return outputs._replace(logits=logits)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        return self.LayerNorm(self.activation(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """logits = decoder(transform(h)) + bias, the decoder's weight being the word-embedding matrix."""

    def __init__(self, config, word_embeddings):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.decoder.weight = word_embeddings.weight
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias  # Hugging Face's names: the bias is reachable under both

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config, word_embeddings):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, word_embeddings)

    def forward(self, hidden_states):
        return self.predictions(hidden_states)


class BertForMaskedLM(BertPreTrainedModel):
    """BERT with its masked-language-model head ``cls.predictions`` (Hugging Face's module names).

    Loads the pre-training head of Hugging Face and original BERT checkpoints (which the other
    models ignore); a checkpoint without it leaves ``cls.predictions.*`` in
    ``loading_info["missing_keys"]``. The pooler is not part of the model, so checkpoint pooler
    weights are ignored.
    """

    ignored_prefixes = ("bert.pooler.", "pooler.", "cls.seq_relationship.")
    tied_keys = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")

    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings)
        self.cls.predictions.transform.apply(self.init_weights)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, masked_positions=None):
        """Vocabulary logits [B, L, V]; with ``masked_positions`` ([B] indices) only at those, [B, V].

        Decoding only the masked positions skips a [L, H] x [H, V] product per sequence.
        """
        sequence_output = self.bert(input_ids, token_type_ids, attention_mask).hidden_states[-1]
        if masked_positions is not None:
            sequence_output = sequence_output[torch.arange(sequence_output.size(0)), masked_positions]
        return self.cls(sequence_output)

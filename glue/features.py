"""Examples -> model inputs: ``[CLS] A [SEP] (B [SEP])``, pair truncation, padding, batching.

Padding uses id 0, the ``[PAD]`` id of every BERT WordPiece vocabulary.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch

PAD_ID = 0


@dataclass
class InputFeatures:
    input_ids: list
    input_mask: list
    segment_ids: list
    label_id: object
    seq_length: int


def truncate_seq_pair(tokens_a, tokens_b, max_length):
    """Drop tokens from the end of the longer sequence (B on ties) until the pair fits."""
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def convert_examples_to_features(examples, label_list, max_seq_length, tokenizer, output_mode, pad_to_max=True):
    """Tokenize examples into features; ``pad_to_max=False`` leaves them unpadded for ``pad_batch``."""
    if output_mode not in ("classification", "regression"):
        raise ValueError(f"output_mode must be 'classification' or 'regression', got {output_mode!r}")
    label_map = {label: i for i, label in enumerate(label_list)}
    features = []
    for example in examples:
        tokens_a = tokenizer.tokenize(example.text_a)
        tokens_b = tokenizer.tokenize(example.text_b) if example.text_b is not None else None
        specials = 3 if tokens_b is not None else 2
        if max_seq_length <= specials:
            raise ValueError(f"max_seq_length {max_seq_length} leaves no room for text")
        if tokens_b is not None:
            truncate_seq_pair(tokens_a, tokens_b, max_seq_length - specials)
        else:
            tokens_a = tokens_a[:max_seq_length - specials]
        tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
        segment_ids = [0] * len(tokens)
        if tokens_b is not None:
            tokens += tokens_b + ["[SEP]"]
            segment_ids += [1] * (len(tokens_b) + 1)
        input_ids = tokenizer.convert_tokens_to_ids(tokens)
        seq_length = len(input_ids)
        input_mask = [1] * seq_length
        if pad_to_max:
            padding = [PAD_ID] * (max_seq_length - seq_length)
            input_ids, input_mask, segment_ids = input_ids + padding, input_mask + padding, segment_ids + padding
        if output_mode == "classification":
            if example.label not in label_map:
                raise ValueError(f"example {example.guid}: label {example.label!r} not in {label_list}")
            label_id = label_map[example.label]
        else:
            label_id = float(example.label)
        features.append(InputFeatures(list(input_ids), input_mask, segment_ids, label_id, seq_length))
    return features


class Batch(NamedTuple):
    """A batch padded to its longest member, every tensor [B, ...] named: the model inputs (in the order the
    models take them), then, for task data, the labels (long for classification, float for regression) and
    the real lengths. Training (distill/training.py), evaluation and both data sources use it."""
    input_ids: torch.Tensor
    token_type_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: Optional[torch.Tensor] = None
    lengths: Optional[torch.Tensor] = None

    @property
    def size(self):
        return self.input_ids.shape[0]

    def inputs(self):
        """The model's keyword arguments."""
        return {"input_ids": self.input_ids, "token_type_ids": self.token_type_ids,
                "attention_mask": self.attention_mask}

    def map(self, fn):
        """The batch with ``fn`` applied to every tensor it holds (selecting rows, moving to a device)."""
        return Batch(*(None if tensor is None else fn(tensor) for tensor in self))


def pad_batch(features):
    """Collate features (padded or not) into a Batch padded to the longest sequence in the batch.
    Use as ``DataLoader(features, collate_fn=pad_batch)``."""
    width = max(f.seq_length for f in features)

    def column(name):
        return torch.tensor([(getattr(f, name) + [PAD_ID] * width)[:width] for f in features], dtype=torch.long)

    label_dtype = torch.float if isinstance(features[0].label_id, float) else torch.long
    return Batch(column("input_ids"), column("segment_ids"), column("input_mask"),
                 torch.tensor([f.label_id for f in features], dtype=label_dtype),
                 torch.tensor([f.seq_length for f in features], dtype=torch.long))


class TaskFeatures:
    """Unpadded training features as a training-loop data source; one object serves every epoch."""

    def __init__(self, features):
        self.features = features
        self.num_examples = len(features)

    def load(self):
        return self

    def __len__(self):
        return self.num_examples

    def lengths(self):
        """Real tokens of every example."""
        return [f.seq_length for f in self.features]

    def batch(self, indices):
        """The Batch of these examples, padded to the longest member."""
        return pad_batch([self.features[i] for i in indices])

    def close(self):
        pass

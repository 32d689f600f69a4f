"""Pregenerated general-distillation data: ``epoch_{e}.json`` + ``epoch_{e}_metrics.json``.

Each line of ``epoch_{e}.json`` is one instance (tokens, segment_ids, is_random_next,
masked_lm_positions, masked_lm_labels); general KD uses only the tokens and segments,
as token ids, segment ids and an input mask padded to --max_seq_length. With
--reduce_memory the three arrays live in memory-mapped files in a temporary folder
under the output folder instead of in RAM.
"""
import json
import logging
import os
import shutil
import tempfile

import numpy as np
import torch

from glue.features import Batch
from transformer.checkpoint import read_json

logger = logging.getLogger(__name__)


def find_epoch_files(data_dir):
    """[(epoch_{e}.json, epoch_{e}_metrics.json), ...] for e = 0, 1, ... while both exist."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"--pregenerated_data {data_dir}: no such folder")
    files = []
    while True:
        data = os.path.join(data_dir, f"epoch_{len(files)}.json")
        metrics = os.path.join(data_dir, f"epoch_{len(files)}_metrics.json")
        if not os.path.isfile(data):
            break
        if not os.path.isfile(metrics):
            raise FileNotFoundError(f"{metrics}: missing (needed with {data})")
        files.append((data, metrics))
    if not files:
        raise FileNotFoundError(f"--pregenerated_data {data_dir}: no epoch_0.json found")
    return files


def read_epoch_metrics(metrics_path, max_seq_length):
    """(num_training_examples, max_seq_len) of one epoch file, checked against --max_seq_length."""
    metrics = read_json(metrics_path)
    try:
        num_examples, seq_len = int(metrics["num_training_examples"]), int(metrics["max_seq_len"])
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int() of JSON's Infinity
        raise ValueError(f"{metrics_path}: needs integer num_training_examples and max_seq_len") from None
    if seq_len > max_seq_length:
        raise ValueError(f"{metrics_path}: max_seq_len {seq_len} exceeds --max_seq_length {max_seq_length}")
    if num_examples < 1:
        raise ValueError(f"{metrics_path}: num_training_examples is {num_examples}")
    return num_examples, seq_len


def parse_instance(line, where):
    """(tokens, segment_ids) of one line of an epoch file; errors start with ``where`` (file and line)."""
    try:
        instance = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not valid JSON (not UTF-8: {e.reason})") from None
    except RecursionError:
        raise ValueError(f"{where}: not valid JSON (nested too deeply)") from None
    fields = instance if isinstance(instance, dict) else {}
    tokens, segments = fields.get("tokens"), fields.get("segment_ids")
    if not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)
            and isinstance(segments, list) and all(s in (0, 1) for s in segments)):
        raise ValueError(f"{where}: not an instance with tokens and segment_ids (a list of strings and a list "
                         "of 0s and 1s)")
    return tokens, segments


class PregeneratedEpoch:
    """One epoch file as arrays [n, max_seq_length]; ``batch(indices)`` trims to the longest row."""

    def __init__(self, data_path, metrics_path, vocab, max_seq_length, memmap_parent=None):
        num_examples, _ = read_epoch_metrics(metrics_path, max_seq_length)
        self.tmp_dir = tempfile.mkdtemp(prefix=".pregenerated-", dir=memmap_parent) if memmap_parent else None
        shape = (num_examples, max_seq_length)
        self.input_ids = self._array("input_ids", np.int32, shape)
        self.segment_ids = self._array("segment_ids", np.int8, shape)
        self.input_mask = self._array("input_mask", np.int8, shape)
        try:
            self._fill(data_path, vocab, max_seq_length, num_examples)
        except BaseException:
            self.close()  # a bad file must not leave its memory-mapped arrays under the output folder
            raise

    def _array(self, name, dtype, shape):
        if self.tmp_dir is None:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(os.path.join(self.tmp_dir, f"{name}.memmap"), mode="w+", dtype=dtype, shape=shape)

    def _fill(self, data_path, vocab, max_seq_length, num_examples):
        count = 0
        # Read as bytes: json.loads decodes each line, so a line that is not UTF-8 is reported as not JSON.
        with open(data_path, "rb") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if count >= num_examples:
                    raise ValueError(f"{data_path}: more instances than num_training_examples {num_examples}")
                where = f"{data_path}: line {line_no}"
                tokens, segments = parse_instance(line, where)
                if len(tokens) != len(segments) or not 0 < len(tokens) <= max_seq_length:
                    raise ValueError(f"{where}: {len(tokens)} tokens, {len(segments)} segment ids "
                                     f"(need equal counts, at most --max_seq_length {max_seq_length})")
                unknown = [t for t in tokens if t not in vocab]
                if unknown:
                    raise ValueError(f"{where}: token {unknown[0]!r} is not in the teacher's vocab")
                self.input_ids[count, :len(tokens)] = [vocab[t] for t in tokens]
                self.segment_ids[count, :len(tokens)] = segments
                self.input_mask[count, :len(tokens)] = 1
                count += 1
        if count != num_examples:
            raise ValueError(f"{data_path}: {count} instances, metrics file says {num_examples}")

    def __len__(self):
        return self.input_ids.shape[0]

    def lengths(self):
        """Real tokens of every row."""
        return np.asarray(self.input_mask.sum(axis=1, dtype=np.int64))

    def batch(self, indices):
        """The Batch of these rows (no labels), padded only to their longest member."""
        mask = torch.from_numpy(np.asarray(self.input_mask[indices], dtype=np.int64))
        lengths = mask.sum(dim=1)
        length = int(lengths.max())
        input_ids = torch.from_numpy(np.asarray(self.input_ids[indices, :length], dtype=np.int64))
        segment_ids = torch.from_numpy(np.asarray(self.segment_ids[indices, :length], dtype=np.int64))
        return Batch(input_ids, segment_ids, mask[:, :length], lengths=lengths)

    def close(self):
        """Drop the arrays and delete the memory-mapped files, if any."""
        self.input_ids = self.segment_ids = self.input_mask = None
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


class EpochSource:
    """One training epoch's file, loaded only when the epoch starts."""

    def __init__(self, data_path, metrics_path, vocab, max_seq_length, memmap_parent):
        self.data_path, self.metrics_path = data_path, metrics_path
        self.vocab, self.max_seq_length, self.memmap_parent = vocab, max_seq_length, memmap_parent
        self.num_examples, _ = read_epoch_metrics(metrics_path, max_seq_length)

    def load(self):
        logger.info("loading %s", self.data_path)
        return PregeneratedEpoch(self.data_path, self.metrics_path, self.vocab, self.max_seq_length,
                                 self.memmap_parent)


def epoch_sources(epoch_files, num_epochs, vocab, max_seq_length, memmap_parent=None):
    """One source per training epoch; with fewer files than epochs the files are cycled."""
    if len(epoch_files) < num_epochs:
        logger.warning("%d pregenerated epoch files for %d epochs: cycling them", len(epoch_files), num_epochs)
    return [EpochSource(*epoch_files[epoch % len(epoch_files)], vocab, max_seq_length, memmap_parent)
            for epoch in range(num_epochs)]

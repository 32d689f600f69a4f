"""A trained spiking student on raw sentences: the label, class probabilities, steps, spikes and energy of each.

The sentences run through the same code as evaluation (distill/evaluation.run_model: length-sorted
batches, padding masked out, optional adaptive time steps), so a sentence gets the prediction that
``--do_eval`` gives it. Energy per sentence is modules/energy.py's count for that sentence's spikes
and steps.
"""
import json
import logging
import math
import os
import sys
from dataclasses import dataclass

import torch

from distill.evaluation import predictions_of, run_model
from glue import InputExample, convert_examples_to_features
from modules.energy import BertSize, operation_counts, spike_counts_by_population

logger = logging.getLogger(__name__)


@dataclass
class Sentence:
    line_number: int  # in the input, from 1
    text_a: str
    text_b: str = None


def read_sentences(lines, text_column=0, text_b_column=None, skip_header=False, source="<stdin>"):
    """Sentences from text lines: one per line (column ``text_column`` of a tab-separated line), with
    ``text_b_column`` the second sentence of a pair. Empty lines are skipped; a line without the needed
    columns is a one-line ValueError naming ``source`` and the line."""
    needed = max(text_column, text_b_column if text_b_column is not None else 0) + 1
    sentences = []
    for line_number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if (skip_header and line_number == 1) or not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < needed:
            raise ValueError(f"{source}:{line_number}: expected at least {needed} tab-separated columns, found "
                             f"{len(columns)}")
        sentences.append(Sentence(line_number, columns[text_column],
                                  columns[text_b_column] if text_b_column is not None else None))
    if not sentences:
        raise ValueError(f"{source}: no sentences")
    return sentences


def sentence_features(sentences, label_list, output_mode, max_seq_length, tokenizer):
    """Features as evaluation builds them; the label is a placeholder (prediction reads no label)."""
    placeholder = label_list[0] if output_mode == "classification" else 0.0
    examples = [InputExample(f"predict-{s.line_number}", s.text_a, s.text_b, placeholder) for s in sentences]
    return convert_examples_to_features(examples, label_list, max_seq_length, tokenizer, output_mode,
                                        pad_to_max=False)


def predict(model, features, label_list, output_mode, batch_size, devices, stopping_rule=None, teacher=None):
    """One dict per sentence, in input order: label, probabilities (classification) or score, steps, spikes,
    accumulates, energy in uJ and its ratio to a same-size ANN (and to ``teacher``, a BertSize)."""
    outputs = run_model(model, features, batch_size, devices, stopping_rule=stopping_rule)
    spikes = spike_counts_by_population(outputs.population_spikes.numpy(), model.population_names())
    counts = operation_counts(spikes, outputs.lengths, outputs.steps, BertSize.of(model.config), teacher)
    predicted = predictions_of(outputs.logits, output_mode)
    rows = []
    for i in range(len(features)):
        row = {}
        if output_mode == "classification":
            row["label"] = label_list[int(predicted[i])]
            probabilities = torch.softmax(outputs.logits[i], dim=-1).tolist()
            row.update({f"p_{label}": probability for label, probability in zip(label_list, probabilities)})
        else:
            row["score"] = float(predicted[i])
        row.update({"steps": int(outputs.steps[i]), "spikes": int(outputs.population_spikes[i].sum()),
                    "accumulates": float(counts["ac"][i]), "energy_uj": float(counts["energy_uj"][i]),
                    "energy_ratio_to_ann": float(counts["energy_uj"][i] / counts["ann_energy_uj"][i])})
        if teacher is not None:
            row["energy_ratio_to_teacher"] = float(counts["energy_uj"][i] / counts["teacher_energy_uj"][i])
        rows.append(row)
    return rows


def format_value(value):
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def write_rows(stream, sentences, rows, output_format):
    """TSV (a header, then one line per sentence) or JSON lines; each row starts with its input line number."""
    records = [{"line": sentence.line_number, **row} for sentence, row in zip(sentences, rows)]
    if output_format == "jsonl":
        for record in records:
            stream.write(json.dumps(record) + "\n")
        return
    stream.write("\t".join(records[0]) + "\n")
    for record in records:
        stream.write("\t".join(format_value(value) for value in record.values()) + "\n")


def open_input(path):
    if path == "-":
        return sys.stdin
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--input {path}: no such file")
    return open(path, encoding="utf-8")

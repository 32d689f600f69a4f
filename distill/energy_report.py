"""Operation counts, energy and steps of an evaluated dev set: modules/energy.py applied to an EvalResult.

A set's report holds, averaged per example, every figure of modules.energy.summarise (ACs per
population and in total, MACs, energy in uJ, the same-size ANN's and the teacher's, the
ratios), the distribution (mean and quartiles) of each sentence's steps, ACs and energy, and
a histogram of the steps used with the accuracy of the sentences in each bin. Every count
uses each sentence's own number of steps.

The teacher's shape comes from --teacher_model's config.json, or from the ``teacher_size``
record the distillation scripts store in the student's config.json; without either only the
same-size ANN is compared.
"""
import numpy as np

from modules.energy import BertSize, operation_counts, spike_counts_by_population, summarise
from transformer.modeling import BertConfig

ENERGY_NAME = "energy.json"
# The keys of a config.json that give a BERT's shape (the ``teacher_size`` record holds these).
SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers")
QUANTILES = {"min": 0.0, "q1": 0.25, "median": 0.5, "q3": 0.75, "max": 1.0}


def shape_record(config):
    """The shape of a BertConfig as a dict of SHAPE_KEYS (stored as ``teacher_size`` in a student's config)."""
    return {key: getattr(config, key) for key in SHAPE_KEYS}


def size_from_record(record, num_labels, source):
    """BertSize of a ``teacher_size`` record, for a classifier of ``num_labels``; a bad record is a one-line
    ValueError blaming ``source``."""
    if not (isinstance(record, dict) and all(isinstance(record.get(key), int) and record[key] > 0
                                             for key in SHAPE_KEYS)):
        raise ValueError(f"{source}: teacher_size must map {', '.join(SHAPE_KEYS)} to positive integers, "
                         f"got {record!r}")
    return BertSize.of(BertConfig(**record), num_labels)


def describe_size(size):
    return (f"{size.layers} layers, hidden {size.hidden}, intermediate {size.intermediate}, "
            f"{size.heads} heads")


def distribution(values):
    """Mean and quartiles of per-example values."""
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), **{name: float(np.quantile(values, q)) for name, q in QUANTILES.items()}}


def steps_histogram(steps, correct=None):
    """steps used -> {"count", and with ``correct`` (per-example bools) "acc" of those sentences}."""
    histogram = {}
    for value in np.unique(steps):
        chosen = steps == value
        histogram[str(int(value))] = {"count": int(chosen.sum())}
        if correct is not None:
            histogram[str(int(value))]["acc"] = float(correct[chosen].mean())
    return histogram


def set_report(result, population_names, student, teacher, output_mode):
    """The energy and steps report of one EvalResult of a spiking student (``student``, ``teacher``:
    BertSize, ``teacher`` may be None)."""
    spikes = spike_counts_by_population(result.population_spikes, population_names)
    counts = operation_counts(spikes, result.lengths, result.steps, student, teacher)
    correct = result.predictions == result.labels if output_mode == "classification" else None
    return {"energy": summarise([counts]),
            "distribution": {"steps": distribution(result.steps), "ac": distribution(counts["ac"]),
                             "energy_uj": distribution(counts["energy_uj"])},
            "steps_histogram": steps_histogram(result.steps, correct)}


def flat_items(report, prefix):
    """(dotted key, value) pairs of a nested report, for ``key = value`` lines."""
    for key, value in report.items():
        if isinstance(value, dict):
            yield from flat_items(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", value

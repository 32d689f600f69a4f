"""Operation counts and energy of the spiking student against ordinary BERTs.

Everything is per example, over its L real tokens (padding is not counted), summed
over the T steps simulated for it.

Accumulates (AC): a product one of whose operands is binary adds a weight, or a
real value, for every spike. The spike counts n_p of the populations (real tokens,
all neurons, all steps) therefore give every AC, population by population:

    AC_p = n_p x fan_out_p

    layer input (embedding, or the previous layer's output):
        3H + 1   key, value and query FCs (H rows each), plus the residual
                 addition into the self-output LayerNorm
    key          L       Q K^T with binary keys: per head, each key spike is
                         added into the score of every real query
    value        L       softmax(S) V with binary values: each value spike adds
                         one attention probability into every real query's context
    attention    H       self-output FC
    self_output  I + 1   intermediate FC, plus the residual addition into the
                         output LayerNorm
    intermediate H       output FC
    last output  0       its rate reaches the classifier as a real value (MACs)

Multiply-accumulates (MAC): every operation whose operands are all real, additions
included. Non-linear functions cost a fixed number of MACs per element, the
constants of ELECTRA's FLOP counter (google-research/electra,
flops_computation.py, which counts one elementary operation, exp included, as
one): LayerNorm 5, softmax 5, GELU and tanh 8. The student computes once the
embeddings (3-way sum and LayerNorm), then at each step: the embedding
population's integration of the constant current E (one addition per neuron,
real operand), and per layer softmax over the A L^2 scores, two LayerNorms over
L H and GELU over L I; finally the classifier on the [CLS] rate, H x num_labels.
Bias additions are folded into the accumulator's initial value and the 1/sqrt(d)
score scale into the query weights, on both sides (FlopCounterMode also counts an
addmm as its product only). Neuron membrane updates of the encoder populations
(u <- u + I, threshold, reset) are not counted by default, as the paper counts
synaptic operations only: COUNT_MEMBRANE_UPDATES.

Ordinary BERT (teacher, and an ANN of the student's size): the matrix products of
transformer.modeling.BertForSequenceClassification run on one example of length L,
counted by torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2):
    N [L (4 H^2 + 2 H I) + 2 L^2 H] + H^2 (pooler) + H num_labels (classifier),
plus the same per-element costs as the student, each paid once: embeddings, per
layer softmax, two LayerNorms, GELU and two residual additions (L H each), and
the pooler's tanh.

Energy = 0.9 pJ x AC + 4.6 pJ x MAC: 32-bit floating-point addition and
multiply-add at 45 nm (Horowitz, ISSCC 2014), the figures the paper uses.
"""
import functools
from dataclasses import dataclass
from typing import Dict, Iterable, Mapping, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from modules.snn_bert_modules import LayerPopulations
from transformer.modeling import BertConfig, BertForSequenceClassification

AC_ENERGY_PJ = 0.9
MAC_ENERGY_PJ = 4.6

# Per-element costs in MACs (ELECTRA's flops_computation.py).
EMBEDDING_SUM_MACS_PER_ELEMENT = 2  # word + position + token type
LAYER_NORM_MACS_PER_ELEMENT = 5  # mean, variance (square and sum), scale, shift
SOFTMAX_MACS_PER_ELEMENT = 5  # max and subtract, exp, sum, divide
ACTIVATION_MACS_PER_ELEMENT = 8  # GELU (ELECTRA's count for its tanh form), tanh

# The paper counts synaptic operations; membrane updates are the neurons' own work.
COUNT_MEMBRANE_UPDATES = False



@dataclass(frozen=True)
class BertSize:
    """What the counts depend on: widths, heads, layers, classifier outputs (hashable, for caching)."""
    hidden: int
    intermediate: int
    heads: int
    layers: int
    num_labels: int

    @classmethod
    def of(cls, config, num_labels=None):
        """From a BertConfig; ``num_labels`` defaults to the config's."""
        return cls(config.hidden_size, config.intermediate_size, config.num_attention_heads,
                   config.num_hidden_layers, config.num_labels if num_labels is None else num_labels)

    def layer_names(self):
        return [f"layer{i}" for i in range(1, self.layers + 1)]

    def population_widths(self):
        """Population name -> neurons per token, in the student's population order."""
        widths = {"embedding": self.hidden}
        for layer in self.layer_names():
            for population in LayerPopulations._fields:
                widths[f"{layer}.{population}"] = self.intermediate if population == "intermediate" else self.hidden
        return widths


def spike_counts_by_population(population_spikes, names):
    """name -> [B] spike counts from the student's [B, P] ``population_spikes`` output (real tokens, all
    neurons, all steps simulated; float64, exact)."""
    return dict(zip(names, _per_example(population_spikes).unbind(-1)))


def fan_outs(lengths, size):
    """The accumulates one spike of each population causes (the module docstring's table): name -> [B], in
    population order, for sentences of ``lengths`` real tokens ([B], kept on its device and dtype). The
    energy report and the energy penalty of training (distill/losses.py) both count with it."""
    fan = {}
    layer_input = "embedding"
    for layer in size.layer_names():
        fan[layer_input] = torch.full_like(lengths, 3 * size.hidden + 1)
        fan[f"{layer}.key"] = lengths
        fan[f"{layer}.value"] = lengths
        fan[f"{layer}.attention"] = torch.full_like(lengths, size.hidden)
        fan[f"{layer}.self_output"] = torch.full_like(lengths, size.intermediate + 1)
        fan[f"{layer}.intermediate"] = torch.full_like(lengths, size.hidden)
        layer_input = f"{layer}.output"
    fan[layer_input] = torch.zeros_like(lengths)
    return fan


def accumulates_per_example(spike_counts, lengths, size):
    """ACs caused by each population's spikes: name -> [B], AC_p = n_p x fan_out_p (module docstring)."""
    fan = fan_outs(_per_example(lengths), size)
    return {name: _per_example(spike_counts[name]) * fan[name] for name in fan}


def embedding_multiply_accumulates(length, size):
    """(2 + 5) L H: the three-way sum and LayerNorm of the embeddings."""
    return (EMBEDDING_SUM_MACS_PER_ELEMENT + LAYER_NORM_MACS_PER_ELEMENT) * length * size.hidden


def layer_nonlinear_multiply_accumulates(length, size):
    """5 A L^2 + 2 x 5 L H + 8 L I: softmax, two LayerNorms and GELU of one layer on L tokens."""
    return (SOFTMAX_MACS_PER_ELEMENT * size.heads * length ** 2
            + 2 * LAYER_NORM_MACS_PER_ELEMENT * length * size.hidden
            + ACTIVATION_MACS_PER_ELEMENT * length * size.intermediate)


def multiply_accumulates_per_example(lengths, steps, size, membrane_updates=COUNT_MEMBRANE_UPDATES):
    """The student's MACs, [B]:

        (2 + 5) L H  +  T L H  +  T N (5 A L^2 + 10 L H + 8 L I)  +  H num_labels
        [+ T L N (5 H + I) with ``membrane_updates``: one addition per encoder neuron and step]

    ``lengths``: [B] real tokens; ``steps``: [B] steps simulated (or one int).
    """
    lengths, steps = _per_example(lengths), _per_example(steps)
    macs = (embedding_multiply_accumulates(lengths, size)
            + steps * lengths * size.hidden
            + steps * size.layers * layer_nonlinear_multiply_accumulates(lengths, size)
            + size.hidden * size.num_labels)
    if membrane_updates:
        encoder_neurons = sum(size.population_widths().values()) - size.hidden  # all but the embedding's
        macs = macs + steps * lengths * encoder_neurons
    return macs


@functools.lru_cache(maxsize=None)
def matrix_product_multiply_accumulates(size, length):
    """MACs of the matrix products of a BertForSequenceClassification of ``size`` on one
    example of ``length`` tokens, as counted by FlopCounterMode (FLOPs / 2).

    The model is built on the meta device: shapes are all that the count needs.
    """
    config = BertConfig(vocab_size=1, hidden_size=size.hidden, intermediate_size=size.intermediate,
                        num_attention_heads=size.heads, num_hidden_layers=size.layers,
                        max_position_embeddings=length)
    with torch.device("meta"):
        model = BertForSequenceClassification(config, size.num_labels).eval()
        input_ids = torch.zeros(1, length, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        model(input_ids)
    return counter.get_total_flops() // 2


def bert_multiply_accumulates(size, length):
    """MACs of an ordinary BERT classifier of ``size`` on one example of ``length`` tokens:
    its matrix products plus the student's per-element costs, each paid once."""
    per_layer = layer_nonlinear_multiply_accumulates(length, size) + 2 * length * size.hidden  # two residual adds
    return (matrix_product_multiply_accumulates(size, length)
            + embedding_multiply_accumulates(length, size)
            + size.layers * per_layer
            + ACTIVATION_MACS_PER_ELEMENT * size.hidden)  # pooler tanh


def energy_microjoules(accumulates, multiply_accumulates):
    """0.9 pJ x AC + 4.6 pJ x MAC, in uJ."""
    return (AC_ENERGY_PJ * accumulates + MAC_ENERGY_PJ * multiply_accumulates) * 1e-6


def operation_counts(spike_counts, lengths, steps, student, teacher: Optional[BertSize] = None):
    """Per-example operation counts and energy of one batch: name -> [B] float64.

    ``spike_counts``: population name -> [B] spikes over real tokens and the steps run;
    ``lengths``: [B] real tokens; ``steps``: [B] steps simulated (or one int);
    ``student``, ``teacher``: BertSize. Keys: ``ac.<population>``, ``ac``, ``mac``,
    ``energy_uj``; ``ann_mac``, ``ann_energy_uj`` (ordinary BERT of the student's
    size); ``teacher_mac``, ``teacher_energy_uj`` when a teacher is given.
    """
    acs = accumulates_per_example(spike_counts, lengths, student)
    counts = {f"ac.{name}": value for name, value in acs.items()}
    counts["ac"] = sum(acs.values())
    counts["mac"] = multiply_accumulates_per_example(lengths, steps, student)
    counts["energy_uj"] = energy_microjoules(counts["ac"], counts["mac"])
    for prefix, size in (("ann", student), ("teacher", teacher)):
        if size is not None:
            macs = torch.tensor([bert_multiply_accumulates(size, int(n)) for n in lengths], dtype=torch.float64)
            counts[f"{prefix}_mac"] = macs
            counts[f"{prefix}_energy_uj"] = energy_microjoules(0, macs)
    return counts


def summarise(batches: Iterable[Mapping[str, torch.Tensor]]) -> Dict[str, float]:
    """Means per example over a dev set of operation_counts() batches, plus energy ratios.

    A flat dict of floats (for ``key = value`` lines and JSON): every count key of
    operation_counts (ACs per population, totals, energies in uJ), ``num_examples``,
    and ``energy_ratio_to_ann`` / ``energy_ratio_to_teacher`` = mean student energy /
    mean energy of that model.
    """
    batches = list(batches)
    per_example = {key: torch.cat([batch[key] for batch in batches]) for key in batches[0]}
    summary = {key: values.mean().item() for key, values in per_example.items()}
    summary["num_examples"] = len(per_example["ac"])
    for prefix in ("ann", "teacher"):
        if f"{prefix}_energy_uj" in summary:
            summary[f"energy_ratio_to_{prefix}"] = summary["energy_uj"] / summary[f"{prefix}_energy_uj"]
    return summary


def _per_example(values):
    """[B] (or one number for the whole batch) as float64 on the CPU, exact for integers up to 2^53."""
    return torch.as_tensor(values, dtype=torch.float64, device="cpu")

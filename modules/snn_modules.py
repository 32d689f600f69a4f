"""Integrate-and-fire populations and the T-step simulation of the spiking BERT (SPEC 1.2).

Without feedback the network is feed-forward in time, so the simulation runs a
chunk of time steps at once: each population's input current is computed for the
whole chunk with the steps folded into the batch (one GEMM), then a cheap
elementwise scan over the chunk's steps updates the membrane. Membranes carry over
from chunk to chunk, so the spikes do not depend on the chunk size. The loop never
reads a tensor value on the host.
"""
from functools import partial
from typing import List, NamedTuple

import torch

from modules.snn_bert_modules import POPULATIONS

# Chunk budgets: small chunks keep CPU GEMMs in cache; GPUs want big GEMMs and few launches.
DEFAULT_CHUNK_BUDGET_MB = {"cpu": 48, "cuda": 2048}


class Populations(NamedTuple):
    """One value per neuron population: the embedding's, then six per layer (POPULATIONS order)."""
    embedding: torch.Tensor
    layers: List[List[torch.Tensor]]

    def flat(self):
        return [self.embedding] + [x for layer in self.layers for x in layer]

    def layer_outputs(self):
        """Each layer's output population (the next layer's input)."""
        return [layer[-1] for layer in self.layers]

    def zip_map(self, fn, other):
        """Populations of fn(mine, other's) for each population."""
        layers = [[fn(a, b) for a, b in zip(mine, theirs)] for mine, theirs in zip(self.layers, other.layers)]
        return Populations(fn(self.embedding, other.embedding), layers)


class IFNeurons:
    """Membrane and spike count of one population during one simulation.

    Dynamics per step: u <- u + I; s = [u >= vth]; u <- u - vth s; u <- leaky u.
    """

    def __init__(self, vth, leaky):
        self.vth = vth
        self.leaky = leaky
        self.membrane = None
        self.spike_count = None

    def fire(self, current, steps):
        """Scan ``current`` ([steps * B, ...], step-major) in place into spikes and return it."""
        per_step = current.view(steps, -1, *current.shape[1:])
        if self.membrane is None:
            self.membrane = torch.zeros_like(per_step[0])
            self.spike_count = torch.zeros_like(per_step[0])
        # In-place ops only: a reduction over the chunk would allocate a fresh buffer each
        # time and costs two to six times as much as these adds.
        for step in per_step.unbind(0):
            self.membrane.add_(step)
            torch.ge(self.membrane, self.vth, out=step)
            self.membrane.sub_(step, alpha=self.vth)
            if self.leaky != 1.0:
                self.membrane.mul_(self.leaky)
            self.spike_count.add_(step)
        return current


def step_bytes(config, batch, seq_len, element_size):
    """Rough size of one time step's simulation buffers inside one encoder layer."""
    hidden, inter, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    return batch * seq_len * (8 * hidden + 2 * inter + 3 * heads * seq_len) * element_size


def chunk_steps(config, batch, seq_len, element_size, device_type):
    """Time steps simulated at once: ``sim_chunk_steps`` if set, else from ``sim_chunk_budget_mb``."""
    fixed = getattr(config, "sim_chunk_steps", None)
    if fixed:
        return int(fixed)
    budget_mb = getattr(config, "sim_chunk_budget_mb", None)
    if budget_mb is None:
        budget_mb = DEFAULT_CHUNK_BUDGET_MB.get(device_type, DEFAULT_CHUNK_BUDGET_MB["cuda"])
    return max(1, int(budget_mb * 2 ** 20) // step_bytes(config, batch, seq_len, element_size))


@torch.no_grad()
def simulate(layers, embedding_current, mask, t_conv, vth, leaky, steps_per_chunk, feedback=None,
             mean_scores=True):
    """Simulate ``t_conv`` steps; returns (average spike rates as Populations, mean scores per layer).

    ``embedding_current`` [B, L, H] is the constant input current E; ``mask`` the
    additive [B, 1, 1, L] attention mask. With ``feedback`` (a Linear H -> H) the
    embedding population also receives feedback(s_last(t - 1)), which couples
    consecutive steps, so the chunk is one step. ``mean_scores=False`` skips
    averaging the attention scores (training uses the surrogate's) and returns None.
    """
    if feedback is not None:
        steps_per_chunk = 1
    batch = embedding_current.shape[0]
    embedding_neurons = IFNeurons(vth, leaky)
    layer_neurons = [[IFNeurons(vth, leaky) for _ in POPULATIONS] for _ in layers]
    seq_len = embedding_current.shape[1]
    score_sums = [embedding_current.new_zeros(batch, layer.attention.self.num_heads, seq_len, seq_len)
                  if mean_scores else None for layer in layers]
    last_spikes = torch.zeros_like(embedding_current)
    for start in range(0, t_conv, steps_per_chunk):
        steps = min(steps_per_chunk, t_conv - start)
        if feedback is None:
            current = embedding_current.repeat(steps, 1, 1)
        else:
            current = embedding_current + feedback(last_spikes)
        x = embedding_neurons.fire(current, steps)
        chunk_mask = mask.repeat(steps, 1, 1, 1)
        for layer, neurons, score_sum in zip(layers, layer_neurons, score_sums):
            outputs, scores = layer(x, chunk_mask, [partial(n.fire, steps=steps) for n in neurons])
            if mean_scores:
                for step_scores in scores.view(steps, batch, *scores.shape[1:]).unbind(0):
                    score_sum.add_(step_scores)
            x = outputs[-1]
        last_spikes = x
    rates = Populations(embedding_neurons.spike_count.div_(t_conv),
                        [[n.spike_count.div_(t_conv) for n in neurons] for neurons in layer_neurons])
    return rates, [s / t_conv for s in score_sums] if mean_scores else None

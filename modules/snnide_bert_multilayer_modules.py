"""The T-step simulation of the spiking BERT, time steps folded into the batch in chunks.

Within one step the populations fire in order (embedding, then each layer's key,
value, attention, self-output, intermediate, output), so a spike crosses every layer in
the same step. Without feedback the network is therefore feed-forward in time: a
population's whole spike train depends only on the spike trains of earlier populations.
The simulation runs a chunk of steps at once: each population's input current is
computed for the whole chunk with the steps folded into the batch (one GEMM), then its
neuron scans the chunk's steps in place. Membranes carry over from chunk to chunk, so the
spikes do not depend on the chunk size. The loop never reads a tensor value on the host.

The average spike rate (ASR) of a population after T steps is its spike count / T (times
the amplitude, for signed spikes: the neuron's ``rate_of``).
"""
from typing import List, NamedTuple, Optional

import torch

from modules.snn_bert_modules import LayerPopulations

# Chunk budgets: small chunks keep CPU GEMMs in cache; GPUs want big GEMMs and few launches.
DEFAULT_CHUNK_BUDGET_MB = {"cpu": 48, "cuda": 2048}


class Populations(NamedTuple):
    """One value per neuron population: the embedding population's, then each layer's. Rates that come from
    a simulation carry its spike counts (spikes of either sign) in ``spikes``."""
    embedding: torch.Tensor
    layers: List[LayerPopulations]
    spikes: Optional["Populations"] = None

    @staticmethod
    def names(num_layers):
        """"embedding", then "layer{i}.{population}" for i = 1..num_layers, in firing order."""
        return ["embedding"] + [f"layer{i}.{name}" for i in range(1, num_layers + 1) for name in LayerPopulations._fields]

    def flat(self):
        """The values in firing order (the order of ``names``)."""
        return [self.embedding] + [value for layer in self.layers for value in layer]

    def layer_outputs(self):
        """Each layer's output population (the next layer's input)."""
        return [layer.output for layer in self.layers]

    def map(self, fn):
        """Populations of fn(value) for each population."""
        return Populations(fn(self.embedding), [LayerPopulations(*(fn(value) for value in layer))
                                                for layer in self.layers])

    def zip_map(self, fn, other):
        """Populations of fn(mine, other's) for each population."""
        layers = [LayerPopulations(*map(fn, mine, theirs)) for mine, theirs in zip(self.layers, other.layers)]
        return Populations(fn(self.embedding, other.embedding), layers)


def neuron_populations(embedding_neuron, layers):
    """Populations of the neuron modules: ``embedding_neuron``, then each layer's ``neurons`` by population name."""
    return Populations(embedding_neuron, [LayerPopulations(*(layer.neurons[name] for name in LayerPopulations._fields))
                                          for layer in layers])


def step_bytes(config, batch, seq_len, element_size):
    """Rough size of one time step's simulation buffers inside one encoder layer."""
    hidden, inter, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    return batch * seq_len * (8 * hidden + 2 * inter + 3 * heads * seq_len) * element_size


def chunk_steps(config, batch, seq_len, element_size, device_type):
    """Time steps simulated at once: ``sim_chunk_steps`` if set, else from ``sim_chunk_budget_mb``
    (or the device's default budget)."""
    spiking = config.spiking
    if spiking.sim_chunk_steps:
        return spiking.sim_chunk_steps
    budget_mb = spiking.sim_chunk_budget_mb
    if budget_mb is None:
        budget_mb = DEFAULT_CHUNK_BUDGET_MB.get(device_type, DEFAULT_CHUNK_BUDGET_MB["cuda"])
    return max(1, int(budget_mb * 2 ** 20) // step_bytes(config, batch, seq_len, element_size))


class Simulation:
    """The state of one simulation of a batch: every population's membrane and spike count.

    ``embedding_neuron`` receives the constant current ``embedding_current`` [B, L, H]
    (plus, with ``feedback``, a Linear H -> H of the last population's spikes of the
    previous step, which couples consecutive steps, so chunks are one step); ``layers`` are
    SpikingBertLayer modules, each with its ``neurons`` by population name; ``mask`` is the
    additive [B, 1, 1, L] attention mask. ``run(steps)`` advances the simulation; ``keep(rows)``
    drops sentences, leaving the others' state exactly as it was. With ``keep_scores`` the
    per-step pre-softmax attention scores are summed for ``mean_scores``.
    """

    def __init__(self, embedding_neuron, layers, embedding_current, mask, steps_per_chunk, feedback=None,
                 keep_scores=True):
        self.embedding_neuron, self.layers, self.feedback = embedding_neuron, layers, feedback
        self.embedding_current, self.mask = embedding_current, mask
        self.steps_per_chunk = 1 if feedback is not None else steps_per_chunk
        self.keep_scores = keep_scores
        self.steps_done = 0
        self.embedding_state = None
        self.layer_states = [None] * len(layers)
        self.score_sums = [None] * len(layers)
        self.last_spikes = torch.zeros_like(embedding_current)

    @torch.no_grad()
    def run(self, steps):
        """Simulate ``steps`` more time steps."""
        for start in range(0, steps, self.steps_per_chunk):
            self._run_chunk(min(self.steps_per_chunk, steps - start))
        self.steps_done += steps
        return self

    def _run_chunk(self, steps):
        batch = self.embedding_current.shape[0]
        if self.feedback is None:
            current = self.embedding_current.repeat(steps, 1, 1)
        else:
            current = self.embedding_current + self.feedback(self.last_spikes)
        if self.embedding_state is None:
            self.embedding_state = self.embedding_neuron.start(current[:batch])
        x = self.embedding_neuron.scan(current, self.embedding_state, steps)
        chunk_mask = self.mask.repeat(steps, 1, 1, 1)
        for index, layer in enumerate(self.layers):
            if self.layer_states[index] is None:
                self.layer_states[index] = {}
            fire = {name: self._firing(neuron, self.layer_states[index], name, batch, steps)
                    for name, neuron in layer.neurons.items()}
            outputs, scores = layer(x, chunk_mask, fire)
            if self.keep_scores:
                self._add_scores(index, scores.view(steps, batch, *scores.shape[1:]))
            x = outputs.output
        self.last_spikes = x

    @staticmethod
    def _firing(neuron, states, name, batch, steps):
        """Population ``name``'s output function for this chunk: its neuron's scan of the current."""
        def fire(current):
            if name not in states:
                states[name] = neuron.start(current[:batch])
            return neuron.scan(current, states[name], steps)
        return fire

    def _add_scores(self, index, per_step_scores):
        if self.score_sums[index] is None:
            self.score_sums[index] = torch.zeros_like(per_step_scores[0])
        for step_scores in per_step_scores.unbind(0):
            self.score_sums[index].add_(step_scores)

    def _counts(self, kind):
        layers = [LayerPopulations(*(getattr(states[name], kind) for name in LayerPopulations._fields))
                  for states in self.layer_states]
        return Populations(getattr(self.embedding_state, kind), layers)

    def spike_counts(self):
        """Populations of each neuron's spike count so far, signed for signed spikes (the state's own tensors)."""
        return self._counts("spike_count")

    def event_counts(self):
        """Populations of each neuron's count of spikes of either sign so far (the state's own tensors)."""
        return self._counts("event_count")

    def rates(self):
        """Populations of average spike rates (each neuron's ``rate_of`` its spike counts over the steps simulated),
        carrying the spike counts of either sign in ``spikes``."""
        rates = self.spike_counts().zip_map(lambda count, neuron: neuron.rate_of(count, self.steps_done),
                                            neuron_populations(self.embedding_neuron, self.layers))
        return rates._replace(spikes=self.event_counts())

    def output_rates(self, tokens):
        """The last layer's output rates [B, tokens, H] of the first ``tokens`` positions so far."""
        count = self.layer_states[-1]["output"].spike_count[:, :tokens]
        return self.layers[-1].neurons["output"].rate_of(count, self.steps_done)

    def mean_scores(self):
        """Each layer's pre-softmax masked scores averaged over the steps simulated ([B, A, L, L])."""
        return [s / self.steps_done for s in self.score_sums]

    def keep(self, rows):
        """Continue with only these batch rows (a LongTensor of indices)."""
        self.embedding_current, self.mask = self.embedding_current[rows], self.mask[rows]
        self.last_spikes = self.last_spikes[rows]
        for state in [self.embedding_state] + [s for states in self.layer_states for s in states.values()]:
            state.keep(rows)
        self.score_sums = [s[rows] if s is not None else None for s in self.score_sums]


def simulate(embedding_neuron, layers, embedding_current, mask, t_conv, steps_per_chunk, feedback=None,
             mean_scores=True):
    """Simulate ``t_conv`` steps; returns (average spike rates as Populations, mean scores per layer, or
    None without ``mean_scores``)."""
    simulation = Simulation(embedding_neuron, layers, embedding_current, mask, steps_per_chunk, feedback,
                            keep_scores=mean_scores).run(t_conv)
    return simulation.rates(), simulation.mean_scores() if mean_scores else None

"""The spiking BERT student, top to bottom.

Notation: B batch, L tokens, H hidden size, A heads, I intermediate size, N layers,
T = t_conv time steps.

1. Embeddings. E = LayerNorm(word + position + segment) (dropout in training), computed
   once: a constant input current for the embedding population.
2. Populations (modules/snn_modules.py). Every population is a layer of spiking neurons,
   by default integrate-and-fire with reset by subtraction:
       u <- u + I(t);  s(t) = [u >= vth];  u <- u - vth s(t)      (u starts at 0)
3. Encoder layers (modules/snn_bert_modules.py). Six populations per layer, BERT's
   blocks feeding them: key = K_fc(s_in), value = V_fc(s_in), attention =
   softmax(Q(s_in) s_key^T / sqrt(d) + mask) s_value, self_output = LayerNorm(W s_att +
   b + s_in), intermediate = gelu(W s_so + b), output = LayerNorm(W s_int + b + s_so),
   the next layer's s_in. 1 + 6N populations in all.
4. Simulation (modules/snnide_bert_multilayer_modules.py). T steps, every population firing once per step
   in that order; a population's output is its average spike rate r = count / T.
5. Training (SpikingBertModel.straight_through). Spikes have no gradient. The surrogate
   evaluates the same graph on rates instead of spikes, each population's output being
   its neuron's rate under a constant current (clamp(c / vth, 0, 1) by default); the
   output is valued at the simulated rates with the surrogate's gradient, a + (r - a).detach().
   Without feedback this is exactly the implicit-differentiation gradient of the paper
   (dF/dz = 0); with the optional feedback connection the equilibrium is implicit and
   the backward pass solves (I - J_F^T) v = g with Broyden's method (modules/broyden.py).
6. Heads. fit_dense maps the embedding rate and each layer's output rate to the
   teacher's width for hidden-state KD; a classifier reads relu of the last layer's
   [CLS] rate (no pooler): models/snn_ide_bert_classi.py.

The settings are in models/config.py (SpikingConfig); loading and saving in
models/pretrained.py.
"""
import logging
from typing import List, NamedTuple, Optional

import torch
import torch.nn as nn

from models.config import SpikingBertConfig
from models.pretrained import load_student
from modules.broyden import broyden
from modules.snn_modules import StraightThrough, make_neuron
from modules.snnide_bert_multilayer_modules import Populations, Simulation, chunk_steps, neuron_populations
from modules.snn_bert_modules import SpikingBertLayer
from transformer.modeling import BertEmbeddings, BertPreTrainedModel, embed_inputs

logger = logging.getLogger(__name__)


class SpikingBertOutput(NamedTuple):
    """What a spiking student returns (a NamedTuple, so DataParallel can gather it)."""
    # fit_dense of [embedding rate, each layer's output rate]: N + 1 tensors [B, L, fit_size].
    hidden_states: List[torch.Tensor]
    # Each layer's pre-softmax masked scores [B, A, L, L]: the surrogate's in training, the mean over T in eval.
    attention_scores: List[torch.Tensor]
    # Every population's output [B, L, width]: spike rates (with surrogate gradients in training).
    rates: Populations
    # Classification students: classifier(relu(last layer's [CLS] rate)) [B, num_labels].
    logits: Optional[torch.Tensor] = None
    # With output_rates: each population's mean rate over real tokens and neurons [B, P] (order: population_names)
    population_rates: Optional[torch.Tensor] = None
    # With output_rates: each population's spikes over real tokens and all steps [B, P] (float64, exact counts).
    population_spikes: Optional[torch.Tensor] = None
    # Every population's spikes of either sign per neuron and step [B, L, width], with the rates' gradient: the
    # rates themselves for binary spikes, |rate| / amplitude for signed ones (what the rate and energy penalties
    # count).
    event_rates: Optional[Populations] = None


class SpikingBertEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(SpikingBertLayer(config) for _ in range(config.num_hidden_layers))


class ImplicitBackward:
    """Tensor hook on the equilibrium output: replaces its gradient g by v = (I - J_F^T)^-1 g."""

    def __init__(self, fixed_point_map, state, threshold, tol):
        self.fixed_point_map = fixed_point_map
        self.state = state
        self.threshold = threshold
        self.tol = tol

    def __call__(self, grad):
        def residual(v):
            jacobian_t_v, = torch.autograd.grad(self.fixed_point_map, self.state, v,
                                                retain_graph=True, allow_unused=True)
            if jacobian_t_v is None:  # F does not depend on z: J = 0
                return grad - v
            return jacobian_t_v + grad - v

        return broyden(residual, torch.zeros_like(grad), self.threshold, self.tol)


class SpikingBertModel(nn.Module):
    """Embeddings, the embedding population, N spiking encoder layers, optional feedback."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.embedding_neuron = make_neuron(config.spiking, config.hidden_size)
        self.encoder = SpikingBertEncoder(config)
        self.feedback = (nn.Linear(config.hidden_size, config.hidden_size, bias=False)
                         if config.spiking.feedback else None)

    @property
    def layers(self):
        return self.encoder.layer

    def population_names(self):
        return Populations.names(len(self.layers))

    def neurons(self):
        """Every population's neuron module, by population name."""
        return dict(zip(self.population_names(), neuron_populations(self.embedding_neuron, self.layers).flat()))

    def event_rates(self, rates):
        """Populations of spikes of either sign per neuron and step, from Populations of outputs: the rates
        themselves for binary spikes; for signed spikes each neuron's ``event_rate`` (|rate| / amplitude), valued
        at a simulation's own counts where the rates carry them (a neuron may fire both signs)."""
        if not self.config.spiking.ternary_spikes:
            return rates
        event_rates = rates.zip_map(lambda rate, neuron: neuron.event_rate(rate),
                                    neuron_populations(self.embedding_neuron, self.layers))
        if rates.spikes is None:
            return event_rates
        steps = self.config.spiking.t_conv
        return event_rates.zip_map(lambda path, count: StraightThrough.apply(path, count / steps), rates.spikes)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        """(Populations of [B, L, width] outputs, list of N [B, A, L, L] pre-softmax masked scores).

        Eval: spike rates and the mean over T of the per-step scores. Training: rates with
        surrogate gradients and the surrogate's scores (without simulation when
        train_simulation is off: the surrogate's values).
        """
        embedding_current, mask = embed_inputs(self.embeddings, input_ids, token_type_ids, attention_mask)
        if self.training and not self.config.spiking.train_simulation:
            return self.surrogate(embedding_current, mask)
        rates, mean_scores = self.simulate(embedding_current.detach(), mask)
        if not self.training:
            return rates, mean_scores
        return self.straight_through(embedding_current, mask, rates)

    def start_simulation(self, embedding_current, mask, keep_scores=True):
        """A Simulation of this batch at step 0 (modules/snnide_bert_multilayer_modules.py)."""
        batch, seq_len = embedding_current.shape[:2]
        steps = chunk_steps(self.config, batch, seq_len, embedding_current.element_size(),
                            embedding_current.device.type)
        return Simulation(self.embedding_neuron, self.layers, embedding_current, mask, steps, self.feedback,
                          keep_scores=keep_scores)

    def simulate(self, embedding_current, mask):
        """Spike rates (Populations) after t_conv steps and, in eval mode, each layer's mean scores."""
        simulation = self.start_simulation(embedding_current, mask, keep_scores=not self.training)
        simulation.run(self.config.spiking.t_conv)
        return simulation.rates(), simulation.mean_scores() if not self.training else None

    def surrogate(self, embedding_current, mask, feedback_state=None, before_firing=None):
        """The graph on rates: every population outputs its neuron's surrogate rate of its current.

        ``before_firing(neuron, current)``, when given, sees every population's current before its
        neuron does (threshold calibration)."""
        steps = self.config.spiking.t_conv

        def surrogate_rate(neuron, current):
            if before_firing is not None:
                before_firing(neuron, current)
            return neuron.surrogate_rate(current, steps)

        if self.feedback is not None and feedback_state is not None:
            embedding_current = embedding_current + self.feedback(feedback_state)
        x = embedding = surrogate_rate(self.embedding_neuron, embedding_current)
        layers, scores = [], []
        for layer in self.layers:
            fire = {name: (lambda current, neuron=neuron: surrogate_rate(neuron, current))
                    for name, neuron in layer.neurons.items()}
            outputs, layer_scores = layer(x, mask, fire)
            layers.append(outputs)
            scores.append(layer_scores)
            x = outputs.output
        return Populations(embedding, layers), scores

    def straight_through(self, embedding_current, mask, rates):
        """Outputs valued at the spike rates ``rates`` with the surrogate's gradient."""
        if self.feedback is None:
            activations, scores = self.surrogate(embedding_current, mask)
        else:
            activations, scores = self.implicit_surrogate(embedding_current, mask, rates.layers[-1].output)
        return activations.zip_map(StraightThrough.apply, rates)._replace(spikes=rates.spikes), scores

    def implicit_surrogate(self, embedding_current, mask, equilibrium):
        """Surrogate whose last population is the equilibrium state z*, differentiated implicitly.

        F(z) (the last population's surrogate with feedback input z) is evaluated at z =
        ``equilibrium`` (detached); the returned state has z*'s value and F's graph behind
        it, and its gradient is replaced by the Broyden solution v before flowing into F's
        parameters. Every population that depends on z* is evaluated from that state, so
        its gradient reaches the solve.
        """
        spiking = self.config.spiking
        state = equilibrium.detach().requires_grad_()
        fixed_point_map = self.surrogate(embedding_current, mask, state)[0].layers[-1].output
        state_out = fixed_point_map + (state - fixed_point_map).detach()
        if state_out.requires_grad:
            state_out.register_hook(ImplicitBackward(fixed_point_map, state, spiking.broyden_threshold,
                                                     spiking.broyden_tol))
        activations, scores = self.surrogate(embedding_current, mask, state_out)
        activations.layers[-1] = activations.layers[-1]._replace(output=state_out)
        return activations, scores


def mean_rate_per_example(rate, attention_mask):
    """[B, L, W] rates -> [B] mean over real tokens and neurons."""
    mask = attention_mask.to(rate.dtype)
    return (rate.mean(-1) * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def population_statistics(spike_counts, attention_mask, steps):
    """([B, P] mean rate, [B, P] spike count) of every population, from Populations of [B, L, W] counts of spikes
    of either sign after ``steps`` steps (one int, or a [B] tensor): spikes per neuron and step averaged over real
    tokens, and spikes summed over real tokens, neurons and steps (float64, exact); P in population_names order."""
    if torch.is_tensor(steps):
        steps = steps.view(-1, 1, 1)
    flat = [count.detach() for count in spike_counts.flat()]
    population_rates = torch.stack([mean_rate_per_example(count / steps, attention_mask) for count in flat], 1)
    population_spikes = torch.stack([(count.double().sum(-1) * attention_mask.double()).sum(-1)
                                     for count in flat], 1)
    return population_rates, population_spikes


class SpikingBertPreTrainedModel(BertPreTrainedModel):
    """Base of the students: the spiking backbone ``bert`` and ``fit_dense``, BERT's weight
    init and save_pretrained, a strict from_pretrained (models/pretrained.py).

    ``config`` (a BertConfig with flat spiking keys, or a SpikingBertConfig) is converted,
    copied and checked; the copy is ``self.config``.
    """

    def __init__(self, config):
        super().__init__(SpikingBertConfig.from_bert_config(config))
        if self.config.fit_size is None:
            self.config.fit_size = self.config.hidden_size
        self.bert = SpikingBertModel(self.config)
        self.fit_dense = nn.Linear(self.config.hidden_size, self.config.fit_size)

    def population_names(self):
        return self.bert.population_names()

    def start_simulation(self, input_ids, token_type_ids, attention_mask):
        """A Simulation of this batch at step 0, for callers that run the steps themselves and read the spike
        counts between them (adaptive time steps, spike pictures); no attention scores are kept."""
        current, mask = embed_inputs(self.bert.embeddings, input_ids, token_type_ids, attention_mask)
        return self.bert.start_simulation(current, mask, keep_scores=False)

    def num_parameters(self, trainable_only=False):
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def outputs(self, rates, attention_scores, attention_mask, output_rates, logits=None):
        """The SpikingBertOutput of a forward pass."""
        hidden_states = [self.fit_dense(r) for r in [rates.embedding] + rates.layer_outputs()]
        event_rates = self.bert.event_rates(rates)
        if not output_rates:
            return SpikingBertOutput(hidden_states, attention_scores, rates, logits, event_rates=event_rates)
        t_conv = self.config.spiking.t_conv
        # Without a simulation (training on the surrogate alone): the counts its rates stand for.
        counts = rates.spikes
        if counts is None:
            counts = event_rates.map(lambda rate: (rate.detach() * t_conv).round())
        population_rates, population_spikes = population_statistics(counts, attention_mask, t_conv)
        return SpikingBertOutput(hidden_states, attention_scores, rates, logits, population_rates,
                                 population_spikes, event_rates)

    @classmethod
    def build(cls, config):
        return cls(config)

    @classmethod
    def from_pretrained(cls, model_dir, flags=None, fresh_weights=False, **overrides):
        """Student from ``model_dir``; see models.pretrained.load_student."""
        return load_student(cls, model_dir, flags=flags, fresh_weights=fresh_weights, **overrides)

    def fresh_weights_allowed(self, key):
        """Weights that may be missing from (or mis-shaped in) a checkpoint and start fresh: fit_dense
        (a teacher of another width), thresholds of a student whose scope the config changed, and the amplitudes
        of signed spikes (a student of binary spikes continued with signed ones)."""
        return key.startswith("fit_dense.") or key.endswith(("log_threshold", "log_amplitude"))

    def refuses_unused(self, key):
        """Every backbone tensor of a student's file has a place in a student built from the same config:
        one that has none (another layer, a feedback connection) means the config does not fit."""
        return key.startswith("bert.") and not self.fresh_weights_allowed(key)

    def after_loading(self, model_dir, loading_info):
        """Hook for heads that must know what the checkpoint had."""


class SpikingBertForGeneralKD(SpikingBertPreTrainedModel):
    """The student of general KD: forward -> SpikingBertOutput (hidden_states, attention_scores, rates)."""

    def __init__(self, config):
        super().__init__(config)
        self.apply(self.init_weights)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, output_rates=False):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        rates, attention_scores = self.bert(input_ids, token_type_ids, attention_mask)
        return self.outputs(rates, attention_scores, attention_mask, output_rates)

"""The spiking BERT backbone: simulation in every mode, surrogate gradients in training (SPEC 1.4).

Training forward: simulate T steps without autograd to get the average spike
rates r_p, evaluate the equilibrium surrogate a_p = clamp(current_p(a of inputs) /
vth, 0, 1) once with autograd, and output a_p + (r_p - a_p).detach() (StraightThrough):
the value is the spike rate, the gradient the surrogate's. Without feedback this is exactly the
implicit-differentiation gradient (dF/dz = 0).

With feedback (a Linear H -> H from the last output population into the embedding
population) the rates are the fixed point z* = F(z*) of the surrogate map F(z) =
last-population surrogate with feedback input z. The backward pass then solves
(I - J_F(z*))^T v = g with Broyden's method, g being the total gradient reaching z*
from every output, and pushes v through F's parameters with one VJP.
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from modules.broyden import broyden
from modules.snn_bert_modules import POPULATIONS, SpikingBertLayer
from modules.snn_modules import Populations, chunk_steps, simulate
from transformer.modeling import BertEmbeddings, embed_inputs


def equilibrium_rate(current, vth):
    """clamp(current / vth, 0, 1): the rate an IF population converges to under a constant current.

    hardtanh_ runs in place on the fresh quotient, so autograd saves the rate (which
    the next block saves anyway) rather than the current: its backward uses its result.
    """
    return F.hardtanh_(current / vth, 0.0, 1.0)


class StraightThrough(torch.autograd.Function):
    """Value of the spike rate, gradient into the surrogate: a + (r - a).detach() without
    allocating a new tensor (the output is a view of the rate)."""

    @staticmethod
    def forward(ctx, surrogate, rate):
        return rate.view_as(rate)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


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
            if jacobian_t_v is None:  # F does not depend on z (feedback off): J = 0
                return grad - v
            return jacobian_t_v + grad - v

        return broyden(residual, torch.zeros_like(grad), self.threshold, self.tol)


class SpikingBertModel(nn.Module):
    """Embeddings, N spiking encoder layers, optional feedback; outputs rates of every population.

    Config keys used: t_conv, vth, leaky, feedback, and optionally force_implicit
    (Broyden backward even without feedback), broyden_threshold (30),
    broyden_tol (1e-6), sim_chunk_steps / sim_chunk_budget_mb (simulation chunk).
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = SpikingBertEncoder(config)
        self.feedback = nn.Linear(config.hidden_size, config.hidden_size, bias=False) if config.feedback else None

    def population_names(self):
        return ["embedding"] + [f"layer{i}.{name}" for i in range(1, len(self.encoder.layer) + 1)
                                for name in POPULATIONS]

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        """(Populations of [B, L, width] outputs, list of N [B, A, L, L] pre-softmax masked scores).

        Eval: spike rates and the mean over T of the per-step scores. Train: rates with
        surrogate gradients and the surrogate's scores.
        """
        embedding_current, mask = embed_inputs(self.embeddings, input_ids, token_type_ids, attention_mask)
        rates, mean_scores = self.simulate(embedding_current.detach(), mask)
        if not self.training:
            return rates, mean_scores
        return self.straight_through(embedding_current, mask, rates)

    def simulate(self, embedding_current, mask):
        """Spike rates (Populations) and, in eval mode, the mean over T of each layer's scores."""
        batch, seq_len = embedding_current.shape[:2]
        steps = chunk_steps(self.config, batch, seq_len, embedding_current.element_size(),
                            embedding_current.device.type)
        return simulate(self.encoder.layer, embedding_current, mask, self.config.t_conv, self.config.vth,
                        self.config.leaky, steps, self.feedback, mean_scores=not self.training)

    def surrogate(self, embedding_current, mask, feedback_state=None):
        """Rates at equilibrium a_p = clamp(current_p / vth, 0, 1), wired like the simulation."""
        clamp = partial(equilibrium_rate, vth=self.config.vth)
        if self.feedback is not None and feedback_state is not None:
            embedding_current = embedding_current + self.feedback(feedback_state)
        embedding = clamp(embedding_current)
        x, layers, scores = embedding, [], []
        for layer in self.encoder.layer:
            outputs, layer_scores = layer(x, mask, [clamp] * len(POPULATIONS))
            layers.append(outputs)
            scores.append(layer_scores)
            x = outputs[-1]
        return Populations(embedding, layers), scores

    def straight_through(self, embedding_current, mask, rates):
        """Outputs valued at the spike rates ``rates`` with the surrogate's gradient."""
        if self.feedback is None and not getattr(self.config, "force_implicit", False):
            activations, scores = self.surrogate(embedding_current, mask)
        else:
            activations, scores = self.implicit_surrogate(embedding_current, mask, rates.layer_outputs()[-1])
        return activations.zip_map(StraightThrough.apply, rates), scores

    def implicit_surrogate(self, embedding_current, mask, equilibrium):
        """Surrogate whose last population is the equilibrium state z*, differentiated implicitly.

        fixed_point_map = F(z) is evaluated at z = ``equilibrium`` (detached); the
        returned state has z*'s value and F's graph behind it, and its gradient is
        replaced by the Broyden solution v before flowing into F's parameters. Every
        population that depends on z* is evaluated from that state, so its gradient
        reaches the solve.
        """
        state = equilibrium.detach().requires_grad_()
        fixed_point_map = self.surrogate(embedding_current, mask, state)[0].layer_outputs()[-1]
        state_out = fixed_point_map + (state - fixed_point_map).detach()
        if state_out.requires_grad:
            state_out.register_hook(ImplicitBackward(fixed_point_map, state,
                                                     getattr(self.config, "broyden_threshold", 30),
                                                     getattr(self.config, "broyden_tol", 1e-6)))
        activations, scores = self.surrogate(embedding_current, mask, state_out)
        activations.layers[-1][-1] = state_out
        return activations, scores

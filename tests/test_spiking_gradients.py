"""Training gradients: straight-through surrogate, forced Broyden solve, implicit gradient with feedback."""
import torch

from models import SpikingBertForGeneralKD
from modules.broyden import broyden
from modules.snn_modules import IFNeuron, StraightThrough
from transformer.modeling import BertConfig, extended_attention_mask


def tiny_model(**overrides):
    values = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=16, t_conv=8, vth=1.0, initializer_range=0.5,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(overrides)
    torch.manual_seed(0)
    return SpikingBertForGeneralKD(BertConfig(**values)).double().train()


def tiny_batch():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (2, 6), generator=generator)  # no [PAD] id: its embedding has no gradient
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    return ids, torch.zeros_like(ids), mask


def linear_loss(populations, scores, seed=2):
    """A fixed random linear function of every population (a list) and every score tensor."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for x in populations + [1e-3 * s for s in scores]:
        total = total + (torch.randn(x.shape, generator=generator, dtype=x.dtype) * x).sum()
    return total


def parameter_grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_broyden_solves_a_linear_system():
    generator = torch.Generator().manual_seed(0)
    n = 12
    noise = torch.randn(3, n, n, generator=generator, dtype=torch.double)
    matrices = torch.eye(n, dtype=torch.double) + 0.3 * noise / n ** 0.5
    rhs = torch.randn(3, n, generator=generator, dtype=torch.double)
    solution = broyden(lambda x: rhs - (matrices @ x[..., None])[..., 0], torch.zeros_like(rhs),
                       threshold=3 * n, tol=1e-12)
    torch.testing.assert_close(solution, torch.linalg.solve(matrices, rhs), rtol=1e-9, atol=1e-9)


def test_broyden_returns_the_best_iterate_within_the_threshold():
    rhs = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.double)
    matrix = torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.5, 0.3], [0.1, 0.0, 0.8]], dtype=torch.double)
    exact = torch.linalg.solve(matrix, rhs[0])
    few = broyden(lambda x: rhs - x @ matrix.T, torch.zeros_like(rhs), threshold=1)
    many = broyden(lambda x: rhs - x @ matrix.T, torch.zeros_like(rhs), threshold=20, tol=1e-12)
    assert (few[0] - exact).norm() > 1e-3
    torch.testing.assert_close(many[0], exact)


def test_without_feedback_gradient_is_surrogate_gradient_at_spike_rates_and_forced_broyden_agrees():
    model = tiny_model()
    ids, segments, mask = tiny_batch()
    torch.manual_seed(5)
    rates, scores = model.bert(ids, segments, mask)
    linear_loss(rates.flat(), scores).backward()
    straight_through = parameter_grads(model)
    embedding_current = model.bert.embeddings(ids, segments)
    additive = extended_attention_mask(mask, embedding_current.dtype)

    # The loss's gradient at the spike rates pushed through the surrogate by hand.
    model.zero_grad()
    simulated, _ = model.bert.simulate(embedding_current.detach(), additive)
    activations, surrogate_scores = model.bert.surrogate(embedding_current, additive)
    value_leaves = [r.clone().requires_grad_() for r in simulated.flat()]
    score_leaves = [s.detach().requires_grad_() for s in surrogate_scores]
    loss_grads = torch.autograd.grad(linear_loss(value_leaves, score_leaves), value_leaves + score_leaves)
    torch.autograd.backward(activations.flat() + surrogate_scores, loss_grads)
    by_hand = parameter_grads(model)

    # The Broyden backward forced on (the path feedback takes): with J = 0 it must agree.
    model.zero_grad()
    embedding_current = model.bert.embeddings(ids, segments)
    activations, scores = model.bert.implicit_surrogate(embedding_current, additive, simulated.layers[-1].output)
    linear_loss(activations.zip_map(StraightThrough.apply, simulated).flat(), scores).backward()
    forced = parameter_grads(model)

    assert straight_through.keys() == by_hand.keys() == forced.keys()
    assert sum(g.abs().sum() for g in straight_through.values()) > 1.0
    for name in straight_through:
        torch.testing.assert_close(by_hand[name], straight_through[name], rtol=1e-6, atol=1e-9, msg=name)
        torch.testing.assert_close(forced[name], straight_through[name], rtol=1e-6, atol=1e-9, msg=name)


def surrogate_equilibrium(bert, ids, segments, mask):
    """Iterate the surrogate z <- F(z) to its fixed point; returns its populations and scores."""
    embedding_current = bert.embeddings(ids, segments)
    additive = extended_attention_mask(mask, embedding_current.dtype)
    state = torch.zeros_like(embedding_current)
    for _ in range(1000):
        populations, scores = bert.surrogate(embedding_current, additive, state)
        state, previous = populations.layer_outputs()[-1], state
        if (state - previous).abs().max() < 1e-12:
            return populations, scores
    raise AssertionError("surrogate iteration did not converge")


def test_feedback_implicit_gradient_matches_finite_differences():
    model = tiny_model(feedback=True)
    with torch.no_grad():
        model.bert.feedback.weight.mul_(0.2)  # strong enough to matter, weak enough to contract
    ids, segments, mask = tiny_batch()
    with torch.no_grad():
        equilibrium, _ = surrogate_equilibrium(model.bert, ids, segments, mask)

    embedding_current = model.bert.embeddings(ids, segments)
    additive = extended_attention_mask(mask, embedding_current.dtype)
    outputs, scores = model.bert.straight_through(embedding_current, additive, equilibrium)
    linear_loss(outputs.flat(), scores).backward()
    params = [p for p in model.parameters() if p.grad is not None]
    assert model.bert.feedback.weight.grad.abs().sum() > 0
    generator = torch.Generator().manual_seed(3)
    directions = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]
    implicit = sum((p.grad * d).sum() for p, d in zip(params, directions)).item()

    def loss_at_equilibrium(step):
        with torch.no_grad():
            for p, d in zip(params, directions):
                p.add_(step * d)
            populations, scores = surrogate_equilibrium(model.bert, ids, segments, mask)
            loss = linear_loss(populations.flat(), scores).item()
            for p, d in zip(params, directions):
                p.sub_(step * d)
        return loss

    eps = 1e-6
    finite_difference = (loss_at_equilibrium(eps) - loss_at_equilibrium(-eps)) / (2 * eps)
    assert abs(implicit - finite_difference) <= 1e-3 * abs(finite_difference)

    # The naive gradient (treating z* as a constant input) is clearly wrong, so the check has teeth.
    model.zero_grad()
    state = equilibrium.layer_outputs()[-1]
    naive_outputs, naive_scores = model.bert.surrogate(model.bert.embeddings(ids, segments), additive, state)
    linear_loss(naive_outputs.flat(), naive_scores).backward()
    naive = sum((p.grad * d).sum() for p, d in zip(params, directions)).item()
    assert abs(naive - finite_difference) > 0.05 * abs(finite_difference)


def test_equilibrium_rate_is_clamped_quotient_with_slope_one_over_vth_inside():
    current = torch.tensor([-0.3, 0.0, 0.2, 0.7, 1.4, 2.0], dtype=torch.double, requires_grad=True)
    rate = IFNeuron(vth=1.4).equilibrium_rate(current * 1.0)
    torch.testing.assert_close(rate, (current / 1.4).clamp(0, 1), rtol=0, atol=1e-15)
    rate.backward(torch.arange(1.0, 7.0, dtype=torch.double))
    # Slope 1/vth strictly inside (0, 1); zero where clamped, including the edges.
    torch.testing.assert_close(current.grad, torch.tensor([0, 0, 3 / 1.4, 4 / 1.4, 0, 0], dtype=torch.double))

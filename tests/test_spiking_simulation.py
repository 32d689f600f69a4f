"""The time-folded, chunked simulation against a plain step-by-step loop; neuron dynamics."""
import contextlib
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from models import SpikingBertForGeneralKD
from models.config import SpikingBertConfig
from modules.snn_modules import IFNeuron
from modules.snnide_bert_multilayer_modules import chunk_steps, step_bytes
from modules.snn_bert_modules import StepDropout
from spike_recording import record_spikes
from transformer.modeling import BertConfig, extended_attention_mask


def tiny_config(**overrides):
    values = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=32, t_conv=8, vth=1.0, leaky=1.0,
                  initializer_range=0.3)
    values.update(overrides)
    return BertConfig(**values)


def tiny_batch(seed=0, batch=3, length=10):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (batch, length), generator=generator)
    segments = (torch.arange(length) >= length // 2).long().expand(batch, length)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 7:] = 0
    return ids, segments, mask


@contextlib.contextmanager
def default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def reference_spikes(model, ids, segments, mask):
    """A plain loop over time steps and populations, wired from the model's definition with raw
    tensor ops; each population steps with its neuron's own one-step rule (fire_step). Returns the
    spike trains, the mean scores and the smallest distance of a membrane from the threshold."""
    config = model.config
    bert = model.bert
    heads = config.num_attention_heads
    head_size = config.hidden_size // heads
    current_e = bert.embeddings(ids, segments)
    additive = extended_attention_mask(mask, current_e.dtype)
    neuron_of = bert.neurons()
    membranes = {}
    trains = {}
    closest = [math.inf]

    def neuron(name, current):
        rule = neuron_of[name if name == "embedding" else f"layer{name[0] + 1}.{name[1]}"]
        membrane = membranes.setdefault(name, rule.start(current).membrane)
        closest[0] = min(closest[0], (membrane + current - rule.threshold()).abs().min().item())
        spikes = current.clone()
        rule.fire_step(membrane, spikes, rule.threshold())
        trains.setdefault(name, []).append(spikes)
        return spikes

    def heads_of(x):
        return x.view(x.shape[0], x.shape[1], heads, head_size).transpose(1, 2)

    def add_norm(block, x, residual):
        return F.layer_norm(F.linear(x, block.dense.weight, block.dense.bias) + residual, (config.hidden_size,),
                            block.LayerNorm.weight, block.LayerNorm.bias, config.layer_norm_eps)

    scores_sum = [0.0] * config.num_hidden_layers
    s_last = torch.zeros_like(current_e)
    for _ in range(config.spiking.t_conv):
        feedback = 0.0 if bert.feedback is None else F.linear(s_last, bert.feedback.weight)
        s_in = neuron("embedding", current_e + feedback)
        for index, layer in enumerate(bert.encoder.layer):
            attention = layer.attention.self
            s_key = neuron((index, "key"), F.linear(s_in, attention.key.weight, attention.key.bias))
            s_value = neuron((index, "value"), F.linear(s_in, attention.value.weight, attention.value.bias))
            query = heads_of(F.linear(s_in, attention.query.weight, attention.query.bias))
            scores = query @ heads_of(s_key).transpose(-1, -2) / math.sqrt(head_size) + additive
            scores_sum[index] = scores_sum[index] + scores
            context = (scores.softmax(-1) @ heads_of(s_value)).transpose(1, 2).reshape(s_in.shape)
            s_att = neuron((index, "attention"), context)
            s_so = neuron((index, "self_output"), add_norm(layer.attention.output, s_att, s_in))
            s_int = neuron((index, "intermediate"), F.gelu(F.linear(s_so, layer.intermediate.dense.weight,
                                                                     layer.intermediate.dense.bias)))
            s_in = neuron((index, "output"), add_norm(layer.output, s_int, s_so))
        s_last = s_in
    return list(trains.values()), [s / config.spiking.t_conv for s in scores_sum], closest[0]


@pytest.mark.parametrize("leaky, chunk, feedback", [(1.0, 3, False), (0.9, 8, False), (1.0, 4, True)])
@torch.no_grad()
def test_folded_simulation_matches_step_by_step_loop(monkeypatch, leaky, chunk, feedback):
    # In float64, weights drawn in float64 too: in float32 the folded and the step-by-step products
    # round differently, on some CPUs a membrane within rounding of vth then fires in one and not the
    # other, and with feedback that one spike changes everything after it. torch's float32 normal_
    # also draws other weights on other CPUs.
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        model = SpikingBertForGeneralKD(tiny_config(leaky=leaky, sim_chunk_steps=chunk, feedback=feedback)).eval()
    ids, segments, mask = tiny_batch()
    trains = record_spikes(monkeypatch)
    rates, mean_scores = model.bert(ids, segments, mask)
    simulated = list(trains.values())
    expected, expected_scores, closest = reference_spikes(model, ids, segments, mask)
    # Float64 rounding moves a membrane by about 1e-15 of its size, so one farther than 1e-9 from the
    # threshold fires, or not, in both alike (the closest here is 4e-7).
    assert closest > 1e-9, f"a membrane came within {closest:.3g} of the threshold"
    assert len(simulated) == len(expected) == 1 + 6 * model.config.num_hidden_layers
    for got, want in zip(simulated, expected):
        got, want = torch.stack(got), torch.stack(want)
        assert got.shape == want.shape
        assert torch.equal(got, want), f"{(got != want).sum().item()} of {want.numel()} spikes differ"
    # Non-trivial activity: the comparison above would be vacuous for silent populations.
    mean_rates = torch.stack([r.mean() for r in rates.flat()])
    assert (mean_rates > 0.02).sum() >= 10, mean_rates
    for got, want in zip(mean_scores, expected_scores):
        # The same sums in another order: float64 rounding (4e-16 here, the largest score being the -10000 mask).
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12 * want.abs().max().item())


@torch.no_grad()
def test_rates_identical_for_every_chunk_size():
    torch.manual_seed(1)
    model = SpikingBertForGeneralKD(tiny_config(t_conv=7)).eval()
    ids, segments, mask = tiny_batch(seed=1)
    results = []
    for steps in (1, 2, 3, 7, 50):
        model.config.spiking = dataclasses.replace(model.config.spiking, sim_chunk_steps=steps)
        results.append(model.bert(ids, segments, mask))
    (rates, scores) = results[0]
    for other_rates, other_scores in results[1:]:
        for a, b in zip(rates.flat(), other_rates.flat()):
            assert torch.equal(a, b)
        for a, b in zip(scores, other_scores):
            torch.testing.assert_close(a, b)


@torch.no_grad()
def test_rates_are_multiples_of_one_over_t():
    torch.manual_seed(2)
    model = SpikingBertForGeneralKD(tiny_config(t_conv=6)).eval()
    rates, _ = model.bert(*tiny_batch(seed=2))
    for rate in rates.flat():
        counts = rate * 6
        assert torch.allclose(counts, counts.round(), atol=1e-5)
        assert rate.min() >= 0 and rate.max() <= 1


@pytest.mark.parametrize("t_conv, vth", [(8, 1.0), (25, 0.7)])
def test_constant_input_rate_approaches_clamped_ratio(t_conv, vth):
    currents = torch.linspace(-1.0, 3.0, 401)
    neuron = IFNeuron(vth)
    state = neuron.start(currents)
    neuron.scan(currents.repeat(t_conv), state, t_conv)
    rate = state.spike_count / t_conv
    assert (rate - (currents / vth).clamp(0, 1)).abs().max() <= 1 / t_conv + 1e-6
    assert torch.allclose(rate * t_conv, (rate * t_conv).round())


def test_chunk_budget_picks_more_steps_for_more_memory():
    config = SpikingBertConfig(**tiny_config().to_dict())
    one_step = step_bytes(config, 8, 128, 4)
    config.spiking = dataclasses.replace(config.spiking, sim_chunk_budget_mb=10 * one_step / 2 ** 20)
    assert chunk_steps(config, 8, 128, 4, "cpu") == 10
    config.spiking = dataclasses.replace(config.spiking, sim_chunk_budget_mb=0)
    assert chunk_steps(config, 8, 128, 4, "cpu") == 1
    config.spiking = dataclasses.replace(config.spiking, sim_chunk_steps=4)
    assert chunk_steps(config, 8, 128, 4, "cpu") == 4


def test_training_dropout_draws_a_new_mask_every_step(monkeypatch):
    torch.manual_seed(3)
    config = tiny_config(t_conv=4, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.5, sim_chunk_steps=4)
    model = SpikingBertForGeneralKD(config).train()
    ids, segments, mask = tiny_batch(seed=3, batch=1)
    probs_per_step = []
    original = StepDropout.forward

    def dropout(self, x):
        out = original(self, x)
        if x.dim() == 4 and not torch.is_grad_enabled():
            probs_per_step.extend(out.unbind(0))
        return out

    monkeypatch.setattr(StepDropout, "forward", dropout)
    with torch.no_grad():
        model.bert.simulate(model.bert.embeddings(ids, segments), extended_attention_mask(mask, torch.float32))
    first_layer_steps = probs_per_step[:4]
    dropped = [step == 0 for step in first_layer_steps]
    assert not torch.equal(dropped[0], dropped[1]) and not torch.equal(dropped[1], dropped[2])


def test_step_dropout_keeps_one_minus_p_and_rescales():
    torch.manual_seed(4)
    dropout = StepDropout(0.25)
    out = dropout(torch.full((200_000,), 3.0))
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    assert torch.allclose(out[kept], torch.tensor(4.0))
    assert torch.equal(dropout.eval()(out), out)


def test_step_dropout_lanes_are_independent_with_the_right_rate():
    # Four neighbouring elements share one 64-bit draw: each lane, and each pair of lanes, must
    # still drop at p and p^2 (tolerances are 5 standard deviations).
    torch.manual_seed(5)
    p, rows = 0.1, 100_000
    dropped = (StepDropout(p)(torch.ones(rows, 4)) == 0).double()
    for lane in range(4):
        assert abs(dropped[:, lane].mean().item() - p) < 5 * (p * (1 - p) / rows) ** 0.5
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        assert abs((dropped[:, a] * dropped[:, b]).mean().item() - p * p) < 5 * (p * p / rows) ** 0.5
    kept = StepDropout(p)(torch.full((rows,), 2.0))
    assert torch.allclose(kept[kept != 0], torch.tensor(2.0 * 2 ** 16 / (2 ** 16 - round(p * 2 ** 16))))

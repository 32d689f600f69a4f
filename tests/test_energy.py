"""Operation counts and energy (modules/energy.py): against a brute-force count of the
simulation's own spikes, against the closed form of a BERT forward, and monotone in t_conv."""
import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from models import SpikingBertForSequenceClassification
from modules.energy import (BertSize, accumulates_per_example, bert_multiply_accumulates,
                            matrix_product_multiply_accumulates, multiply_accumulates_per_example,
                            operation_counts, spike_counts_by_population, summarise)
from spike_recording import record_spikes
from transformer.modeling import BertConfig, BertForSequenceClassification

SIZE = BertSize(hidden=16, intermediate=24, heads=2, layers=2, num_labels=2)


def tiny_student(t_conv, vth=1.0):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=SIZE.hidden, intermediate_size=SIZE.intermediate,
                        num_attention_heads=SIZE.heads, num_hidden_layers=SIZE.layers,
                        max_position_embeddings=16, t_conv=t_conv, vth=vth, initializer_range=0.4,
                        sim_chunk_steps=3)
    return SpikingBertForSequenceClassification(config, num_labels=SIZE.num_labels).eval()


def padded_batch():
    """Three examples of 9, 6 and 3 real tokens, padded to 9."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 50, (3, 9), generator=generator)
    segments = (torch.arange(9) >= 4).long().expand(3, 9)
    mask = (torch.arange(9) < torch.tensor([[9], [6], [3]])).long()
    return ids, segments, mask


def brute_force_accumulates(spikes, mask):
    """Population -> [B] ACs, counted product by product at every step from the
    spike trains: nnz of the binary operand at real tokens times the other operand's fan-out."""
    real = mask.bool()[:, :, None]
    queries = mask.sum(1)
    head_size = SIZE.hidden // SIZE.heads

    def nnz(s):
        return (s * real).sum((1, 2)).double()

    def nnz_times_queries_per_head(s):
        per_head = (s * real).view(*s.shape[:2], SIZE.heads, head_size).sum((1, 3)).double()
        return (per_head * queries[:, None]).sum(1)

    acs = {name: torch.zeros(len(mask), dtype=torch.float64) for name in spikes}
    for step in range(len(spikes["embedding"])):
        layer_input = "embedding"
        for layer in SIZE.layer_names():
            s_in = spikes[layer_input][step]
            s_key, s_value, s_att, s_so, s_int = (spikes[f"{layer}.{population}"][step] for population in
                                                  ("key", "value", "attention", "self_output", "intermediate"))
            acs[layer_input] += nnz(s_in) * SIZE.hidden  # key FC
            acs[layer_input] += nnz(s_in) * SIZE.hidden  # value FC
            acs[layer_input] += nnz(s_in) * SIZE.hidden  # query FC
            acs[f"{layer}.key"] += nnz_times_queries_per_head(s_key)  # Q K^T
            acs[f"{layer}.value"] += nnz_times_queries_per_head(s_value)  # softmax(S) V
            acs[f"{layer}.attention"] += nnz(s_att) * SIZE.hidden  # self-output FC
            acs[layer_input] += nnz(s_in)  # residual into the self-output LayerNorm
            acs[f"{layer}.self_output"] += nnz(s_so) * SIZE.intermediate  # intermediate FC
            acs[f"{layer}.intermediate"] += nnz(s_int) * SIZE.hidden  # output FC
            acs[f"{layer}.self_output"] += nnz(s_so)  # residual into the output LayerNorm
            layer_input = f"{layer}.output"
    return acs


@torch.no_grad()
def model_accumulates(model, ids, segments, mask):
    """ACs from the model's [B, P] spike-count output, the way an evaluation computes them."""
    outputs = model(ids, segments, mask, output_rates=True)
    counts = spike_counts_by_population(outputs.population_spikes, model.population_names())
    return counts, accumulates_per_example(counts, mask.sum(1), SIZE)


@pytest.mark.parametrize("t_conv", [1, 3, 8])
def test_accumulates_equal_brute_force_count_of_the_simulation(monkeypatch, t_conv):
    model = tiny_student(t_conv, vth=0.5)
    ids, segments, mask = padded_batch()
    trains = record_spikes(monkeypatch)
    counts, acs = model_accumulates(model, ids, segments, mask)
    names = model.population_names()
    assert names == list(SIZE.population_widths())
    spikes = dict(zip(names, trains.values()))
    assert len(spikes) == len(names) and all(len(train) == t_conv for train in spikes.values())

    real = mask.bool()[:, :, None]
    for name in names:
        assert torch.equal(counts[name], sum((s * real).sum((1, 2)) for s in spikes[name]).double()), name
    expected = brute_force_accumulates(spikes, mask)
    assert list(acs) == names
    for name in names:
        assert torch.equal(acs[name], expected[name]), (name, acs[name], expected[name])
    # Not vacuous: every population fires in every example, and so do padded positions (the mask matters).
    assert all(counts[name].all() for name in names)
    assert sum((s * ~real).sum() for s in spikes["layer1.key"]) > 0


@pytest.mark.parametrize("length", [1, 5, 12])
def test_bert_macs_equal_closed_form_and_flop_counter(length):
    size = BertSize(hidden=16, intermediate=24, heads=2, layers=3, num_labels=3)
    H, I, A, N, C, L = size.hidden, size.intermediate, size.heads, size.layers, size.num_labels, length
    products = N * (L * (4 * H * H + 2 * H * I) + 2 * L * L * H) + H * H + H * C  # + pooler, classifier
    assert matrix_product_multiply_accumulates(size, L) == products
    # embeddings (sum 2, LayerNorm 5); per layer softmax 5, 2 LayerNorms 5, GELU 8, 2 residual adds; pooler tanh 8
    elementwise = 7 * L * H + N * (5 * A * L * L + 2 * 5 * L * H + 8 * L * I + 2 * L * H) + 8 * H
    assert bert_multiply_accumulates(size, L) == products + elementwise

    config = BertConfig(vocab_size=30, hidden_size=H, intermediate_size=I, num_attention_heads=A,
                        num_hidden_layers=N, max_position_embeddings=16)
    model = BertForSequenceClassification(config, C).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randint(30, (1, L)))
    assert counter.get_total_flops() == 2 * products


def test_doubling_t_conv_never_lowers_accumulates():
    model = tiny_student(t_conv=1)
    batch = padded_batch()
    totals = []
    previous = None
    for t_conv in (1, 2, 4, 8, 16):
        model.config.spiking = dataclasses.replace(model.config.spiking, t_conv=t_conv)
        _, acs = model_accumulates(model, *batch)
        if previous is not None:
            for name, value in acs.items():
                assert (value >= previous[name]).all(), (t_conv, name)
        previous = acs
        totals.append(sum(acs.values()))
    assert (totals[-1] > totals[0]).all()


def test_silent_student_has_no_accumulates_but_still_pays_its_real_valued_operations():
    model = tiny_student(t_conv=4, vth=1e9)
    ids, segments, mask = padded_batch()
    counts, acs = model_accumulates(model, ids, segments, mask)
    assert all(not value.any() for value in acs.values())
    macs = multiply_accumulates_per_example(mask.sum(1), 4, SIZE)
    assert (macs > 0).all()


def test_student_macs_and_membrane_updates():
    lengths, steps = torch.tensor([9, 3]), torch.tensor([4, 7])
    H, I, A, N, C = SIZE.hidden, SIZE.intermediate, SIZE.heads, SIZE.layers, SIZE.num_labels
    L, T = lengths.double(), steps.double()
    expected = 7 * L * H + T * L * H + T * N * (5 * A * L * L + 10 * L * H + 8 * L * I) + H * C
    assert torch.equal(multiply_accumulates_per_example(lengths, steps, SIZE), expected)
    with_membranes = multiply_accumulates_per_example(lengths, steps, SIZE, membrane_updates=True)
    assert torch.equal(with_membranes - expected, T * L * N * (5 * H + I))


def test_operation_counts_and_summary():
    teacher = BertSize(hidden=32, intermediate=48, heads=2, layers=4, num_labels=2)
    lengths = [torch.tensor([9, 3]), torch.tensor([5])]
    batches = []
    for batch_lengths in lengths:
        counts = {name: 2.0 * batch_lengths * width for name, width in SIZE.population_widths().items()}
        batches.append(operation_counts(counts, batch_lengths, 4, SIZE, teacher))
    summary = summarise(batches)
    assert summary["num_examples"] == 3
    assert summary["ac"] == pytest.approx(sum(summary[f"ac.{name}"] for name in SIZE.population_widths()))
    assert summary["ann_mac"] == pytest.approx(sum(bert_multiply_accumulates(SIZE, n) for n in (9, 3, 5)) / 3)
    assert summary["teacher_mac"] == pytest.approx(
        sum(bert_multiply_accumulates(teacher, n) for n in (9, 3, 5)) / 3)
    assert summary["energy_uj"] == pytest.approx((0.9 * summary["ac"] + 4.6 * summary["mac"]) * 1e-6)
    assert summary["energy_ratio_to_teacher"] == pytest.approx(summary["energy_uj"] / summary["teacher_energy_uj"])
    assert summary["energy_ratio_to_ann"] == pytest.approx(summary["energy_uj"] / summary["ann_energy_uj"])
    assert "teacher_mac" not in summarise([operation_counts(counts, lengths[1], 4, SIZE)])

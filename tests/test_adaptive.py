"""Length-sorted evaluation and adaptive time steps (distill/adaptive.py) on a tiny student: the same
answers as fixed-t_conv evaluation, sentences leaving a simulation untouched by it, the rule as stated."""
import dataclasses

import numpy as np
import pytest
import torch

from distill.adaptive import Settling, StoppingRule, simulate_until_settled
from distill.devices import Devices
from distill.evaluation import eval_batches, evaluate
from glue import InputFeatures, pad_batch
from models import SpikingBertForSequenceClassification
from transformer.modeling import BertConfig, embed_inputs

DEVICES = Devices(torch.device("cpu"))
T_CONV = 16


def tiny_student(num_labels=3, sim_chunk_steps=None):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, intermediate_size=24, num_attention_heads=2,
                        num_hidden_layers=2, max_position_embeddings=40, t_conv=T_CONV, vth=0.5,
                        initializer_range=1.5, sim_chunk_steps=sim_chunk_steps)
    return SpikingBertForSequenceClassification(config, num_labels=num_labels).eval()


def dev_features(count=30, seed=0):
    """Sentences of 2 to 29 tokens in random order, labels 0-2."""
    rng = np.random.default_rng(seed)
    features = []
    for _ in range(count):
        length = int(rng.integers(2, 30))
        features.append(InputFeatures([int(i) for i in rng.integers(1, 50, length)], [1] * length, [0] * length,
                                      int(rng.integers(0, 3)), length))
    return features


def batch_of(features):
    batch = pad_batch(features)
    return batch.input_ids, batch.token_type_ids, batch.attention_mask


def settled(model, features, rule):
    with torch.no_grad():
        return simulate_until_settled(model, *batch_of(features), rule)


def simulated_alone(model, feature, steps):
    """Every population's rates [L, W] of ``feature`` simulated alone for ``steps`` steps."""
    input_ids, segment_ids, input_mask = batch_of([feature])
    current, mask = embed_inputs(model.bert.embeddings, input_ids, segment_ids, input_mask)
    return model.bert.start_simulation(current, mask).run(steps).rates()


EAGER = StoppingRule(check_every=2, patience=1, margin=0.0, min_steps=2)


def test_length_sorted_batches_give_the_file_order_answers():
    model, features = tiny_student(), dev_features()
    batches = eval_batches(features, 7)
    lengths = [[features[i].seq_length for i in rows] for rows in batches]
    assert sorted(np.concatenate(batches)) == list(range(len(features)))
    assert [length for rows in lengths for length in rows] == sorted((f.seq_length for f in features), reverse=True)
    padded = {sort: sum(len(rows) * max(features[i].seq_length for i in rows) for rows in eval_batches(
        features, 7, sort)) - sum(f.seq_length for f in features) for sort in (False, True)}
    assert padded[True] < padded[False] / 4

    file_order = evaluate(model, features, "sst-2", "classification", 7, DEVICES, sort_by_length=False)
    by_length = evaluate(model, features, "sst-2", "classification", 7, DEVICES)
    assert np.array_equal(file_order.predictions, by_length.predictions)
    assert np.array_equal(file_order.population_spikes, by_length.population_spikes)  # exact counts
    assert np.array_equal(file_order.lengths, [f.seq_length for f in features])
    assert np.array_equal(file_order.lengths, by_length.lengths)
    # Mean rates average over the padded width too, so they may differ by float32 rounding.
    for name, rate in file_order.rates.items():
        assert by_length.rates[name] == pytest.approx(rate, rel=1e-6)
    assert by_length.eval_loss == pytest.approx(file_order.eval_loss, rel=1e-6)
    assert len(set(by_length.predictions)) > 1  # not vacuous


@pytest.mark.parametrize("rule", [StoppingRule(margin=1.0), StoppingRule(patience=100),
                                  StoppingRule(min_steps=T_CONV + 1), StoppingRule(check_every=T_CONV)],
                         ids=["margin", "patience", "min_steps", "one_check"])
def test_unreachable_rule_is_bit_identical_to_fixed_t_conv(rule):
    model, features = tiny_student(), dev_features()
    fixed = evaluate(model, features, "sst-2", "classification", 7, DEVICES)
    adaptive = evaluate(model, features, "sst-2", "classification", 7, DEVICES, stopping_rule=rule)
    assert (adaptive.steps == T_CONV).all() and (fixed.steps == T_CONV).all()
    assert np.array_equal(adaptive.predictions, fixed.predictions)
    assert np.array_equal(adaptive.population_spikes, fixed.population_spikes)
    assert adaptive.rates == fixed.rates and adaptive.eval_loss == fixed.eval_loss

    batch = features[:7]
    with torch.no_grad():
        expected = model(*batch_of(batch), output_rates=True)
    got = settled(model, batch, rule)
    assert torch.equal(got.logits, expected.logits)
    assert torch.equal(got.population_rates, expected.population_rates)
    assert torch.equal(got.population_spikes, expected.population_spikes)


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_a_stopped_sentence_has_the_rates_of_its_simulation_alone(chunk):
    model, features = tiny_student(sim_chunk_steps=chunk), dev_features(12)
    got = settled(model, features, EAGER)
    assert len(set(got.steps.tolist())) > 1  # sentences stop at different steps
    for row, feature in enumerate(features):
        steps = int(got.steps[row])
        alone = simulated_alone(model, feature, steps)
        model.config.spiking = dataclasses.replace(model.config.spiking, t_conv=steps)
        with torch.no_grad():
            expected = model(*batch_of([feature]), output_rates=True)
        model.config.spiking = dataclasses.replace(model.config.spiking, t_conv=T_CONV)
        assert torch.equal(got.population_spikes[row], expected.population_spikes[0]), row
        # The classifier's product over one row takes another kernel than over a batch: float32 rounding.
        torch.testing.assert_close(got.logits[row], expected.logits[0], rtol=1e-6, atol=1e-6)
        assert got.logits[row].argmax() == expected.logits[0].argmax()
        torch.testing.assert_close(got.population_rates[row], expected.population_rates[0], rtol=1e-6, atol=0)
        last_cls = alone.layers[-1].output[0, 0]
        torch.testing.assert_close(model.classifier(torch.relu(last_cls)), got.logits[row], rtol=1e-6, atol=1e-6)


def test_removing_sentences_leaves_the_others_state_unchanged():
    model, features = tiny_student(), dev_features(10)
    input_ids, segment_ids, input_mask = batch_of(features)
    current, mask = embed_inputs(model.bert.embeddings, input_ids, segment_ids, input_mask)
    whole = model.bert.start_simulation(current, mask).run(T_CONV)
    kept_rows = torch.tensor([1, 4, 5, 8])
    shrinking = model.bert.start_simulation(current, mask).run(3)
    shrinking.keep(torch.tensor([0, 1, 3, 4, 5, 6, 8]))
    shrinking.run(5)
    shrinking.keep(torch.tensor([1, 3, 4, 6]))
    shrinking.run(T_CONV - 8)
    for full, kept in zip(whole.spike_counts().flat(), shrinking.spike_counts().flat()):
        assert torch.equal(full[kept_rows], kept)
    assert any(count.any() for count in shrinking.spike_counts().flat())


def test_the_rule_stops_when_the_class_has_held_for_patience_checks_with_the_margin():
    settling = Settling(StoppingRule(check_every=1, patience=2, margin=0.5, min_steps=3))
    confident_a, confident_b, unsure_a = [4.0, 0.0], [0.0, 4.0], [0.1, 0.0]
    # Three sentences over five checks: the class of the first changes once, the second is unsure, the third
    # settles at once but may not stop before min_steps.
    checks = [[confident_a, unsure_a, confident_a], [confident_b, unsure_a, confident_a],
              [confident_b, unsure_a, confident_a], [confident_b, unsure_a, confident_a],
              [confident_b, unsure_a, confident_a]]
    stops = [settling.settled(torch.tensor(logits), step).tolist() for step, logits in enumerate(checks, 1)]
    assert [row[0] for row in stops] == [False, False, False, True, True]  # unchanged at checks 3 and 4
    assert not any(row[1] for row in stops)  # margin 0.05 < 0.5
    assert [row[2] for row in stops] == [False, False, True, True, True]  # min_steps 3


def test_sentences_stop_at_checks_never_beyond_t_conv():
    model, features = tiny_student(), dev_features(20)
    result = evaluate(model, features, "sst-2", "classification", 6, DEVICES,
                      stopping_rule=StoppingRule(check_every=5, patience=0, margin=0.3, min_steps=5))
    assert set(result.steps) <= {5, 10, 15, T_CONV} and len(set(result.steps)) > 1
    fixed = evaluate(model, features, "sst-2", "classification", 6, DEVICES)
    # Spikes grow with the steps simulated.
    assert (result.population_spikes.sum(1) <= fixed.population_spikes.sum(1)).all()
    assert (result.population_spikes.sum(1)[result.steps < T_CONV] < fixed.population_spikes.sum(1)[
        result.steps < T_CONV]).all()


@pytest.mark.parametrize("settings, flag", [(dict(check_every=0), "--adaptive_check_every"),
                                            (dict(patience=-1), "--adaptive_patience"),
                                            (dict(margin=1.5), "--adaptive_margin"),
                                            (dict(min_steps=0), "--adaptive_min_steps")])
def test_impossible_rule_settings_name_their_flag(settings, flag):
    with pytest.raises(ValueError, match=flag):
        StoppingRule(**settings)


def test_regression_student_is_refused():
    with pytest.raises(ValueError, match="classification"):
        settled(tiny_student(num_labels=1), dev_features(3), EAGER)


def test_readouts_of_one_simulation_equal_evaluations_at_their_steps():
    """The readout after S steps is what an evaluation at t_conv S gives: the same spike counts (exact), the same
    predictions; the simulation's own t_conv result is unchanged by reading it out on the way."""
    model, features = tiny_student(), dev_features()
    readout_steps = (1, 3, 8, T_CONV + 4)  # one beyond t_conv: the simulation runs on for it
    fixed = evaluate(model, features, "sst-2", "classification", 7, DEVICES)
    read = evaluate(model, features, "sst-2", "classification", 7, DEVICES, readout_steps=readout_steps)
    assert np.array_equal(read.population_spikes, fixed.population_spikes) and (read.steps == T_CONV).all()
    assert np.array_equal(read.predictions, fixed.predictions) and read.readouts.keys() == set(readout_steps)
    for steps in readout_steps:
        model.config.spiking = dataclasses.replace(model.config.spiking, t_conv=steps)
        alone = evaluate(model, features, "sst-2", "classification", 7, DEVICES)
        model.config.spiking = dataclasses.replace(model.config.spiking, t_conv=T_CONV)
        readout = read.readouts[steps]
        assert (readout.steps == steps).all()
        assert np.array_equal(readout.population_spikes, alone.population_spikes), steps
        assert np.array_equal(readout.predictions, alone.predictions), steps
        assert readout.metrics == alone.metrics
        # logits from a running simulation's rates and from the forward pass: float32 rounding of one product
        assert readout.eval_loss == pytest.approx(alone.eval_loss, rel=1e-6)
        for name, rate in alone.rates.items():
            assert readout.rates[name] == pytest.approx(rate, rel=1e-6)
    assert len({tuple(read.readouts[s].predictions) for s in readout_steps}) > 1  # the readouts differ


def test_adaptive_evaluation_with_readouts_stops_sentences_as_without():
    model, features = tiny_student(), dev_features()
    alone = evaluate(model, features, "sst-2", "classification", 7, DEVICES, stopping_rule=EAGER)
    both = evaluate(model, features, "sst-2", "classification", 7, DEVICES, stopping_rule=EAGER, readout_steps=(5, 9))
    assert len(set(alone.steps.tolist())) > 1  # sentences stop at different steps, some before the last readout
    assert (alone.steps < 9).any() and np.array_equal(both.steps, alone.steps)
    assert np.array_equal(both.population_spikes, alone.population_spikes)
    assert np.array_equal(both.predictions, alone.predictions)
    assert both.eval_loss == pytest.approx(alone.eval_loss, rel=1e-6)
    fixed = evaluate(model, features, "sst-2", "classification", 7, DEVICES, readout_steps=(5, 9))
    for steps in (5, 9):
        assert np.array_equal(both.readouts[steps].population_spikes, fixed.readouts[steps].population_spikes)
        assert np.array_equal(both.readouts[steps].predictions, fixed.readouts[steps].predictions)

"""Signed (ternary) spikes with a learned amplitude: the neuron rule against its closed form, the grid
surrogate and its gradients, events counted for energy, and the option from flag to saved student."""
import json
import math

import pytest
import torch

import spiking_bert_task_distill as task
from distill.energy_report import set_report
from distill.evaluation import EvalResult
from distill.losses import energy_ratio
from distill_fixtures import (make_student_config, make_teacher, preset_stages, tiny_batch, tiny_spiking_config,
                              write_task)
from models import SpikingBertForSequenceClassification
from models.config import SpikingConfig
from modules.energy import BertSize
from modules.snn_modules import TernaryIFNeuron
from pipeline.presets import PRESETS

T = 8
# Dyadic currents of both signs: the step-by-step sums in the simulation are exact, as in the closed form.
CURRENTS = torch.arange(-80, 80) / 64.0


def simulate(neuron, currents):
    """(the emitted values [steps, N], final state) of ``currents`` [steps, N] fed to ``neuron``."""
    state = neuron.start(currents[0])
    emitted = neuron.scan(currents.flatten().clone(), state, len(currents))
    return emitted.view_as(currents), state


@pytest.mark.parametrize("membrane_init", [0.0, 0.5])
def test_constant_current_counts_are_the_closed_form_and_the_grid_surrogate(membrane_init):
    neuron = TernaryIFNeuron(vth=1.0, membrane_init=membrane_init, surrogate="grid")
    _, state = simulate(neuron, CURRENTS.repeat(T, 1))
    # Each sign is the binary neuron's count: T |c| / vth rounded (membrane_init 0.5) or floored (0).
    positive = torch.floor(T * CURRENTS + membrane_init).clamp(0, T)
    negative = torch.floor(-T * CURRENTS + membrane_init).clamp(0, T)
    assert torch.equal(state.spike_count, positive - negative)
    assert torch.equal(state.event_count, positive + negative)
    assert (negative > 0).sum() > 30 and (positive > 0).sum() > 30
    # A constant current never fires both signs, so the grid value (amplitude 1 at the start) is the signed rate.
    assert torch.equal(neuron.surrogate_rate(CURRENTS, T), (positive - negative) / T)


def test_the_rule_is_the_same_for_either_sign_and_starts_half_way_between_the_thresholds():
    neuron = TernaryIFNeuron(vth=1.0, membrane_init=0.5)
    # Currents that change every step (dyadic: exact sums): the negated currents give exactly the negated spikes.
    generator = torch.Generator().manual_seed(0)
    currents = torch.randint(-96, 97, (T, 200), generator=generator) / 64.0
    emitted, state = simulate(neuron, currents)
    mirrored, mirrored_state = simulate(neuron, -currents)
    assert torch.equal(mirrored, -emitted) and torch.equal(mirrored_state.membrane, -state.membrane)
    assert (emitted > 0).sum() > 100 and (emitted < 0).sum() > 100
    # One step: a spike of either sign from half a threshold on, the membrane reset by a whole one.
    emitted, state = simulate(neuron, torch.tensor([[0.5, -0.5, 0.484375, -0.484375, 1.25, -1.25]]))
    assert emitted.flatten().tolist() == [1.0, -1.0, 0.0, 0.0, 1.0, -1.0]
    assert state.membrane.flatten().tolist() == [-0.5, 0.5, 0.484375, -0.484375, 0.25, -0.25]


def test_a_spike_of_either_sign_is_one_event_and_carries_the_amplitude():
    neuron = TernaryIFNeuron(vth=1.0)
    with torch.no_grad():
        neuron.log_amplitude.fill_(math.log(0.75))
    amplitude = neuron.amplitude().item()
    # u: 1.5 -> +1 (0.5); -2.5 -> -1 (-1.5); -1.5 -> -1 (-0.5); -0.25 -> 0.
    emitted, state = simulate(neuron, torch.tensor([[1.5], [-3.0], [0.0], [0.25]]))
    assert emitted.flatten().tolist() == pytest.approx([amplitude, -amplitude, -amplitude, 0.0], rel=1e-7)
    assert state.spike_count.item() == -1 and state.event_count.item() == 3
    assert state.membrane.item() == -0.25
    assert neuron.rate_of(state.spike_count, 4).item() == pytest.approx(-amplitude / 4, rel=1e-7)


def test_rates_converge_to_the_signed_clamped_ratio():
    neuron = TernaryIFNeuron(vth=0.5)
    currents = torch.linspace(-1.0, 1.0, 41, dtype=torch.float64)
    steps = 400
    _, state = simulate(neuron, currents.repeat(steps, 1))
    expected = (currents / 0.5).clamp(-1, 1)
    assert torch.allclose(state.spike_count / steps, expected, atol=1 / steps)
    assert torch.allclose(neuron.equilibrium_rate(currents).detach(), expected.to(torch.float64))


def test_the_grid_surrogate_has_the_clamp_gradient_and_trains_the_amplitude():
    generator = torch.Generator().manual_seed(0)
    currents = (torch.rand(300, dtype=torch.float64, generator=generator) * 3 - 1.5).requires_grad_()
    upstream = torch.randn(300, dtype=torch.float64, generator=generator)
    neuron = TernaryIFNeuron(vth=0.7, membrane_init=0.5, surrogate="grid").double()
    with torch.no_grad():
        neuron.log_amplitude.fill_(math.log(1.5))
    amplitude = neuron.amplitude().item()
    values = neuron.surrogate_rate(currents, T)
    (values * upstream).sum().backward()
    inside = (currents.detach().abs() < 0.7).double()
    # d/dc a clamp(c / vth, -1, 1) = a / vth inside the clamp, 0 outside.
    assert torch.allclose(currents.grad, upstream * inside * amplitude / 0.7, rtol=1e-12)
    # d/d log a of a clamp(c / vth, -1, 1) = a clamp(c / vth, -1, 1).
    clamped = (currents.detach() / 0.7).clamp(-1, 1)
    assert neuron.log_amplitude.grad.item() == pytest.approx((upstream * amplitude * clamped).sum().item(), rel=1e-9)
    grid = values.detach() / amplitude * T
    assert torch.allclose(grid, grid.round(), atol=1e-9) and (grid < 0).any()


def test_a_student_counts_every_spike_of_either_sign_for_its_energy():
    torch.manual_seed(0)
    model = SpikingBertForSequenceClassification(tiny_spiking_config(ternary_spikes=True), 2).eval()
    ids, segments, mask = tiny_batch()
    with torch.no_grad():
        output = model(ids, segments, mask, output_rates=True)
        simulation = model.start_simulation(ids, segments, mask).run(model.config.spiking.t_conv)
    signed = torch.stack([count.sum() for count in simulation.spike_counts().flat()])
    events = simulation.event_counts().flat()
    assert (signed < 0).any()  # populations whose spikes are mostly negative
    # Neurons that fired both signs: more events than the magnitude of their net count.
    assert any((count > counted.abs()).any() for count, counted in zip(events, simulation.spike_counts().flat()))
    expected = torch.stack([(count.double().sum(-1) * mask.double()).sum(-1) for count in events], 1)
    assert torch.equal(output.population_spikes, expected)
    # The energy penalty counts the same events as the report.
    size = BertSize.of(model.config)
    result = EvalResult("sst-2", {}, 0.0, output.logits.argmax(1).numpy(), output.logits.argmax(1).numpy(), 3,
                        lengths=mask.sum(1).numpy(), population_spikes=output.population_spikes.numpy(),
                        steps=torch.full((3,), 4).numpy())
    report = set_report(result, model.population_names(), size, None, "classification")["energy"]
    ratio = energy_ratio(output.event_rates, mask, 4, size)
    # float32 event rates x 4 steps are exact counts up to float32 sums of about 1e4 (relative 1e-6).
    assert ratio.item() == pytest.approx(0.9 * report["ac"] / (4.6 * report["ann_mac"]), rel=1e-5)
    # Counted from the net rates instead, the neurons that fired both signs would look cheaper.
    assert ratio.item() > energy_ratio(output.rates.map(torch.abs), mask, 4, size).item()


def test_ternary_spikes_need_integrate_and_fire():
    with pytest.raises(ValueError, match="ternary_spikes needs leaky 1"):
        SpikingConfig(ternary_spikes=True, leaky=0.9)
    with pytest.raises(ValueError, match="ternary_spikes must be true or false"):
        SpikingConfig(ternary_spikes="yes")


def test_the_flag_is_saved_trains_the_amplitudes_and_is_used_on_load(tmp_path):
    data = write_task(str(tmp_path / "data"), "sst-2", train=12, dev=6)
    teacher = make_teacher(str(tmp_path / "teacher"), num_labels=2)
    student = make_student_config(str(tmp_path / "student"), initializer_range=0.5)

    def run(name, *extra):
        return task.main(["--data_dir", data, "--task_name", "sst-2", "--output_dir", str(tmp_path / name),
                          "--max_seq_length", "32", "--train_batch_size", "4", "--num_train_epochs", "2",
                          "--eval_step", "100", "--learning_rate", "1e-2", "--do_lower_case", *extra])

    run("ikd", "--teacher_model", teacher, "--spiking_student_model", student, "--ternary_spikes", "on",
        "--surrogate", "grid", "--train_simulation", "off")
    assert json.loads((tmp_path / "ikd" / "config.json").read_text())["ternary_spikes"] is True
    loaded = SpikingBertForSequenceClassification.from_pretrained(str(tmp_path / "ikd"), num_labels=2)
    amplitudes = [neuron.log_amplitude.item() for neuron in loaded.bert.neurons().values()]
    assert len(amplitudes) == 7 and any(value != 0 for value in amplitudes)
    assert all(isinstance(neuron, TernaryIFNeuron) for neuron in loaded.bert.neurons().values())
    results = run("eval", "--spiking_student_model", str(tmp_path / "ikd"), "--do_eval")
    spikes = results[0].population_spikes
    assert (spikes == spikes.round()).all() and spikes.sum() > 0
    # A binary student continued with signed spikes starts its amplitudes at 1.
    run("binary", "--teacher_model", teacher, "--spiking_student_model", student)
    continued = SpikingBertForSequenceClassification.from_pretrained(
        str(tmp_path / "binary"), num_labels=2, flags={"ternary_spikes": True})
    assert all(neuron.log_amplitude.item() == 0 for neuron in continued.bert.neurons().values())


def test_the_ternary_preset_is_the_binary_recipe_with_signed_spikes():
    binary = preset_stages(PRESETS["binary"])
    ternary = preset_stages(PRESETS["ternary"])
    for name in ("task_ikd.seed42", "pred_kd.seed7"):
        flags = dict(ternary[name].flags)
        assert flags.pop("--ternary_spikes") == "on" and flags == binary[name].flags
    assert ternary["eval.seed42"].flags["--readout_steps"] == [1, 2, 4, 8, 16]
    assert binary["eval.seed42"].flags["--readout_steps"] == [4, 8, 16]

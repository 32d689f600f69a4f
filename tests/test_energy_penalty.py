"""--energy_penalty: the loss counts what the energy report counts, and pays for each spike by its fan-out."""
import pytest
import torch

import spiking_bert_task_distill as task
from distill.energy_report import set_report
from distill.evaluation import EvalResult
from distill.losses import energy_ratio, with_energy_penalty
from distill_fixtures import (make_student_config, make_teacher, preset_stages, tiny_batch, tiny_spiking_config,
                              write_task)
from models import SpikingBertForSequenceClassification
from modules.energy import BertSize, fan_outs
from modules.snn_bert_modules import LayerPopulations
from modules.snnide_bert_multilayer_modules import Populations
from pipeline.presets import PRESETS


def tiny_student():
    torch.manual_seed(0)
    return SpikingBertForSequenceClassification(tiny_spiking_config(), 2).eval()


def test_the_penalty_is_the_energy_reports_accumulate_ratio_for_the_batch():
    model = tiny_student()
    ids, segments, mask = tiny_batch()
    with torch.no_grad():
        output = model(ids, segments, mask, output_rates=True)
    size = BertSize.of(model.config)
    lengths = mask.sum(1).numpy()
    result = EvalResult("sst-2", {}, 0.0, output.logits.argmax(1).numpy(), output.logits.argmax(1).numpy(), 3,
                        lengths=lengths, population_spikes=output.population_spikes.numpy(),
                        steps=torch.full((3,), 4).numpy())
    report = set_report(result, model.population_names(), size, None, "classification")["energy"]
    # The report averages per sentence; the ratio of the sums is the ratio of the means.
    expected = 0.9 * report["ac"] / (4.6 * report["ann_mac"])
    ratio = energy_ratio(output.rates, mask, 4, size)
    # float32 rates x 4 steps are exact spike counts up to float32 sums of about 1e4 (relative 1e-6).
    assert ratio.item() == pytest.approx(expected, rel=1e-5) and expected > 0


def test_its_gradient_per_population_is_proportional_to_the_fan_out():
    model = tiny_student()
    size = BertSize.of(model.config)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    widths = list(size.population_widths().values())
    flat = [torch.rand(2, 4, width, requires_grad=True) for width in widths]
    rates = Populations(flat[0], [LayerPopulations(*flat[1 + 6 * i:7 + 6 * i]) for i in range(size.layers)])
    student = type("Out", (), {"event_rates": rates})
    losses = with_energy_penalty({"loss": torch.tensor(0.0)}, student, mask, 2.5, 4, size)
    losses["loss"].backward()
    fan = fan_outs(mask.sum(1).to(torch.float32), size)
    per_unit = None
    for rate, name in zip(flat, fan):
        assert rate.grad[0, 3].abs().sum() == 0  # padding costs nothing
        for row in range(2):
            grad = rate.grad[row, :int(mask[row].sum())]
            assert torch.allclose(grad, grad.flatten()[0].expand_as(grad))  # the same for every neuron and token
            if fan[name][row] == 0:
                assert grad.abs().sum() == 0  # the last output reaches the classifier as a real value
                continue
            unit = grad.flatten()[0] / fan[name][row]
            per_unit = unit if per_unit is None else per_unit
            assert unit.item() == pytest.approx(per_unit.item(), rel=1e-5), name
    assert losses["energy"].item() > 0 and losses["loss"].item() == pytest.approx(2.5 * losses["energy"].item())


def test_the_flag_trains_with_the_penalty_logged_and_lowers_the_energy(tmp_path):
    data = write_task(str(tmp_path / "data"), "sst-2", train=12, dev=6)
    teacher = make_teacher(str(tmp_path / "teacher"), num_labels=2)
    student = make_student_config(str(tmp_path / "student"), initializer_range=0.5)

    def run(name, *extra):
        task.main(["--data_dir", data, "--task_name", "sst-2", "--output_dir", str(tmp_path / name), "--teacher_model",
                   teacher, "--spiking_student_model", student, "--max_seq_length", "32", "--train_batch_size", "4",
                   "--num_train_epochs", "3", "--eval_step", "100", "--learning_rate", "1e-2", "--logging_steps", "1",
                   "--do_lower_case", *extra])
        return (tmp_path / name / "log.txt").read_text()

    plain, penalised = run("plain"), run("penalised", "--energy_penalty", "20")
    assert "energy=" not in plain
    energies = [float(line.split(" energy=")[1].split()[0]) for line in penalised.splitlines() if " energy=" in line]
    assert len(energies) == 9 and energies[-1] < energies[0]
    with pytest.raises(SystemExit):
        run("bad", "--energy_penalty", "-1")


def test_the_energy_preset_is_the_binary_recipe_paying_for_energy_in_task_ikd():
    binary = preset_stages(PRESETS["binary"])
    energy = preset_stages(PRESETS["energy"])
    assert energy.keys() == binary.keys()
    for seed in (42, 7):
        flags, binary_flags = dict(energy[f"task_ikd.seed{seed}"].flags), dict(binary[f"task_ikd.seed{seed}"].flags)
        assert flags.pop("--energy_penalty") == 0.12 and binary_flags.pop("--rate_penalty") == 0.75
        assert flags == binary_flags
        assert energy[f"pred_kd.seed{seed}"].flags == binary[f"pred_kd.seed{seed}"].flags


def test_the_default_preset_is_the_ternary_recipe_paying_for_energy_in_task_ikd():
    ternary = preset_stages(PRESETS["ternary"])
    energy = preset_stages(PRESETS["energy"])
    both = preset_stages(PRESETS["default"])
    # The name its lever run was logged under builds the same stages.
    alias = preset_stages(PRESETS["ternary_energy"])
    assert [(name, stage.flags) for name, stage in alias.items()] == [(name, stage.flags)
                                                                    for name, stage in both.items()]
    assert both.keys() == ternary.keys() and both["eval.seed42"].flags["--readout_steps"][0] == 1
    for seed in (42, 7):
        flags = dict(both[f"task_ikd.seed{seed}"].flags)
        assert flags.pop("--ternary_spikes") == "on" and flags == energy[f"task_ikd.seed{seed}"].flags
        assert both[f"pred_kd.seed{seed}"].flags == ternary[f"pred_kd.seed{seed}"].flags


def test_the_frugal_preset_is_the_default_paying_more_for_energy_in_both_task_stages():
    default = preset_stages(PRESETS["default"])
    frugal = preset_stages(PRESETS["frugal"])
    assert frugal.keys() == default.keys()
    for name, stage in frugal.items():
        flags, default_flags = dict(stage.flags), dict(default[name].flags)
        if name.startswith(("task_ikd", "pred_kd")):
            penalty = flags.pop("--energy_penalty")
            assert penalty == (0.5 if name.startswith("task_ikd") else 0.12)
            assert penalty > default_flags.pop("--energy_penalty", 0.0)
        assert flags == default_flags, name



def test_the_eight_steps_preset_is_the_default_with_prediction_kd_paying_for_energy_at_eight_steps():
    default = preset_stages(PRESETS["default"])
    eight = preset_stages(PRESETS["eight_steps"])
    # Prediction KD's own dev evaluation is now the 8-step one; 32 steps become a readout of the eval stage.
    assert eight.keys() - default.keys() == {"eval_t8.seed42", "eval_t8.seed7"}
    assert default.keys() - eight.keys() == {"eval_t32.seed42", "eval_t32.seed7"}
    for seed in (42, 7):
        assert eight[f"task_ikd.seed{seed}"].flags == default[f"task_ikd.seed{seed}"].flags
        flags, default_flags = dict(eight[f"pred_kd.seed{seed}"].flags), dict(default[f"pred_kd.seed{seed}"].flags)
        assert (flags.pop("--t_conv"), flags.pop("--energy_penalty")) == (8, 0.5)
        assert default_flags.pop("--t_conv") == 32 and "--energy_penalty" not in default_flags
        assert flags == default_flags
        evaluation = eight[f"eval.seed{seed}"].flags
        assert evaluation["--t_conv"] == 8 and evaluation["--adaptive_t_conv"]
        assert evaluation["--readout_steps"] == [1, 2, 4, 16, 32]


def test_the_wide_band_preset_is_the_default_with_wider_thresholds_and_prediction_kd_at_eight_steps():
    default = preset_stages(PRESETS["default"])
    wide = preset_stages(PRESETS["wide_band"])
    assert wide.keys() - default.keys() == {"eval_t8.seed42", "eval_t8.seed7"}
    assert default.keys() - wide.keys() == {"eval_t32.seed42", "eval_t32.seed7"}
    for seed in (42, 7):
        for stage in ("task_ikd", "pred_kd"):
            flags = dict(wide[f"{stage}.seed{seed}"].flags)
            default_flags = dict(default[f"{stage}.seed{seed}"].flags)
            # Both stages train with the wider band; the student saves it in its config.json, so evaluation reads it.
            assert (flags.pop("--membrane_init"), default_flags.pop("--membrane_init")) == (0.35, 0.5)
            if stage == "pred_kd":
                assert (flags.pop("--t_conv"), default_flags.pop("--t_conv")) == (8, 32)
                assert "--energy_penalty" not in flags
            assert flags == default_flags, stage
        assert "--membrane_init" not in wide[f"eval.seed{seed}"].flags
        assert wide[f"eval.seed{seed}"].flags["--readout_steps"] == [1, 2, 4, 16, 32]


def test_the_learned_band_preset_is_the_default_with_one_learned_threshold_per_population():
    default = preset_stages(PRESETS["default"])
    learned = preset_stages(PRESETS["learned_band"])
    assert learned.keys() == default.keys()
    for name, stage in learned.items():
        flags, default_flags = dict(stage.flags), dict(default[name].flags)
        if name.startswith(("task_ikd", "pred_kd")):
            assert (flags.pop("--threshold_scope"), flags.pop("--learn_threshold")) == ("population", "on")
        assert flags == default_flags, name

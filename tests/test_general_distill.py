"""spiking_bert_general_distill.py end to end on tiny random models."""
import json
import os

import pytest

import spiking_bert_general_distill as general
import spiking_bert_task_distill as task
from distill.checkpointing import TRAINING_STATE_NAME, list_checkpoints, load_training_state
from models.snn_ide_bert_classi import SpikingBertForSequenceClassification
from distill_fixtures import (load_state, logged_losses, make_student_config, make_teacher, max_abs_difference,
                              write_pregenerated, write_task)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("general")
    return {
        "teacher": make_teacher(str(root / "models" / "teacher")),
        "student": make_student_config(str(root / "student")),
        "data": write_pregenerated(str(root / "data"), epochs=2, examples=12),
    }


def args_for(inputs, output_dir, *extra):
    return ["--pregenerated_data", inputs["data"], "--teacher_model", inputs["teacher"],
            "--spiking_student_model", inputs["student"], "--output_dir", str(output_dir), "--do_lower_case",
            "--train_batch_size", "4", "--max_seq_length", "32", "--learning_rate", "5e-3", "--eval_step", "2",
            "--num_train_epochs", "2", *extra]


def test_run_lowers_loss_writes_checkpoints_and_a_student_the_task_script_loads(inputs, tmp_path):
    out = tmp_path / "general"
    general.main(args_for(inputs, out, "--keep_checkpoints", "0"))

    losses = logged_losses(out)
    assert len(losses) == 4  # steps 2, 3 (epoch end), 4, 6 (epoch end)
    assert losses[-1] < losses[0] * 0.9
    log = (out / "log.txt").read_text()
    assert "lr " in log and "att_loss=" in log and "rep_loss=" in log

    assert [os.path.basename(p) for p in list_checkpoints(str(out))] == [
        "checkpoint-step2", "checkpoint-step3", "checkpoint-step4", "checkpoint-step6"]
    state = load_training_state(str(out / "checkpoint-step3"))
    assert (state["global_step"], state["epoch"], state["steps_done_in_epoch"]) == (3, 1, 0)
    assert set(state["optimizer"]) == {"state", "param_groups"}
    for name in ("config.json", "model.safetensors", "vocab.txt", TRAINING_STATE_NAME):
        assert (out / "checkpoint-step6" / name).is_file()

    config = json.loads((out / "config.json").read_text())
    assert (config["t_conv"], config["vth"], config["fit_size"], config["num_hidden_layers"]) == (4, 1.0, 32, 1)
    # The teacher's shape, for energy comparisons when the student is evaluated without its teacher.
    assert config["teacher_size"] == {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                                      "num_hidden_layers": 2}
    teacher_vocab = os.path.join(inputs["teacher"], "vocab.txt")
    assert (out / "vocab.txt").read_bytes() == open(teacher_vocab, "rb").read()
    assert max_abs_difference(load_state(str(out)), load_state(str(out / "checkpoint-step6"))) == 0.0
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no temporary leftovers

    # The folder is a student the task script takes as it is.
    teacher = make_teacher(str(tmp_path / "models" / "sst_teacher"), num_labels=2)
    data = write_task(str(tmp_path / "sst"), "sst-2")
    task.main(["--teacher_model", teacher, "--spiking_student_model", str(out), "--data_dir", data,
               "--task_name", "SST-2", "--output_dir", str(tmp_path / "ikd"), "--max_seq_length", "32",
               "--train_batch_size", "4", "--num_train_epochs", "1", "--do_lower_case"])
    assert "classifier.weight" in load_state(str(tmp_path / "ikd"))
    loaded = SpikingBertForSequenceClassification.from_pretrained(str(out), num_labels=2)
    assert sorted(loaded.loading_info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert loaded.classifier_initialized


def test_stop_and_resume_equals_uninterrupted_run(inputs, tmp_path):
    # Student dropout is on (0.1): equality needs the RNG state restored exactly.
    extra = ["--gradient_accumulation_steps", "2", "--eval_step", "4"]
    full = tmp_path / "full"
    general.main(args_for(inputs, full, *extra))

    resumed = tmp_path / "resumed"
    general.main(args_for(inputs, resumed, *extra, "--max_steps", "2", "--reduce_memory"))
    assert os.path.basename(list_checkpoints(str(resumed))[-1]) == "checkpoint-step2"
    assert not (resumed / "model.safetensors").exists()  # step 2 is not an --eval_step: nothing published
    stopped = load_state(str(resumed / "checkpoint-step2"))
    assert max_abs_difference(stopped, load_state(str(full))) > 1e-4
    general.main(args_for(inputs, resumed, *extra, "--continue_train"))

    assert max_abs_difference(load_state(str(resumed)), load_state(str(full))) < 1e-6
    assert "resuming from" in (resumed / "log.txt").read_text()
    assert not [name for name in os.listdir(resumed) if name.startswith(".pregenerated")]


def test_continue_train_refuses_changed_batch_size(inputs, tmp_path):
    out = tmp_path / "out"
    general.main(args_for(inputs, out, "--max_steps", "1"))
    with pytest.raises(SystemExit, match=r"--train_batch_size 4 \(this run: 6\)"):
        general.main(args_for(inputs, out, "--continue_train") + ["--train_batch_size", "6"])


def one_line_error(argv, match):
    with pytest.raises(SystemExit) as error:
        general.main(argv)
    message = str(error.value)
    assert message.startswith("error: ") and "\n" not in message
    assert match in message
    return message


def test_errors_are_one_line_and_write_nothing(inputs, tmp_path):
    out = tmp_path / "out"
    root = tmp_path / "bad"
    empty_data = root / "no_data"
    empty_data.mkdir(parents=True)
    one_line_error(args_for(inputs, out) + ["--pregenerated_data", str(empty_data)], "no epoch_0.json")

    no_weights = root / "teacher_without_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(open(os.path.join(inputs["teacher"], "config.json")).read())
    one_line_error(args_for(inputs, out) + ["--teacher_model", str(no_weights)], "no model.safetensors")

    three_layers = make_student_config(str(root / "three_layers"), layers=3)
    one_line_error(args_for(inputs, out) + ["--spiking_student_model", three_layers],
                   "teacher layers (2) are not a multiple of student layers (3)")
    four_heads = make_student_config(str(root / "four_heads"), heads=4)
    one_line_error(args_for(inputs, out) + ["--spiking_student_model", four_heads],
                   "attention heads differ: teacher 2, student 4")
    wrong_fit = make_student_config(str(root / "wrong_fit"), fit_size=24)
    one_line_error(args_for(inputs, out) + ["--spiking_student_model", wrong_fit],
                   "fit_size 24 differs from the teacher's hidden size 32")
    one_line_error(args_for(inputs, out, "--t_conv", "0"), "t_conv must be an integer >= 1, got 0")
    one_line_error(args_for(inputs, out, "--vth", "0"), "vth must be > 0, got 0.0")
    one_line_error(args_for(inputs, out) + ["--max_seq_length", "8"], "exceeds --max_seq_length 8")
    assert not out.exists()

    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    one_line_error(args_for(inputs, out), "exists and is not empty")
    assert os.listdir(out) == ["notes.txt"]


def test_overwrite_replaces_and_cycles_epoch_files(inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    general.main(args_for(inputs, out, "--overwrite", "--num_train_epochs", "3", "--max_steps", "10",
                          "--eval_step", "100"))
    assert not (out / "old.txt").exists()
    log = (out / "log.txt").read_text()
    assert "2 pregenerated epoch files for 3 epochs: cycling them" in log
    assert log.count("epoch_0.json") == 2 and log.count("epoch_1.json") == 1
    assert "stopping after" not in log and "epoch 2 done" in log


def test_overwrite_never_deletes_inputs(inputs, tmp_path):
    out = tmp_path / "out"
    student = make_student_config(str(out / "student"))
    one_line_error(args_for(inputs, out, "--overwrite") + ["--spiking_student_model", student],
                   "--overwrite would delete the input")
    one_line_error(args_for(inputs, inputs["student"]), "is an input folder")
    assert os.listdir(out) == ["student"]


def test_bf16_autocast_trains_close_to_float32(inputs, tmp_path):
    general.main(args_for(inputs, tmp_path / "fp32", "--max_steps", "2"))
    general.main(args_for(inputs, tmp_path / "bf16", "--max_steps", "2", "--bf16"))
    assert "bf16 True" in (tmp_path / "bf16" / "log.txt").read_text()
    fp32, bf16 = logged_losses(tmp_path / "fp32"), logged_losses(tmp_path / "bf16")
    assert fp32 != bf16 and bf16[-1] == pytest.approx(fp32[-1], rel=0.05)


def test_kd_losses_flag_selects_the_terms(inputs, tmp_path, capsys):
    out = tmp_path / "general"
    general.main(args_for(inputs, out, "--kd_losses", "minilm", "hidden_cosine", "--num_train_epochs", "1"))
    log = (out / "log.txt").read_text()
    assert "minilm=" in log and "hidden_cosine=" in log and "att_loss=" not in log
    with pytest.raises(SystemExit, match="patient_kd loss distils intermediate layers: the student needs at least 2"):
        general.main(args_for(inputs, tmp_path / "pkd", "--kd_losses", "patient_kd"))
    with pytest.raises(SystemExit):
        general.main(args_for(inputs, tmp_path / "bad", "--kd_losses", "pkd"))
    assert "invalid choice: 'pkd'" in capsys.readouterr().err


def test_rate_penalty_is_logged_and_lowers_the_spike_rate(inputs, tmp_path, capsys):
    penalised, plain = tmp_path / "penalised", tmp_path / "plain"
    general.main(args_for(inputs, plain, "--num_train_epochs", "1", "--keep_checkpoints", "0"))
    general.main(args_for(inputs, penalised, "--num_train_epochs", "1", "--rate_penalty", "50",
                          "--keep_checkpoints", "0"))
    def logged_rates(folder):  # every spiking run logs its mean rate, penalised or not
        return [float(line.split(" rate=")[1].split()[0]) for line in (folder / "log.txt").read_text().splitlines()
                if " rate=" in line]

    rates = logged_rates(penalised)
    assert rates[-1] < rates[0] and rates[-1] < logged_rates(plain)[-1]
    with pytest.raises(SystemExit):
        general.main(args_for(inputs, tmp_path / "bad", "--rate_penalty", "-1"))
    assert "--rate_penalty: must be >= 0, got -1" in capsys.readouterr().err

"""Corrupt or truncated model files and pregenerated data: one line naming the file (and line). So are configs
and vocabularies that do not fit the weights, and the quick start's damaged stage folders."""
import json
import logging
import os
import random
import re
import shutil

import pytest
import torch

import data_augmentation
import finetune_teacher
import spiking_bert_general_distill as general
import spiking_bert_task_distill as task
from distill.pregenerated import PregeneratedEpoch, read_epoch_metrics
import distill_fixtures as entry_scripts
from distill_fixtures import (FAKE_ASSETS, VOCAB, make_classifier_student, make_student_config, make_teacher,
                              one_line_exit, script_inputs, teacher_config, write_pregenerated, write_task, write_vocab)
from pipeline.presets import PRESETS
from pipeline.stages import MARKER_NAME, build_stages, plan, stage_settings, write_json_atomic
from transformer.checkpoint import CONFIG_NAME, LEGACY_WEIGHTS_NAME, WEIGHTS_NAME, load_weights, read_json
from transformer.modeling import BertForMaskedLM, BertModel

RANDOM_BYTES = random.Random(0).randbytes(3000)


def truncated(data):
    return data[:len(data) // 2]


def random_bytes(_data):
    return RANDOM_BYTES


def assert_one_line_naming(message, path):
    assert len(message.splitlines()) == 1, message
    assert str(path) in message, message


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A task teacher (2 labels), a BERT for general KD and fine-tuning, a student with weights."""
    root = tmp_path_factory.mktemp("models")
    task_teacher = make_teacher(str(root / "task_teacher"), num_labels=2)
    teacher = make_teacher(str(root / "teacher"))
    student = make_student_config(str(root / "student"), num_labels=2)
    shutil.copy(os.path.join(task_teacher, "vocab.txt"), student)
    # Any bytes do: the tests replace the student's weights by corrupt ones.
    shutil.copy(os.path.join(task_teacher, WEIGHTS_NAME), student)
    return {"task_teacher": task_teacher, "teacher": teacher, "student": student,
            "task_data": write_task(str(root / "sst2"), "sst-2", train=4, dev=4),
            "pregenerated": write_pregenerated(str(root / "pregenerated"), epochs=1, examples=4)}


def corrupt_copy(model_dir, destination, name, damage):
    """A copy of ``model_dir`` whose file ``name`` is damaged; returns (folder, damaged file)."""
    shutil.copytree(model_dir, destination)
    path = os.path.join(destination, name)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(damage(data))
    return str(destination), path


@pytest.mark.parametrize("damage", [truncated, random_bytes])
@pytest.mark.parametrize("name", [WEIGHTS_NAME, LEGACY_WEIGHTS_NAME])
def test_corrupt_weights_file_is_a_one_line_value_error(tmp_path, name, damage):
    model = BertModel(teacher_config())
    (tmp_path / "good").mkdir()
    if name == WEIGHTS_NAME:
        model.save_pretrained(str(tmp_path / "good"), overwrite=True)
    else:
        torch.save(model.state_dict(), tmp_path / "good" / name)
    assert set(load_weights(str(tmp_path / "good"))) == set(model.state_dict())
    folder, path = corrupt_copy(tmp_path / "good", tmp_path / "bad", name, damage)
    with pytest.raises(ValueError) as error:
        load_weights(folder)
    assert_one_line_naming(str(error.value), path)
    assert "corrupt or truncated" in str(error.value)


def test_weights_file_without_tensors_is_refused(tmp_path):
    torch.save({"step": 3}, tmp_path / LEGACY_WEIGHTS_NAME)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / LEGACY_WEIGHTS_NAME}: expected a state dict of")):
        load_weights(str(tmp_path))


@pytest.mark.parametrize("damage, reason", [(truncated, "line 1: not valid JSON (Unterminated string"),
                                            (random_bytes, "not valid JSON (not UTF-8: invalid")])
def test_corrupt_json_is_a_one_line_value_error(tmp_path, damage, reason):
    path = tmp_path / CONFIG_NAME
    path.write_bytes(damage(json.dumps({"hidden_size": 32, "num_hidden_layers": 2}).encode()))
    with pytest.raises(ValueError) as error:
        read_json(str(path))
    assert_one_line_naming(str(error.value), path)
    assert reason in str(error.value)


def task_ikd_args(models, output_dir, teacher, student):
    return ["--teacher_model", teacher, "--spiking_student_model", student, "--data_dir", models["task_data"],
            "--task_name", "sst-2", "--output_dir", output_dir, "--max_seq_length", "16", "--do_lower_case",
            "--train_batch_size", "4", "--num_train_epochs", "1", "--no_cuda"]


def task_eval_args(models, output_dir, _teacher, student):
    return ["--spiking_student_model", student, "--data_dir", models["task_data"], "--task_name", "sst-2",
            "--output_dir", output_dir, "--max_seq_length", "16", "--do_lower_case", "--do_eval", "--no_cuda"]


def general_args(models, output_dir, teacher, student):
    return ["--pregenerated_data", models["pregenerated"], "--teacher_model", teacher,
            "--spiking_student_model", student, "--output_dir", output_dir, "--max_seq_length", "16",
            "--train_batch_size", "4", "--num_train_epochs", "1", "--do_lower_case", "--no_cuda"]


def finetune_args(models, output_dir, teacher, _student):
    return ["--bert_model", teacher, "--data_dir", models["task_data"], "--task_name", "sst-2",
            "--output_dir", output_dir, "--max_seq_length", "16", "--train_batch_size", "4", "--no_cuda"]


# Each script with one damaged model: id -> (main, its arguments, teacher fixture, which model is damaged).
SCRIPTS = {
    "task-ikd-teacher": (task.main, task_ikd_args, "task_teacher", "teacher"),
    "task-ikd-student": (task.main, task_ikd_args, "task_teacher", "student"),
    "task-eval-student": (task.main, task_eval_args, "task_teacher", "student"),
    "general-teacher": (general.main, general_args, "teacher", "teacher"),
    "general-student": (general.main, general_args, "teacher", "student"),
    "finetune-bert": (finetune_teacher.main, finetune_args, "teacher", "teacher"),
}
def script_cases():
    return [pytest.param(*case, id=name) for name, case in SCRIPTS.items()]


def damaged_models(models, tmp_path, teacher_key, damaged, name, damage):
    """(teacher folder, student folder, damaged file) with ``damaged`` ("teacher"/"student") broken."""
    teacher, student = models[teacher_key], models["student"]
    if damaged == "teacher":
        teacher, path = corrupt_copy(teacher, tmp_path / "damaged", name, damage)
    else:
        student, path = corrupt_copy(student, tmp_path / "damaged", name, damage)
    return teacher, student, path


def exit_message(main, argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return str(stop.value.code)


@pytest.mark.parametrize("file_name", [WEIGHTS_NAME, CONFIG_NAME])
@pytest.mark.parametrize("damage", [truncated, random_bytes])
@pytest.mark.parametrize("main, arguments, teacher_key, damaged", script_cases())
def test_scripts_stop_with_one_line_on_corrupt_weights_or_config(models, tmp_path, main, arguments, teacher_key,
                                                                 damaged, damage, file_name):
    teacher, student, path = damaged_models(models, tmp_path, teacher_key, damaged, file_name, damage)
    out = tmp_path / "out"
    message = exit_message(main, arguments(models, str(out), teacher, student))
    assert message.startswith("error: ")
    assert_one_line_naming(message, path)
    # Configs are read before anything is written; weights after the output folder was claimed, and a failed
    # run leaves it as it found it.
    assert not out.exists()


def test_binary_vocab_is_a_one_line_error_naming_it(models, tmp_path):
    student, vocab = corrupt_copy(models["student"], tmp_path / "student", "vocab.txt", random_bytes)
    message = exit_message(task.main, task_eval_args(models, str(tmp_path / "out"), None, student))
    assert message.startswith("error: ")
    assert_one_line_naming(message, vocab)


def write_epoch(folder, lines):
    """epoch_0.json with these lines and a metrics file counting the non-empty ones; returns the data path."""
    folder.mkdir(exist_ok=True)
    (folder / "epoch_0.json").write_bytes(b"".join(line + b"\n" for line in lines))
    (folder / "epoch_0_metrics.json").write_text(json.dumps({"num_training_examples": sum(map(bool, lines)),
                                                             "max_seq_len": 16}))
    return folder / "epoch_0.json"


GOOD_LINE = json.dumps({"tokens": ["[CLS]", "the", "movie", "[SEP]"], "segment_ids": [0, 0, 0, 0]}).encode()


@pytest.mark.parametrize("bad_line, message", [
    (GOOD_LINE[:-9], "line 2: not valid JSON (Expecting"),
    (b"\xa3\xff\x00garbage", "line 2: not valid JSON ("),
    (b'{"tokens": ["the"], "segment_ids": [0]}}', "line 2: not valid JSON (Extra data)"),
    (b"[" * 100_000, "line 2: not valid JSON (nested too deeply)"),
    (b'{"tokens": ["the"]}', "line 2: not an instance with tokens and segment_ids"),
    (b'[["the"], [0]]', "line 2: not an instance with tokens and segment_ids"),
    (b'{"tokens": 7, "segment_ids": [0]}', "line 2: not an instance with tokens and segment_ids"),
    (b'{"tokens": [["the"]], "segment_ids": [0]}', "line 2: not an instance with tokens and segment_ids"),
    (b'{"tokens": ["the"], "segment_ids": [5]}', "line 2: not an instance with tokens and segment_ids"),
])
def test_corrupted_pregenerated_line_is_named(tmp_path, bad_line, message):
    data = write_epoch(tmp_path / "data", [GOOD_LINE, bad_line, GOOD_LINE])
    vocab = {token: i for i, token in enumerate(VOCAB)}
    with pytest.raises(ValueError) as error:
        PregeneratedEpoch(str(data), str(tmp_path / "data" / "epoch_0_metrics.json"), vocab, 16,
                          memmap_parent=str(tmp_path))
    assert_one_line_naming(str(error.value), data)
    assert message in str(error.value)
    assert sorted(os.listdir(tmp_path)) == ["data"]  # the memory-mapped arrays are gone


def test_valid_pregenerated_lines_are_loaded(tmp_path):
    data = write_epoch(tmp_path / "data", [GOOD_LINE, b"", GOOD_LINE])
    vocab = {token: i for i, token in enumerate(VOCAB)}
    epoch = PregeneratedEpoch(str(data), str(tmp_path / "data" / "epoch_0_metrics.json"), vocab, 16)
    input_ids, segment_ids, mask, labels, lengths = epoch.batch([0, 1])
    assert labels is None and lengths.tolist() == [4, 4]
    assert input_ids.tolist() == [[vocab[t] for t in ("[CLS]", "the", "movie", "[SEP]")]] * 2
    assert segment_ids.tolist() == [[0] * 4] * 2 and mask.tolist() == [[1] * 4] * 2


@pytest.mark.parametrize("count", ["Infinity", "NaN", '"many"', "[4]"])
def test_metrics_count_that_is_no_integer_is_named(tmp_path, count):
    path = tmp_path / "epoch_0_metrics.json"
    path.write_text(f'{{"num_training_examples": {count}, "max_seq_len": 16}}')
    with pytest.raises(ValueError) as error:
        read_epoch_metrics(str(path), 16)
    assert str(error.value) == f"{path}: needs integer num_training_examples and max_seq_len"


# ----------------------------------------------------------------------------
# Configs and vocabularies that do not fit the weights; the quick start's damaged stage folders.

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return script_inputs(tmp_path_factory.mktemp("inputs"))


def with_config(model_dir, destination, **changes):
    """A copy of ``model_dir`` whose config.json has ``changes``."""
    shutil.copytree(model_dir, destination)
    config = read_json(os.path.join(destination, CONFIG_NAME))
    with open(os.path.join(destination, CONFIG_NAME), "w", encoding="utf-8") as f:
        json.dump({**config, **changes}, f)
    return str(destination)


@pytest.mark.parametrize("main, arguments, flag, model, changes, named", [
    (task.main, entry_scripts.task_args, "--teacher_model", "task_teacher", {"num_hidden_layers": 1},
     r"bert\.encoder\.layer\.1\.\S+ in the file, not in the model"),
    (general.main, entry_scripts.general_args, "--teacher_model", "teacher", {"intermediate_size": 32},
     r"encoder\.layer\.0\.intermediate\.dense\.weight \(64, 32\) in the file, \(32, 32\) in the model"),
    (finetune_teacher.main, entry_scripts.finetune_args, "--bert_model", "teacher", {"num_hidden_layers": 3},
     r"bert\.encoder\.layer\.2\.\S+ missing")], ids=["task-teacher", "general-teacher", "finetune-bert"])
def test_a_teacher_whose_config_does_not_fit_its_weights_is_refused(inputs, tmp_path, main, arguments, flag, model,
                                                                    changes, named):
    changed = with_config(inputs[model], tmp_path / "changed", **changes)
    out = tmp_path / "out"
    message = one_line_exit(main, arguments(inputs, out, flag, changed))
    assert re.fullmatch(rf"error: {re.escape(changed)}/{WEIGHTS_NAME}: \d+ tensors do not fit the config \(.*"
                        rf"{named}.*\); fix config\.json", message), message
    assert not out.exists()


def evaluation_args(inputs, out, student):
    return ["--spiking_student_model", student, "--data_dir", inputs["data"], "--task_name", "sst-2", "--output_dir",
            str(out), "--max_seq_length", "16", "--do_lower_case", "--do_eval", "--no_cuda"]


def test_a_student_config_that_does_not_fit_is_one_line(inputs, tmp_path):
    student = make_classifier_student(str(tmp_path / "student"), layers=2)
    out = tmp_path / "out"
    fewer_layers = with_config(student, tmp_path / "fewer_layers", num_hidden_layers=1)
    message = one_line_exit(task.main, evaluation_args(inputs, out, fewer_layers))
    assert re.fullmatch(rf"error: {re.escape(fewer_layers)}/{WEIGHTS_NAME}: \d+ tensors do not fit the config "
                        r"\(bert\.encoder\.layer\.1\.\S+ in the file, not in the model; .*\); fix config\.json, or "
                        r"pass --fresh_student to start from random weights", message), message
    for changes, problem in [
            ({"num_attention_heads": 0}, "num_attention_heads must be an integer >= 1, got 0"),
            ({"hidden_size": "16"}, "hidden_size must be an integer >= 1, got '16'"),
            ({"hidden_dropout_prob": "0.1"}, "hidden_dropout_prob must be a number in [0, 1], got '0.1'"),
            ({"hidden_size": 17}, "hidden_size 17 is not divisible by num_attention_heads 2")]:
        broken = with_config(student, tmp_path / f"broken{len(os.listdir(tmp_path))}", **changes)
        assert one_line_exit(task.main, evaluation_args(inputs, out, broken)) == \
            f"error: {broken}/{CONFIG_NAME}: {problem}"
    assert not out.exists()


def test_a_vocab_that_does_not_fit_the_model_is_one_line(inputs, tmp_path):
    # More words than the model has embeddings: the last ids would index past them.
    student = make_classifier_student(str(tmp_path / "student"))
    with open(os.path.join(student, "vocab.txt"), "a", encoding="utf-8") as f:
        f.write("zebra\nyak\n")
    message = one_line_exit(task.main, evaluation_args(inputs, tmp_path / "out", student))
    assert message == (f"error: {student}/vocab.txt: {len(VOCAB) + 2} tokens, more than the vocab_size {len(VOCAB)} "
                       "of --spiking_student_model's config.json (the wrong vocab.txt?)")
    # Fewer words than a masked LM predicts: its top candidates could be ids without a word.
    config = teacher_config()
    config.vocab_size = len(VOCAB) + 3
    BertForMaskedLM(config).save_pretrained(str(tmp_path / "mlm"), vocab_file=write_vocab(str(tmp_path / "vocab.txt")))
    (tmp_path / "glove.txt").write_text("movie 1.0 0.0\nfilm 0.9 0.1\n")
    message = one_line_exit(data_augmentation.main, [
        "--pretrained_bert_model", str(tmp_path / "mlm"), "--glove_embs", str(tmp_path / "glove.txt"), "--glue_dir",
        inputs["glue"], "--task_name", "SST-2", "--output_dir", str(tmp_path / "augmented")])
    assert message == (f"error: {tmp_path / 'mlm' / 'vocab.txt'}: {len(VOCAB)} tokens, fewer than the vocab_size "
                       f"{len(VOCAB) + 3} of --pretrained_bert_model's config.json: the model's predictions of the "
                       "last ids have no token (the wrong vocab.txt?)")
    assert not (tmp_path / "augmented").exists()


def test_the_quick_start_redoes_a_stage_whose_marker_or_weights_are_damaged(tmp_path, caplog):
    stages = build_stages(PRESETS["smoke"], str(tmp_path / "run"), FAKE_ASSETS)
    settings = stage_settings(stages)
    folders = {stage.name: stage.folder for stage in stages}
    make_classifier_student(folders["task_ikd"])
    for stage in stages:
        os.makedirs(stage.folder, exist_ok=True)
        write_json_atomic(os.path.join(stage.folder, MARKER_NAME),
                          {"settings": settings[stage.name], "seconds": 1.0, "finished": "earlier"})
    assert plan(stages, settings, overwrite=False) == []

    marker = os.path.join(folders["teacher"], MARKER_NAME)
    with open(marker, "r+", encoding="utf-8") as f:
        f.truncate(20)
    weights = os.path.join(folders["task_ikd"], WEIGHTS_NAME)
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    with caplog.at_level(logging.WARNING, logger="quickstart"):
        assert plan(stages, settings, overwrite=False) == ["teacher", "task_ikd"]
    assert f"{marker}: line 3: not valid JSON" in caplog.text and "the stage is done again" in caplog.text
    assert f"[task_ikd] cannot reuse {folders['task_ikd']} ({weights}: corrupt or truncated" in caplog.text

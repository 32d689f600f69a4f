"""The held-out test set: scored beside dev when a task folder has a labelled test.tsv, never used to choose.

Checkpoint selection must not see the test labels: runs that differ only in them must give the same
student byte for byte (same machine, same process), while their test scores differ.
"""
import csv
import os
import shutil

import pytest

import distill.task
import finetune_teacher
import spiking_bert_task_distill as task
from distill_fixtures import (UNLABELLED_TEST_HEADERS, load_state, make_student_config, make_teacher, write_task,
                              write_unlabelled_test)
from glue import TEST_SET, get_processor
from pipeline.presets import PRESETS
from pipeline.stages import write_data_slices


def flip_labels(path, label_column):
    """A copy of a binary task's file with every label flipped."""
    with open(path, encoding="utf-8") as f:
        header, *rows = [line.rstrip("\n").split("\t") for line in f]
    for row in rows:
        row[label_column] = "1" if row[label_column] == "0" else "0"
    with open(path, "w", encoding="utf-8") as f:
        f.writelines("\t".join(row) + "\n" for row in [header] + rows)


def read_results(directory):
    with open(os.path.join(directory, "eval_results.txt"), encoding="utf-8") as f:
        return dict(line.rstrip("\n").split(" = ") for line in f)


@pytest.mark.parametrize("task_name", sorted(UNLABELLED_TEST_HEADERS))
def test_only_a_labelled_test_file_is_scored(task_name, tmp_path):
    processor = get_processor(task_name)
    folder = write_task(str(tmp_path / "task"), task_name, train=3, dev=4)
    assert list(processor.eval_sets(folder)) == [processor.name]  # no test.tsv
    write_unlabelled_test(folder, task_name)
    assert list(processor.eval_sets(folder)) == [processor.name]  # GLUE's test.tsv: no labels
    shutil.copy(os.path.join(folder, "dev.tsv"), os.path.join(folder, "test.tsv"))
    sets = processor.eval_sets(folder)
    assert list(sets) == [processor.name, TEST_SET]
    assert [(e.text_a, e.text_b, e.label) for e in sets[TEST_SET]] == [
        (e.text_a, e.text_b, e.label) for e in sets[processor.name]]


def test_mnli_keeps_its_two_dev_sets_and_adds_test(tmp_path):
    folder = write_task(str(tmp_path / "mnli"), "mnli", train=3, dev=4, test=5)
    sets = get_processor("mnli").eval_sets(folder)
    assert list(sets) == ["mnli", "mnli-mm", TEST_SET] and len(sets[TEST_SET]) == 5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("test_set_models")
    return {"teacher": make_teacher(str(root / "teacher"), num_labels=2),
            "student": make_student_config(str(root / "student"), initializer_range=0.5)}


def task_args(data_dir, output_dir, *extra):
    return ["--data_dir", str(data_dir), "--task_name", "sst-2", "--output_dir", str(output_dir), "--max_seq_length",
            "32", "--train_batch_size", "4", "--eval_batch_size", "3", "--num_train_epochs", "2", "--eval_step", "2",
            "--do_lower_case", *extra]


def test_task_distillation_scores_test_but_chooses_on_dev(models, tmp_path):
    data, flipped = tmp_path / "data", tmp_path / "flipped"
    write_task(str(data), "sst-2", train=12, dev=8, test=9)
    shutil.copytree(data, flipped)
    flip_labels(flipped / "test.tsv", 1)
    # Task IKD never evaluates: it must not even read test.tsv.
    ikd = tmp_path / "ikd"
    shutil.copytree(data, tmp_path / "garbled")
    (tmp_path / "garbled" / "test.tsv").write_text("sentence\tlabel\nno label column here\n")
    task.main(task_args(tmp_path / "garbled", ikd, "--teacher_model", models["teacher"], "--spiking_student_model",
                        models["student"], "--learning_rate", "1e-3"))

    runs = {}
    for name, folder in (("plain", data), ("flipped", flipped)):
        runs[name] = tmp_path / f"pred_{name}"
        task.main(task_args(folder, runs[name], "--teacher_model", models["teacher"], "--spiking_student_model",
                            str(ikd), "--pred_distill", "--learning_rate", "1e-2"))
    plain, other = (read_results(runs[name]) for name in ("plain", "flipped"))
    # The same checkpoint was chosen (same step, same weights) and dev scored it the same ...
    assert load_state(str(runs["plain"])).keys() == load_state(str(runs["flipped"])).keys()
    for key, value in load_state(str(runs["plain"])).items():
        assert value.equal(load_state(str(runs["flipped"]))[key]), key
    assert {k: v for k, v in plain.items() if not k.startswith("test.")} == {
        k: v for k, v in other.items() if not k.startswith("test.")}
    # ... while its test score saw the flipped labels: the two accuracies add up to 1.
    assert int(plain["test.num_examples"]) == 9
    assert float(plain["test.acc"]) + float(other["test.acc"]) == pytest.approx(1)
    log = (runs["plain"] / "log.txt").read_text()
    assert log.count("test (scored for the checkpoint dev chose)") == 1

    evaluation = tmp_path / "eval"
    results = task.main(task_args(data, evaluation, "--spiking_student_model", str(runs["plain"]), "--do_eval"))
    assert [r.set_name for r in results] == ["sst-2", TEST_SET]
    values = read_results(evaluation)
    with open(evaluation / "test_predictions.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 9
    assert float(values["test.acc"]) == pytest.approx(sum(r["prediction"] == r["label"] for r in rows) / 9)
    assert values["test.acc"] == plain["test.acc"]  # the same student and t_conv: the same test score
    assert {"test.eval_loss", "test.rate.mean_over_populations", "test.energy.energy_uj"} <= set(values)
    # Without test.tsv the evaluation is as before: dev keys only.
    os.remove(data / "test.tsv")
    task.main(task_args(data, tmp_path / "eval_dev_only", "--spiking_student_model", str(runs["plain"]), "--do_eval"))
    assert not [key for key in read_results(tmp_path / "eval_dev_only") if key.startswith("test.")]
    assert not (tmp_path / "eval_dev_only" / "test_predictions.tsv").exists()


def test_test_is_scored_once_when_training_ends_for_the_student_kept(models, tmp_path, monkeypatch):
    """Every checkpoint a new best (a dev metric that only grows): the test set is still scored once, after the
    last dev evaluation, for the student kept, and its files hold that student's dev and test results."""
    data = tmp_path / "data"
    write_task(str(data), "sst-2", train=12, dev=8, test=9)
    growing = iter(range(1000))
    monkeypatch.setattr(distill.task, "main_metric", lambda task_name, metrics: next(growing))
    run = tmp_path / "pred"
    task.main(task_args(data, run, "--teacher_model", models["teacher"], "--spiking_student_model",
                        models["student"], "--pred_distill", "--learning_rate", "1e-2"))
    log = (run / "log.txt").read_text()
    assert log.count("new best") >= 3
    assert log.count("test (scored for the checkpoint dev chose)") == 1
    assert log.index("test (scored for the checkpoint dev chose)") > log.rindex(" dev: ")
    evaluation = tmp_path / "eval"
    task.main(task_args(data, evaluation, "--spiking_student_model", str(run), "--do_eval"))
    trained, evaluated = read_results(run), read_results(evaluation)
    assert trained.pop("energy.teacher").endswith("from --teacher_model " + models["teacher"])
    assert evaluated.pop("energy.teacher").endswith(f"from teacher_size in {run}/config.json")
    assert trained == evaluated and "test.acc" in trained


def test_teacher_fine_tuning_scores_test_but_chooses_on_dev(tmp_path):
    bert = make_teacher(str(tmp_path / "bert"))
    data, flipped = tmp_path / "data", tmp_path / "flipped"
    write_task(str(data), "movie", train=16, dev=8, test=7)
    shutil.copytree(data, flipped)
    flip_labels(flipped / "test.tsv", 1)
    outputs = {}
    for name, folder in (("plain", data), ("flipped", flipped)):
        outputs[name] = tmp_path / f"teacher_{name}"
        finetune_teacher.main(["--bert_model", bert, "--data_dir", str(folder), "--task_name", "movie", "--output_dir",
                               str(outputs[name]), "--do_lower_case", "--max_seq_length", "16", "--train_batch_size",
                               "4", "--eval_batch_size", "3", "--learning_rate", "1e-3", "--num_train_epochs", "2",
                               "--eval_step", "2", "--seed", "3"])
    plain, other = (read_results(outputs[name]) for name in ("plain", "flipped"))
    assert {k: v for k, v in plain.items() if not k.startswith("test.")} == {
        k: v for k, v in other.items() if not k.startswith("test.")}
    for key, value in load_state(str(outputs["plain"])).items():
        assert value.equal(load_state(str(outputs["flipped"]))[key]), key
    assert int(plain["test.num_examples"]) == 7
    assert float(plain["test.acc"]) + float(other["test.acc"]) == pytest.approx(1)


def test_no_preset_trains_on_a_test_sentence(tmp_path):
    """Every preset's data slices (teacher's, distillation's) leave the test sentences out, and copy them whole."""
    movie = tmp_path / "movie_sst2"
    movie.mkdir()
    for split, count in (("train", 300), ("dev", 20), ("test", 20)):
        (movie / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(
            f"{split} sentence {i}\t{i % 2}\n" for i in range(count)))
    test_rows = set((movie / "test.tsv").read_text().splitlines()[1:])
    for name, preset in PRESETS.items():
        for distill_sentences in (None, 120, 250):
            data = {**preset["data"], "corpus_sentences": 0, "distill_sentences": distill_sentences}
            if data["train_sentences"] is not None:
                data["train_sentences"] = min(data["train_sentences"], 200)
            folder = tmp_path / f"{name}-{distill_sentences}"
            write_data_slices(str(folder), str(movie), None, 42, **data)
            for train in folder.rglob("train.tsv"):
                assert not test_rows & set(train.read_text().splitlines()), train
            for test in folder.rglob("test.tsv"):
                written = test.read_text().splitlines()[1:]
                assert set(written) <= test_rows and len(written) == min(data["test_sentences"] or 20, 20)

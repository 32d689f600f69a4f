"""spiking_bert_task_distill.py on tiny random models and tiny task folders in every GLUE layout."""
import csv
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

import spiking_bert_task_distill as task
from distill.devices import Devices
from distill.energy_report import shape_record
from distill.evaluation import evaluate
from distill_fixtures import (load_state, make_student_config, make_teacher, max_abs_difference, teacher_config,
                              write_task)
from glue import convert_examples_to_features, get_processor
from models.snn_ide_bert_classi import SpikingBertForSequenceClassification
from modules.energy import BertSize, operation_counts, spike_counts_by_population, summarise
from transformer.tokenization import BertTokenizer

TASKS = ["cola", "sst-2", "mrpc", "sts-b", "qqp", "mnli", "qnli", "rte", "wnli"]
NUM_LABELS = {"sts-b": 1, "mnli": 3}
METRICS = {"cola": {"mcc"}, "mrpc": {"acc", "f1", "acc_and_f1"}, "qqp": {"acc", "f1", "acc_and_f1"},
           "sts-b": {"pearson", "spearman", "corr"}}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("task_models")
    teachers = {n: make_teacher(str(root / "teachers" / f"labels{n}"), num_labels=n) for n in (1, 2, 3)}
    # A wide initialisation makes the tiny student's [CLS] rates differ between examples.
    student = make_student_config(str(root / "student"), initializer_range=0.5)
    return {"teachers": teachers, "student": student}


def common(data_dir, task_name, output_dir, *extra):
    return ["--data_dir", str(data_dir), "--task_name", task_name, "--output_dir", str(output_dir),
            "--max_seq_length", "32", "--train_batch_size", "4", "--eval_batch_size", "3", "--num_train_epochs", "1",
            "--eval_step", "2", "--do_lower_case", *extra]


def read_results(directory):
    """eval_results.txt as a dict: numbers as floats, text (the rule, the teacher's shape) as it is."""
    values = {}
    for line in (directory / "eval_results.txt").read_text().splitlines():
        key, value = line.split(" = ")
        try:
            values[key] = float(value)
        except ValueError:
            values[key] = value
    return values


def expected_energy(result, student_dir, teacher_size):
    """modules/energy's per-example means for an EvalResult of the student in ``student_dir``."""
    student = SpikingBertForSequenceClassification.from_pretrained(student_dir)
    spikes = spike_counts_by_population(result.population_spikes, student.population_names())
    return summarise([operation_counts(spikes, result.lengths, result.steps, BertSize.of(student.config),
                                       teacher_size)])


def assert_energy_lines(values, result, student_dir, teacher_size):
    expected = expected_energy(result, student_dir, teacher_size)
    assert ("energy_ratio_to_teacher" in expected) == (teacher_size is not None)
    for key, value in expected.items():
        assert values[f"{result.set_name}.energy.{key}"] == value, key
    assert {key for key in values if key.startswith(f"{result.set_name}.energy.")} == {
        f"{result.set_name}.energy.{key}" for key in expected}


def read_predictions(path):
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [row["prediction"] for row in rows], [row["label"] for row in rows]


def recomputed_metrics(task_name, predictions, labels):
    if task_name == "sts-b":
        p, g = np.array(predictions, dtype=float), np.array(labels, dtype=float)
        pearson, spearman = pearsonr(p, g)[0], spearmanr(p, g)[0]
        return {"pearson": pearson, "spearman": spearman, "corr": (pearson + spearman) / 2}
    p, g = np.array(predictions), np.array(labels)
    acc = float((p == g).mean())
    if task_name == "cola":
        return {"mcc": matthews_corrcoef(g, p)}
    if task_name in ("mrpc", "qqp"):
        f1 = f1_score(g, p, pos_label="1")
        return {"acc": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}
    return {"acc": acc}


def same_number(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("task_name", TASKS)
def test_ikd_then_pred_distill_then_eval(task_name, tiny_models, tmp_path):
    data = write_task(str(tmp_path / "data"), task_name, train=8, dev=8)
    teacher = tiny_models["teachers"][NUM_LABELS.get(task_name, 2)]
    ikd, pred, evaluation = tmp_path / "ikd", tmp_path / "pred", tmp_path / "eval"
    task.main(common(data, task_name.upper(), ikd, "--teacher_model", teacher,
                     "--spiking_student_model", tiny_models["student"], "--learning_rate", "1e-3"))
    assert (ikd / "model.safetensors").is_file() and (ikd / "checkpoint-step2").is_dir()
    assert "rep_loss=" in (ikd / "log.txt").read_text()

    task.main(common(data, task_name, pred, "--teacher_model", teacher, "--spiking_student_model", str(ikd),
                     "--pred_distill", "--learning_rate", "1e-2"))
    assert "classifier initialised: False" in (pred / "log.txt").read_text()
    assert (pred / "eval_results.txt").is_file()
    assert json.loads((pred / "energy.json").read_text())["header"]["adaptive_t_conv"] == "off"

    results = task.main(common(data, task_name, evaluation, "--spiking_student_model", str(pred), "--do_eval",
                               "--t_conv", "6"))
    values = read_results(evaluation)
    assert values["t_conv"] == 6 and values["vth"] == 1.0 and values["adaptive_t_conv"] == "off"
    # The teacher's shape was recorded in the student's config by IKD (and kept by prediction KD).
    teacher_size = BertSize.of(teacher_config(), NUM_LABELS.get(task_name, 2))
    assert json.loads((pred / "config.json").read_text())["teacher_size"] == shape_record(teacher_config())
    assert values["energy.teacher"].endswith(f"from teacher_size in {pred}/config.json")
    set_names = ["mnli", "mnli-mm"] if task_name == "mnli" else [task_name]
    assert [r.set_name for r in results] == set_names
    for set_name in set_names:
        predictions, labels = read_predictions(evaluation / f"{set_name}_dev_predictions.tsv")
        assert values[f"{set_name}.num_examples"] == len(labels) == 8
        expected = recomputed_metrics(task_name, predictions, labels)
        assert set(expected) == METRICS.get(task_name, {"acc"})
        for name, value in expected.items():
            assert same_number(values[f"{set_name}.{name}"], value), name
        assert values[f"{set_name}.eval_loss"] > 0
        rates = {k.split(".rate.")[1]: v for k, v in values.items() if k.startswith(f"{set_name}.rate.")}
        assert list(rates)[:2] == ["embedding", "layer1.key"] and "layer1.output" in rates
        assert all(0 <= v <= 1 for v in rates.values())
        assert rates["mean_over_populations"] == pytest.approx(np.mean([v for k, v in rates.items()
                                                                        if k != "mean_over_populations"]))
    for result in results:
        assert (result.steps == 6).all()
        assert_energy_lines(values, result, str(pred), teacher_size)
        assert values[f"{result.set_name}.steps_histogram.6.count"] == 8
    energy = json.loads((evaluation / "energy.json").read_text())
    assert energy["header"]["t_conv"] == 6 and list(energy["sets"]) == set_names
    assert energy["sets"][set_names[0]]["energy"] == expected_energy(results[0], str(pred), teacher_size)
    assert energy["sets"][set_names[0]]["distribution"]["steps"]["median"] == 6


def test_true_labels_run_keeps_the_distilled_head(tiny_models, tmp_path):
    data = write_task(str(tmp_path / "data"), "sst-2", train=8, dev=6)
    pred, true_labels = tmp_path / "pred", tmp_path / "true"
    task.main(common(data, "sst-2", pred, "--teacher_model", tiny_models["teachers"][2],
                     "--spiking_student_model", tiny_models["student"], "--pred_distill",
                     "--learning_rate", "1e-2"))
    assert "classifier initialised: True" in (pred / "log.txt").read_text()
    # Learning rate 0: the weights stay as loaded, so a re-initialised head would show.
    task.main(common(data, "sst-2", true_labels, "--spiking_student_model", str(pred), "--pred_distill",
                     "--train_true_labels", "--learning_rate", "0"))
    assert "classifier initialised: False" in (true_labels / "log.txt").read_text()
    before, after = load_state(str(pred)), load_state(str(true_labels))
    assert torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert max_abs_difference(before, after) == 0.0


def test_pred_distill_stop_and_resume_equals_uninterrupted(tiny_models, tmp_path):
    data = write_task(str(tmp_path / "data"), "mrpc", train=12, dev=6)
    student = tmp_path / "student"
    shutil.copytree(tiny_models["student"], student)
    args = ["--teacher_model", tiny_models["teachers"][2], "--spiking_student_model", str(student),
            "--pred_distill", "--learning_rate", "1e-2", "--num_train_epochs", "2"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    task.main(common(data, "MRPC", full, *args))
    # Dev evaluations at steps 2, 3 (epoch end), 4 and 6; the stop at step 5 must not add one.
    task.main(common(data, "MRPC", resumed, *args, "--max_steps", "5"))
    task.main(common(data, "MRPC", resumed, *args, "--continue_train"))
    log = (resumed / "log.txt").read_text()
    assert [f"step {n} dev" in log for n in (2, 3, 4, 5, 6)] == [True, True, True, False, True]
    final = lambda d: load_state(str(d / "checkpoint-step6"))  # noqa: E731
    assert max_abs_difference(final(resumed), final(full)) < 1e-6
    assert (resumed / "eval_results.txt").read_text() == (full / "eval_results.txt").read_text()


def test_dynamic_padding_gives_the_same_predictions_as_max_padding(tiny_models, tmp_path):
    data = write_task(str(tmp_path / "data"), "qnli", train=4, dev=12)
    processor = get_processor("qnli")
    tokenizer = BertTokenizer(os.path.join(tiny_models["teachers"][2], "vocab.txt"))
    examples = processor.get_dev_examples(data)
    torch.manual_seed(0)
    model = SpikingBertForSequenceClassification.from_pretrained(tiny_models["student"], num_labels=2, t_conv=8)
    devices = Devices(torch.device("cpu"))
    results = {}
    for pad_to_max in (False, True):
        features = convert_examples_to_features(examples, processor.get_labels(), 32, tokenizer,
                                                processor.output_mode, pad_to_max=pad_to_max)
        results[pad_to_max] = evaluate(model, features, "qnli", processor.output_mode, 5, devices)
    lengths = {len(f.input_ids) for f in convert_examples_to_features(
        examples, processor.get_labels(), 32, tokenizer, processor.output_mode, pad_to_max=False)}
    assert len(lengths) > 3  # the batches really are padded differently
    assert np.array_equal(results[False].predictions, results[True].predictions)
    assert results[False].eval_loss == pytest.approx(results[True].eval_loss, abs=1e-5)
    for name, rate in results[False].rates.items():
        assert rate == pytest.approx(results[True].rates[name], abs=1e-6)


def test_do_eval_keeps_earlier_results_unless_overwrite(tiny_models, tmp_path):
    data = write_task(str(tmp_path / "data"), "rte", train=4, dev=4)
    student = tmp_path / "student"
    shutil.copytree(tiny_models["student"], student)
    shutil.copy(os.path.join(tiny_models["teachers"][2], "vocab.txt"), student)
    trained = tmp_path / "trained"
    task.main(common(data, "rte", trained, "--spiking_student_model", str(student), "--pred_distill",
                     "--train_true_labels"))
    checkpoint_files = sorted(os.listdir(trained))
    weights = (trained / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match="eval_results.txt exists; pass --overwrite"):
        task.main(common(data, "rte", trained, "--spiking_student_model", str(trained), "--do_eval"))
    task.main(common(data, "rte", trained, "--spiking_student_model", str(trained), "--do_eval", "--overwrite",
                     "--t_conv", "3"))
    assert read_results(trained)["t_conv"] == 3
    assert sorted(os.listdir(trained)) == checkpoint_files
    assert (trained / "model.safetensors").read_bytes() == weights
    assert json.loads((trained / "config.json").read_text())["t_conv"] == 4


def test_do_eval_adaptive_reports_rule_steps_and_energy_per_sentence_steps(tiny_models, tmp_path):
    data = write_task(str(tmp_path / "data"), "sst-2", train=4, dev=12)
    student, trained = tmp_path / "student", tmp_path / "trained"
    shutil.copytree(tiny_models["student"], student)
    shutil.copy(os.path.join(tiny_models["teachers"][2], "vocab.txt"), student)
    task.main(common(data, "sst-2", trained, "--spiking_student_model", str(student), "--pred_distill",
                     "--train_true_labels", "--learning_rate", "1e-2"))
    assert "teacher_size" not in json.loads((trained / "config.json").read_text())
    fixed, adaptive = tmp_path / "fixed", tmp_path / "adaptive"
    rule = ["--adaptive_check_every", "2", "--adaptive_patience", "1", "--adaptive_margin", "0",
            "--adaptive_min_steps", "2"]
    fixed_results = task.main(common(data, "sst-2", fixed, "--spiking_student_model", str(trained), "--do_eval",
                                     "--t_conv", "8", *rule))
    # A teacher folder with only config.json gives the teacher's shape.
    teacher_dir = tmp_path / "teacher_config_only"
    teacher_dir.mkdir()
    shutil.copy(os.path.join(tiny_models["teachers"][3], "config.json"), teacher_dir)
    results = task.main(common(data, "sst-2", adaptive, "--spiking_student_model", str(trained), "--do_eval",
                               "--t_conv", "8", "--adaptive_t_conv", *rule, "--teacher_model", str(teacher_dir)))

    values, fixed_values = read_results(adaptive), read_results(fixed)
    assert fixed_values["energy.teacher"] == "none: compared with the same-size ANN only"
    assert_energy_lines(fixed_values, fixed_results[0], str(trained), None)
    assert values["adaptive_t_conv"] == "on" and "has not changed for 1 consecutive checks" in values["adaptive.rule"]
    assert (values["adaptive.check_every"], values["adaptive.patience"], values["adaptive.margin"],
            values["adaptive.min_steps"]) == (2, 1, 0, 2)
    assert values["energy.teacher"].endswith(f"from --teacher_model {teacher_dir}")
    teacher_size = BertSize.of(teacher_config(), 2)
    result = results[0]
    assert_energy_lines(values, result, str(trained), teacher_size)
    assert set(result.steps) <= {4, 6, 8} and result.steps.mean() < 8
    assert values["sst-2.distribution.steps.mean"] == result.steps.mean()
    assert values["sst-2.distribution.steps.median"] == np.median(result.steps)
    predictions, labels = read_predictions(adaptive / "sst-2_dev_predictions.tsv")
    correct = np.array(predictions) == np.array(labels)
    for steps in set(result.steps):
        assert values[f"sst-2.steps_histogram.{steps}.count"] == (result.steps == steps).sum()
        assert values[f"sst-2.steps_histogram.{steps}.acc"] == correct[result.steps == steps].mean()
    energy = json.loads((adaptive / "energy.json").read_text())
    assert energy["header"]["adaptive.patience"] == 1
    assert energy["sets"]["sst-2"]["distribution"]["energy_uj"]["mean"] == pytest.approx(
        values["sst-2.energy.energy_uj"], rel=1e-12)
    # Fewer steps, fewer operations than the fixed evaluation at t_conv 8.
    assert values["sst-2.energy.mac"] < fixed_values["sst-2.energy.mac"]


def test_do_eval_readout_steps_write_what_evaluations_at_those_steps_write(tiny_models, tmp_path):
    data = write_task(str(tmp_path / "data"), "sst-2", train=4, dev=12)
    student, trained = tmp_path / "student", tmp_path / "trained"
    shutil.copytree(tiny_models["student"], student)
    shutil.copy(os.path.join(tiny_models["teachers"][2], "vocab.txt"), student)
    task.main(common(data, "sst-2", trained, "--spiking_student_model", str(student), "--pred_distill",
                     "--train_true_labels", "--learning_rate", "1e-2"))
    rule = ["--adaptive_check_every", "2", "--adaptive_patience", "1", "--adaptive_margin", "0",
            "--adaptive_min_steps", "2"]
    evaluate_at = lambda folder, *extra: task.main(common(  # noqa: E731
        data, "sst-2", folder, "--spiking_student_model", str(trained), "--do_eval", *rule, *extra))
    evaluate_at(tmp_path / "together", "--t_conv", "8", "--adaptive_t_conv", "--readout_steps", "3", "1", "3", "12")
    evaluate_at(tmp_path / "adaptive", "--t_conv", "8", "--adaptive_t_conv")
    together = read_results(tmp_path / "together")
    assert together == read_results(tmp_path / "adaptive")
    assert sorted(os.listdir(tmp_path / "together")) == sorted(
        os.listdir(tmp_path / "adaptive") + ["t1", "t3", "t12"])
    for steps in (1, 3, 12):
        evaluate_at(tmp_path / f"alone{steps}", "--t_conv", str(steps))
        readout, alone = read_results(tmp_path / "together" / f"t{steps}"), read_results(tmp_path / f"alone{steps}")
        assert readout["t_conv"] == steps and readout["adaptive_t_conv"] == "off"
        assert readout.keys() == alone.keys()
        for key, value in alone.items():
            # the loss: logits of a running simulation's rates and of the forward pass, float32 rounding apart
            assert readout[key] == (pytest.approx(value, rel=1e-6) if "eval_loss" in key else value), key
        assert ((tmp_path / "together" / f"t{steps}" / "sst-2_dev_predictions.tsv").read_text()
                == (tmp_path / f"alone{steps}" / "sst-2_dev_predictions.tsv").read_text())
    # A readout's earlier results are kept as the top level's are: nothing is written without --overwrite.
    shutil.copytree(tmp_path / "together" / "t3", tmp_path / "earlier" / "t3")
    with pytest.raises(SystemExit, match=r"earlier/t3/eval_results.txt exists; pass --overwrite"):
        evaluate_at(tmp_path / "earlier", "--t_conv", "8", "--readout_steps", "3")
    assert os.listdir(tmp_path / "earlier") == ["t3"]


def one_line_error(argv, match, output_dir):
    with pytest.raises(SystemExit) as error:
        task.main(argv)
    message = str(error.value)
    assert message.startswith("error: ") and "\n" not in message
    assert match in message, message
    assert not os.path.exists(output_dir)


def test_errors_are_one_line_and_write_nothing(tiny_models, tmp_path):
    data = write_task(str(tmp_path / "data"), "sst-2", train=4, dev=4)
    out = tmp_path / "out"
    teacher2, teacher3 = tiny_models["teachers"][2], tiny_models["teachers"][3]
    base = ["--teacher_model", teacher2, "--spiking_student_model", tiny_models["student"]]

    one_line_error(common(data, "squad", out, *base), "unknown task 'squad'", out)
    no_train = tmp_path / "no_train"
    no_train.mkdir()
    shutil.copy(os.path.join(data, "dev.tsv"), no_train)
    one_line_error(common(no_train, "sst-2", out, *base), "train.tsv: file not found", out)
    no_dev = tmp_path / "no_dev"
    no_dev.mkdir()
    shutil.copy(os.path.join(data, "train.tsv"), no_dev)
    one_line_error(common(no_dev, "sst-2", out, *base, "--pred_distill"), "dev.tsv: file not found", out)
    header_only_dev = tmp_path / "header_only_dev"
    shutil.copytree(data, header_only_dev)
    (header_only_dev / "dev.tsv").write_text("sentence\tlabel\n")
    one_line_error(common(header_only_dev, "sst-2", out, *base, "--pred_distill"),
                   f"{header_only_dev}/dev.tsv: no examples", out)
    malformed = tmp_path / "malformed"
    shutil.copytree(data, malformed)
    with open(malformed / "train.tsv", "a", encoding="utf-8") as f:
        f.write("a sentence without a label\n")
    one_line_error(common(malformed, "sst-2", out, *base), "train.tsv:6: expected at least 2", out)

    one_line_error(common(data, "sst-2", out, "--teacher_model", teacher3, "--spiking_student_model",
                          tiny_models["student"]), "--teacher_model has 3 labels, task sst-2 has 2", out)
    three_label_student = make_student_config(str(tmp_path / "student3"), num_labels=3)
    one_line_error(common(data, "sst-2", out, "--teacher_model", teacher2, "--spiking_student_model",
                          three_label_student), "--spiking_student_model has 3 labels, task sst-2 has 2", out)
    other_vocab = make_student_config(str(tmp_path / "other_vocab"))
    (tmp_path / "other_vocab" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
    one_line_error(common(data, "sst-2", out, "--teacher_model", teacher2, "--spiking_student_model",
                          other_vocab), "vocab mismatch", out)
    one_line_error(common(data, "sst-2", out, *base) + ["--max_seq_length", "64"],
                   "--max_seq_length 64 exceeds", out)
    one_line_error(common(data, "sst-2", out, "--spiking_student_model", tiny_models["student"]),
                   "--teacher_model is needed", out)
    one_line_error(common(data, "sst-2", out, *base, "--train_true_labels"), "needs --pred_distill", out)
    one_line_error(common(data, "sst-2", out, "--spiking_student_model", tiny_models["student"], "--do_eval"),
                   "config has no num_labels (no trained classifier to evaluate)", out)
    one_line_error(common(data, "sst-2", out, *base, "--adaptive_t_conv"), "--adaptive_t_conv applies to dev", out)
    one_line_error(common(data, "sst-2", out, *base, "--pred_distill", "--adaptive_t_conv", "--adaptive_margin",
                          "2"), "--adaptive_margin must be in [0, 1]", out)
    regression = write_task(str(tmp_path / "regression"), "sts-b", train=4, dev=4)
    one_line_error(common(regression, "sts-b", out, "--teacher_model", tiny_models["teachers"][1],
                          "--spiking_student_model", tiny_models["student"], "--pred_distill", "--adaptive_t_conv"),
                   "--adaptive_t_conv needs a classification task", out)
    one_line_error(common(data, "sst-2", out, *base, "--pred_distill", "--readout_steps", "2"),
                   "--readout_steps applies to --do_eval only", out)
    one_line_error(common(data, "sst-2", out, *base, "--do_eval", "--readout_steps", "2", "0"),
                   "--readout_steps must be >= 1, got 0", out)
    without_weights = make_student_config(str(tmp_path / "without_weights"), num_labels=2)
    one_line_error(common(data, "sst-2", out, "--spiking_student_model", without_weights, "--do_eval"),
                   "no model.safetensors", out)


def test_aug_train_reads_train_aug_tsv(tiny_models, tmp_path):
    data = write_task(str(tmp_path / "data"), "wnli", train=4, dev=4)
    augmented = write_task(str(tmp_path / "augmented"), "wnli", train=10, dev=4, seed=1)
    shutil.copy(os.path.join(augmented, "train.tsv"), os.path.join(data, "train_aug.tsv"))
    out = tmp_path / "out"
    task.main(common(data, "WNLI", out, "--teacher_model", tiny_models["teachers"][2],
                     "--spiking_student_model", tiny_models["student"], "--aug_train", "--max_steps", "1"))
    log = (out / "log.txt").read_text()
    assert "10 training examples" in log and "3 optimisation steps" in log

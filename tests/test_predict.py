"""predict.py on a tiny trained student: the same predictions, steps and energy as --do_eval, pairs, stdin, plots."""
import csv
import io
import json
import os
import subprocess
import sys

import pytest

import predict
import spiking_bert_task_distill as task
from distill_fixtures import make_student_config, make_teacher, write_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def task_args(data_dir, task_name, output_dir, *extra):
    return ["--data_dir", str(data_dir), "--task_name", task_name, "--output_dir", str(output_dir), "--max_seq_length",
            "32", "--train_batch_size", "4", "--eval_batch_size", "3", "--num_train_epochs", "1", "--eval_step", "2",
            "--do_lower_case", *extra]


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    """A student distilled on a single-sentence task and one on a sentence-pair task (IKD, then prediction KD)."""
    root = tmp_path_factory.mktemp("predict")
    config = make_student_config(str(root / "config"), initializer_range=0.5)
    trained = {}
    for task_name in ("sst-2", "mrpc"):
        data = write_task(str(root / task_name / "data"), task_name, train=8, dev=11)
        teacher = make_teacher(str(root / task_name / "teacher"), num_labels=2)
        ikd, pred = root / task_name / "ikd", root / task_name / "pred"
        task.main(task_args(data, task_name, ikd, "--teacher_model", teacher, "--spiking_student_model", config,
                            "--learning_rate", "1e-3"))
        task.main(task_args(data, task_name, pred, "--teacher_model", teacher, "--spiking_student_model", str(ikd),
                            "--pred_distill", "--learning_rate", "1e-2"))
        trained[task_name] = {"data": data, "student": str(pred), "root": root / task_name}
    return trained


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_results(directory):
    with open(os.path.join(directory, "eval_results.txt"), encoding="utf-8") as f:
        return dict(line.rstrip("\n").split(" = ") for line in f)


@pytest.mark.parametrize("adaptive", [False, True])
def test_predictions_steps_and_energy_equal_do_eval(students, tmp_path, adaptive):
    run = students["sst-2"]
    extra = ["--adaptive_t_conv", "--adaptive_min_steps", "2", "--adaptive_check_every", "1", "--adaptive_margin",
             "0.01"] if adaptive else []
    evaluation = tmp_path / "eval"
    task.main(task_args(run["data"], "sst-2", evaluation, "--spiking_student_model", run["student"], "--do_eval",
                        *extra))
    expected = [row["prediction"] for row in read_tsv(evaluation / "sst-2_dev_predictions.tsv")]
    output = tmp_path / "predictions.tsv"
    rows = predict.main(["--spiking_student_model", run["student"], "--task_name", "sst-2", "--input",
                         os.path.join(run["data"], "dev.tsv"), "--skip_header", "--output", str(output),
                         "--max_seq_length", "32", "--batch_size", "3", *extra])
    written = read_tsv(output)
    assert [row["label"] for row in written] == expected == [row["label"] for row in rows]
    assert [int(row["line"]) for row in written] == list(range(2, 13))  # input line numbers, header skipped
    for row in written:
        assert float(row["p_0"]) + float(row["p_1"]) == pytest.approx(1)
        assert (float(row["p_1"]) > float(row["p_0"])) == (row["label"] == "1")
    # Steps and energy per sentence average to what the evaluation reports for the set.
    values = read_results(evaluation)
    steps = [int(row["steps"]) for row in written]
    assert sum(steps) / len(steps) == pytest.approx(float(values["sst-2.distribution.steps.mean"]))
    assert adaptive or set(steps) == {4}
    energy = [float(row["energy_uj"]) for row in written]
    assert sum(energy) / len(energy) == pytest.approx(float(values["sst-2.energy.energy_uj"]), rel=1e-9)
    spikes = [int(row["spikes"]) for row in written]
    assert all(spike >= 0 for spike in spikes) and sum(spikes) > 0


def test_sentence_pairs_stdin_and_json_lines(students, tmp_path):
    run = students["mrpc"]
    evaluation = tmp_path / "eval"
    task.main(task_args(run["data"], "mrpc", evaluation, "--spiking_student_model", run["student"], "--do_eval"))
    expected = [row["prediction"] for row in read_tsv(evaluation / "mrpc_dev_predictions.tsv")]
    with open(os.path.join(run["data"], "dev.tsv"), encoding="utf-8") as f:
        pairs = "".join("\t".join(line.rstrip("\n").split("\t")[3:5]) + "\n" for line in f.readlines()[1:])
    result = subprocess.run([sys.executable, "predict.py", "--spiking_student_model", run["student"], "--task_name",
                             "mrpc", "--text_b_column", "1", "--format", "jsonl", "--max_seq_length", "32"],
                            input=pairs, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["label"] for record in records] == expected
    assert [record["line"] for record in records] == list(range(1, 12))


def test_spike_plots_one_png_per_sentence(students, tmp_path):
    run = students["sst-2"]
    plots = tmp_path / "plots"
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("the movie was good\n\nthe plot is very dull and long\n")
    predict.main(["--spiking_student_model", run["student"], "--task_name", "sst-2", "--input", str(sentences),
                  "--output", str(tmp_path / "out.tsv"), "--adaptive_t_conv", "--adaptive_min_steps", "1",
                  "--adaptive_check_every", "1", "--plot_spikes", "5", "--plot_dir", str(plots)])
    assert sorted(os.listdir(plots)) == ["spikes_line1.png", "spikes_line3.png"]  # the empty line is skipped
    for name in os.listdir(plots):
        with open(plots / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_spike_trace_rates_match_the_evaluation(students):
    """The per-token rates drawn are those of the model's own simulation of the sentence."""
    import torch

    from distill.prediction import read_sentences, sentence_features
    from distill.spike_plots import spike_trace
    from glue import get_processor
    from models.snn_ide_bert_classi import SpikingBertForSequenceClassification
    from transformer.tokenization import BertTokenizer

    student = SpikingBertForSequenceClassification.from_pretrained(students["sst-2"]["student"]).eval()
    tokenizer = BertTokenizer(os.path.join(students["sst-2"]["student"], "vocab.txt"), do_lower_case=True)
    sentences = read_sentences(io.StringIO("the movie was very good\n"))
    (feature,) = sentence_features(sentences, get_processor("sst-2").get_labels(), "classification", 32, tokenizer)
    token_rates, cls_rates = spike_trace(student, feature, steps_used=4)
    ids = torch.tensor([feature.input_ids[:feature.seq_length]])
    with torch.no_grad():
        output = student(ids, torch.zeros_like(ids), torch.ones_like(ids), output_rates=True)
    population_rates = torch.stack([token_rates[p].mean() for p in range(len(token_rates))])
    # Mean over tokens and neurons of exact multiples of 1/4: the same sums in another order.
    assert torch.allclose(population_rates, output.population_rates[0].float(), atol=1e-6)
    assert torch.allclose(cls_rates[-1], token_rates[:, 0], atol=1e-6)


def one_line_error(argv, match):
    with pytest.raises(SystemExit, match=match) as error:
        predict.main(argv)
    assert "\n" not in str(error.value)


def test_bad_input_is_one_line(students, tmp_path):
    run = students["sst-2"]
    base = ["--spiking_student_model", run["student"], "--output", str(tmp_path / "out.tsv")]
    bad = tmp_path / "bad.tsv"
    bad.write_text("one\ttwo\nonly one\n")
    one_line_error(base + ["--task_name", "sst-2", "--input", str(bad), "--text_column", "1"],
                   rf"{bad}:2: expected at least 2 tab-separated columns, found 1")
    one_line_error(base + ["--task_name", "mrpc", "--input", str(bad)], "takes sentence pairs: give --text_b_column")
    one_line_error(base + ["--task_name", "sst-2", "--input", str(bad), "--text_b_column", "1"],
                   "takes single sentences: drop --text_b_column")
    one_line_error(base + ["--task_name", "mnli", "--input", str(bad), "--text_b_column", "1"], "has 2 labels")
    one_line_error(base + ["--task_name", "sst-2", "--input", str(tmp_path / "missing.txt")], "missing.txt")
    one_line_error(base + ["--task_name", "sst-2", "--input", str(bad), "--t_conv", "0"], "--t_conv must be >= 1")
    assert not (tmp_path / "out.tsv").exists()

"""The accuracy/energy frontier (pipeline/frontier.py, benchmarks/frontier.py): the points it reads from a run's
results.json and an ablation's rows, the Pareto front, and the files the script writes."""
import json
import os

import pytest

from distill_fixtures import REPO, run_script
from pipeline.frontier import (against_baseline_markdown, frontier_markdown, pareto_front, point, points_of_ablation,
                               points_of_results)

LOGGED_RUN = os.path.join(REPO, "logs", "quickstart-default", "four_seeds", "results.json")


def test_pareto_front_keeps_exactly_the_undominated_points_by_increasing_energy():
    a = point("r", "a", 4, [0.70], [0.10])
    b = point("r", "b", 8, [0.80], [0.20])
    c = point("r", "c", 16, [0.75], [0.30])    # less accurate than b for more energy
    d = point("r", "d", 32, [0.80], [0.40])    # as accurate as b for more energy
    e = point("r", "e", 2, [0.70], [0.10])     # the same as a: neither dominates the other
    f = point("r", "f", 64, [0.85], [0.90])
    assert [p["label"] for p in pareto_front([f, d, c, b, a, e])] == ["a", "e", "b", "f"]


def test_a_point_is_the_mean_over_seeds_with_the_range():
    p = point("run", "t_conv 8", 8, [0.78, 0.80, 0.79], [0.30, 0.28, 0.29])
    assert p["test_acc"] == pytest.approx(0.79) and p["test_acc_range"] == [0.78, 0.80]
    assert p["energy_ratio"] == pytest.approx(0.29) and p["energy_ratio_range"] == [0.28, 0.30]


def test_points_of_a_logged_run_are_its_evaluations_against_the_same_size_ann():
    with open(LOGGED_RUN, encoding="utf-8") as f:
        results = json.load(f)
    points, teacher = points_of_results("default", results)
    evaluations = results["student"]["evaluations"]
    adaptive = results["student"]["adaptive"]
    ann = results["same_size_ann"]["energy_uj"]
    assert [p["label"] for p in points] == ([f"t_conv {e['t_conv']}" for e in evaluations]
                                            + [f"adaptive (at most {adaptive['t_conv']})"])
    for p, evaluation in zip(points, evaluations + [adaptive]):
        assert p["steps"] == evaluation["mean_steps"]
        assert p["test_acc"] == pytest.approx(evaluation["test_acc"], rel=1e-12)
        assert p["test_acc_range"] == evaluation["test_acc_range"]
        # The ANN's energy is one number for the run, so the mean of the seeds' ratios is the ratio of the mean.
        assert p["energy_ratio"] == pytest.approx(evaluation["energy_uj"] / ann, rel=1e-12)
    # The teacher (6 layers) costs twice the 3-layer student-shaped ANN.
    assert teacher["energy_ratio"] == pytest.approx(results["teacher"]["energy_uj"] / ann)
    assert 1.9 < teacher["energy_ratio"] < 2.1 and teacher["test_acc"] == results["teacher"]["test_acc"]
    # Energy follows the spikes: from one t_conv to the next (double) the energy grows as steps x mean spike rate,
    # within 5% (the fixed, spike-independent part of the count is small; the signed student's rate rises with
    # the steps, from 0.30 at one step to 0.35 at two, so the energy grows by more than twice there).
    ratios = [p["energy_ratio"] for p in points[:len(evaluations)]]
    spikes = [e["t_conv"] * e["mean_spike_rate"] for e in evaluations]
    assert all(0.95 < (later / earlier) / (spikes_later / spikes_earlier) < 1.05
               for earlier, later, spikes_earlier, spikes_later in zip(ratios, ratios[1:], spikes, spikes[1:]))
    assert all(later > earlier for earlier, later in zip(ratios, ratios[1:]))


def test_points_of_ablation_rows_are_one_per_variant_and_t_conv():
    rows = [{"variant": name, "per_seed": {42: {"test_acc_t4": acc, "energy_ratio_t4": 0.1, "test_acc_t8": acc + 0.01,
                                                  "energy_ratio_t8": 0.2},
                                             7: {"test_acc_t4": acc + 0.02, "energy_ratio_t4": 0.12,
                                                 "test_acc_t8": acc + 0.03, "energy_ratio_t8": 0.22}}}
            for name, acc in (("paper", 0.5), ("best", 0.7))]
    points = points_of_ablation(rows, [4, 8])
    assert [(p["run"], p["label"]) for p in points] == [("paper", "t_conv 4"), ("paper", "t_conv 8"),
                                                         ("best", "t_conv 4"), ("best", "t_conv 8")]
    assert points[3]["test_acc"] == pytest.approx(0.72) and points[3]["energy_ratio_range"] == [0.2, 0.22]
    table = frontier_markdown(points, [{"run": "teacher", "label": "teacher", "test_acc": 0.8,
                                        "energy_ratio": 2.0}])
    front_rows = [line for line in table.splitlines() if line.endswith("| yes |")]
    assert [line.split(" | ")[:2] for line in front_rows] == [["| best", "t_conv 4"], ["| best", "t_conv 8"]]


def test_against_a_baseline_each_point_is_compared_with_the_same_evaluation():
    points = [point("default", "t_conv 4", 4, [0.77, 0.79], [0.14, 0.16]),
              point("default", "t_conv 8", 8, [0.79], [0.29]),
              point("lever", "t_conv 2", 2, [0.75], [0.07]),
              point("lever", "t_conv 4", 4, [0.80, 0.81], [0.10, 0.10])]
    teachers = [{"run": "default", "test_acc": 0.83, "energy_ratio": 2.0},
                {"run": "lever", "test_acc": 0.82, "energy_ratio": 2.0}]
    rows = [line.split(" | ") for line in against_baseline_markdown(points, teachers, "default").splitlines()[2:]]
    # The lever's 4 steps: 80.5% against 78.0% (+2.5 points) for 0.10 / 0.15 of the energy, 1.5 behind its teacher;
    # its 2 steps have no default evaluation to compare with. The baseline's own points are not rows.
    assert rows == [["| lever", "t_conv 2", "75.0", "-", "0.070", "-", "7.0 |"],
                    ["| lever", "t_conv 4", "80.5", "+2.5", "0.100", "0.67", "1.5 |"]]


def section(document, title):
    """The lines of frontier.md's table under the heading ``## title``."""
    return document.split(f"\n## {title}\n\n")[1].split("\n\n")[0].strip().splitlines()


def test_the_script_writes_the_table_and_the_figure_and_refuses_bad_runs_in_one_line(tmp_path):
    out = tmp_path / "frontier"
    two_seeds = os.path.join(REPO, "logs", "quickstart-default")
    result = run_script("benchmarks/frontier.py", f"four={os.path.dirname(LOGGED_RUN)}", f"two={two_seeds}",
                        "--out_dir", out)
    assert result.returncode == 0, result.stderr[-2000:]
    table = (out / "frontier.md").read_text()
    with open(LOGGED_RUN, encoding="utf-8") as f:
        evaluations = len(json.load(f)["student"]["evaluations"]) + 1
    assert table.startswith("# Accuracy against energy\n\n## Contents\n\n- [Every evaluation](#every-evaluation)\n\n")
    rows = section(table, "Every evaluation")[2:]
    assert len(rows) == 2 * evaluations + 2 and sum(row.endswith("| yes |") for row in rows) >= 2
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    result = run_script("benchmarks/frontier.py", f"four={os.path.dirname(LOGGED_RUN)}", f"two={two_seeds}",
                        "--out_dir", out, "--baseline", "two")
    assert result.returncode == 0, result.stderr[-2000:]
    table = (out / "frontier.md").read_text()
    assert "- [Every evaluation](#every-evaluation)\n- [Against two](#against-two)\n" in table
    compared = section(table, "Against two")[2:]
    assert len(compared) == evaluations and all(row.startswith("| four | ") for row in compared)

    not_json = tmp_path / "results.json"
    not_json.write_text("{")
    for argv, error in [
        (["four", "--out_dir", out], "run 'four': expected NAME=PATH (a results.json or a folder holding one)"),
        ([f"a={tmp_path / 'missing.json'}", "--out_dir", out],
         f"{tmp_path / 'missing.json'}: cannot read it (No such file or directory)"),
        ([f"a={LOGGED_RUN}", f"a={LOGGED_RUN}", "--out_dir", out], "run names must differ, got a a"),
        ([f"a={LOGGED_RUN}", "--out_dir", not_json], f"--out_dir {not_json} exists and is not a folder"),
        ([f"a={LOGGED_RUN}", "--out_dir", out, "--baseline", "b"], "--baseline b is not one of the runs (a)"),
    ]:
        result = run_script("benchmarks/frontier.py", *argv)
        assert (result.returncode, result.stderr) == (1, f"error: {error}\n"), result.stderr[-2000:]
    result = run_script("benchmarks/frontier.py", f"a={tmp_path}", "--out_dir", out)
    assert result.returncode == 1 and result.stderr.startswith(f"error: {not_json}: not a quick start's results.json")


def test_students_of_different_shapes_are_compared_over_one_ann(tmp_path):
    with open(LOGGED_RUN, encoding="utf-8") as f:
        results = json.load(f)
    # A student of twice the ANN (6 layers instead of 3) spending 1.5 times the energy at every evaluation.
    deep = json.loads(json.dumps(results))
    deep["same_size_ann"]["energy_uj"] *= 2
    for evaluation in deep["student"]["evaluations"] + [deep["student"]["adaptive"]]:
        evaluation["energy_uj_per_seed"] = [energy * 1.5 for energy in evaluation["energy_uj_per_seed"]]
    (tmp_path / "deep.json").write_text(json.dumps(deep))
    out = tmp_path / "frontier"
    result = run_script("benchmarks/frontier.py", f"deep={tmp_path / 'deep.json'}", f"base={LOGGED_RUN}",
                        "--out_dir", out, "--baseline", "base")
    assert result.returncode == 0, result.stderr[-2000:]
    table = (out / "frontier.md").read_text()
    assert section(table, "Every evaluation")[0].endswith("| energy / ANN of base's student shape | on the front |")
    rows = [line.split(" | ") for line in section(table, "Against base")[2:]]
    # Over the baseline's ANN the deep student costs what it spends, 1.5 times as much (over its own, 0.75).
    assert [row[5] for row in rows] == ["1.50"] * len(rows)
    base_ratio = results["student"]["evaluations"][0]["energy_uj"] / results["same_size_ann"]["energy_uj"]
    assert float(rows[0][4]) == pytest.approx(1.5 * base_ratio, abs=5e-4)
    # Runs of one shape keep each its own same-size ANN.
    result = run_script("benchmarks/frontier.py", f"a={LOGGED_RUN}", f"b={LOGGED_RUN}", "--out_dir", out)
    assert "| energy / same-size ANN | on the front |" in section((out / "frontier.md").read_text(),
                                                                  "Every evaluation")[0]

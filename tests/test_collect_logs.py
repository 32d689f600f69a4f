"""tools/collect_logs.py: what a run folder leaves in logs/."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

from collect_logs import collapse_redraws, collect  # noqa: E402


def test_collapse_redraws_keeps_the_last_state_of_each_line():
    assert collapse_redraws("a\rb 10%\rb 100%\nplain\r\nend") == "b 100%\nplain\nend"
    # A redrawn line that ends in a carriage return keeps its last state, not the empty tail.
    assert collapse_redraws("x 5%\ry 9%\r\n") == "y 9%\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def test_collect_keeps_logs_and_results_and_leaves_weights_and_data(tmp_path):
    run = tmp_path / "run"
    write(str(run / "seed42" / "pred_kd" / "log.txt"), "trained\n")
    write(str(run / "seed42" / "pred_kd" / "model.safetensors"), "weights")
    write(str(run / "seed42" / "pred_kd" / "checkpoint-step5" / "log.txt"), "old")
    write(str(run / "augment" / "train_aug.tsv"), "sentence\t1\n")
    write(str(run / "results.md"), "| table |\n")
    write(str(run / "logs" / "pred_kd.seed42.txt"), "$ python x\nstep 1\rstep 2\n")
    destination = tmp_path / "logs"
    assert collect(str(run), str(destination)) == 3
    files = sorted(os.path.relpath(os.path.join(d, n), destination) for d, _, names in os.walk(destination)
                   for n in names)
    assert files == ["console/pred_kd.seed42.txt", "results.md", "seed42/pred_kd/log.txt"]
    assert (destination / "console" / "pred_kd.seed42.txt").read_text() == "$ python x\nstep 2\n"


def test_an_existing_destination_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "logs").mkdir()
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "collect_logs.py"), str(tmp_path / "run"),
                             str(tmp_path / "logs")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "exists" in result.stderr


@pytest.mark.parametrize("name", ["tradeoff.png", "energy.json", "movie_dev_predictions.tsv"])
def test_results_files_are_kept(tmp_path, name):
    write(str(tmp_path / "run" / "eval_t8.seed7" / name), "x")
    assert collect(str(tmp_path / "run"), str(tmp_path / "logs")) == 1

"""tools/gpu_check.sh on a machine without CUDA (one line, exit 0) and its --device cpu dry run (every step's
plumbing, on the CPU)."""
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = ["cuda_tests", "task_1gpu", "task_pred_bf16", "general_dp", "general_torchrun", "nccl_all_reduce",
         "bench_spiking", "bench_eval_speed"]


def run(command, **env):
    # CUDA_VISIBLE_DEVICES empty: no GPU is visible even on a machine that has one
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "VENV": sys.prefix, **env})


def test_without_cuda_it_prints_one_line_and_exits_0(tmp_path):
    result = run([os.path.join(REPO, "tools", "gpu_check.sh"), "--out_dir", str(tmp_path / "out")])
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"gpu_check: no CUDA device visible \(torch \S+\); nothing checked\n", result.stdout)
    assert result.stderr == ""
    assert not (tmp_path / "out").exists()


def test_cpu_dry_run_passes_every_step_and_writes_the_report(tmp_path):
    out = tmp_path / "out"
    result = run([sys.executable, "tools/gpu_check.py", "--device", "cpu", "--out_dir", str(out)])
    assert result.returncode == 0, result.stdout[-3000:]
    report = (out / "gpu_check_report.md").read_text()
    assert report.startswith("# GPU check (CPU dry run")
    assert f"{len(STEPS)} of {len(STEPS)} steps passed" in report
    rows = re.findall(r"^\| (\w+) \| (\w+) \| [\d.]+ \|", report, re.M)
    assert rows == [(step, "pass") for step in STEPS]
    assert "skipped" in report  # the CUDA tests skip without CUDA
    assert "sst-2.acc = " in report and "all_reduce over gloo" in report
    assert "256/4/1024 | 2 |" in report  # bench_spiking's row
    assert "| length-sorted + adaptive |" in report  # bench_eval_speed's table
    assert sorted(os.listdir(out / "logs")) == sorted(f"{step}.log" for step in STEPS)


def test_a_work_folder_it_did_not_make_is_left_alone(tmp_path):
    (tmp_path / "out" / "work").mkdir(parents=True)
    (tmp_path / "out" / "work" / "mine.txt").write_text("keep")
    result = run([sys.executable, "tools/gpu_check.py", "--device", "cpu", "--out_dir", str(tmp_path / "out")])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'out' / 'work'} exists and was not made by gpu_check; choose another --out_dir")
    assert (tmp_path / "out" / "work" / "mine.txt").read_text() == "keep"

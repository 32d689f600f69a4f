"""Check the GPU paths in one command and write one report (default runs/gpu_check/gpu_check_report.md).

Steps, in order, each with a time limit, all within --time_limit seconds (default 480):

  cuda_tests       pytest tests/test_cuda.py: CUDA against the CPU on small students (spikes, logits,
                   gradients, bf16 autocast, two training steps; DDP over NCCL with two GPUs or more)
  task_1gpu        spiking_bert_task_distill.py (IKD), one training step on the first visible GPU
  task_pred_bf16   the same with --pred_distill --bf16 from that student: one step, then the dev evaluation
  general_dp       spiking_bert_general_distill.py, one step on all visible GPUs (DataParallel with two or more)
  general_torchrun the same under torchrun --nproc_per_node --nproc (default: the visible GPUs; with one
                   process the script runs without a process group, see distill/devices.py)
  nccl_all_reduce  an all_reduce over NCCL in --nproc processes under torchrun, so NCCL is exercised
                   with one GPU too
  bench_spiking    benchmarks/bench_spiking.py on the GPU (hidden 256 and 768, T 25, 3 rounds)
  bench_eval_speed benchmarks/bench_eval_speed.py on the GPU with task_pred_bf16's student

The models and data are the tiny fixtures of tests/distill_fixtures.py (a 2-layer, 128-wide student
at T 25 on GPU), written under OUT_DIR/work; each step's output goes to OUT_DIR/logs/STEP.log.
Without CUDA it prints one line and exits 0. --device cpu runs every step on the CPU instead, with
smaller sizes (CUDA tests skipped, no GPU selection, gloo instead of NCCL): a check of this script's
plumbing, not of a GPU. Exit status: 0 when every step passed, 1 otherwise.

    tools/gpu_check.sh                      # or: python tools/gpu_check.py --out_dir runs/gpu_check
"""
import argparse
import datetime
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT_NAME = "gpu_check_report.md"
WORK_MARKER = ".gpu_check_work"  # only a work folder holding it is emptied on a rerun

# per device: student size, dev sentences, benchmark arguments
SETTINGS = {
    "cuda": dict(hidden=128, layers=2, t_conv=25, dev=512, batch=8,
                 bench_spiking=["--sizes", "256", "768", "--t_conv", "25", "--repeats", "3"],
                 bench_eval=["--rounds", "3", "--eval_batch_size", "32"]),
    "cpu": dict(hidden=16, layers=1, t_conv=4, dev=16, batch=4,
                bench_spiking=["--sizes", "256", "--t_conv", "2", "--layers", "1", "--batch", "1", "--seq_len", "8",
                               "--repeats", "1", "--forwards", "1", "--no_memory", "--threads", "1"],
                bench_eval=["--rounds", "1", "--eval_batch_size", "8", "--limit", "8"]),
}
TIMEOUTS = {"cuda_tests": 240, "task_1gpu": 90, "task_pred_bf16": 90, "general_dp": 90, "general_torchrun": 120,
            "nccl_all_reduce": 90, "bench_spiking": 180, "bench_eval_speed": 120}


def nccl_version():
    version = torch.cuda.nccl.version()  # a tuple in recent torch, an int in old ones
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def nccl_probe():
    """Run under torchrun: all_reduce a tensor of ones over NCCL (gloo on the CPU) and check the sum."""
    import torch.distributed as dist
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    value = torch.ones(4, device="cuda" if use_cuda else "cpu")
    dist.all_reduce(value)
    world = dist.get_world_size()
    ok = bool((value == world).all())
    if dist.get_rank() == 0:
        backend = f"nccl {nccl_version()}" if use_cuda else "gloo"
        print(f"all_reduce over {backend} in {world} processes: "
              f"{'sum correct' if ok else 'WRONG SUM ' + str(value.tolist())}")
    dist.destroy_process_group()
    return 0 if ok else 1


class Step:
    def __init__(self, name, what, command, env=None, check=None, needs=None):
        self.name, self.what, self.command, self.env, self.check, self.needs = name, what, command, env, check, needs
        self.result, self.seconds, self.note, self.output = "not run", 0.0, "", ""


def machine_facts(device):
    facts = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "host": socket.gethostname(),
             "python": platform.python_version(), "torch": torch.__version__}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True)
    facts["commit"] = (commit.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")
                       if commit.returncode == 0 else "unknown")
    if device == "cuda":
        facts["CUDA (torch build)"] = torch.version.cuda
        facts["cuDNN"] = str(torch.backends.cudnn.version())
        try:
            facts["NCCL"] = nccl_version()
        except (RuntimeError, AttributeError):  # a build without NCCL: the nccl_all_reduce step will say so
            facts["NCCL"] = "not in this torch build"
        facts["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            facts[f"GPU {i}"] = f"{props.name}, {props.total_memory / 2 ** 30:.1f} GiB, compute {props.major}.{props.minor}"
    else:
        facts["device"] = f"cpu ({os.cpu_count()} cores): --device cpu checks this script's plumbing, not a GPU"
    return facts


def make_fixtures(work, device):
    """Teachers, a student config, an SST-2 task folder and pregenerated data; returns their paths."""
    sys.path[:0] = [REPO, os.path.join(REPO, "tests")]  # the fixtures import the project's packages
    from distill_fixtures import make_student_config, make_teacher, write_pregenerated, write_task

    s = SETTINGS[device]
    return {
        "task_teacher": make_teacher(os.path.join(work, "models", "task_teacher"), num_labels=2),
        "general_teacher": make_teacher(os.path.join(work, "models", "general_teacher")),
        "student": make_student_config(os.path.join(work, "student"), layers=s["layers"], hidden=s["hidden"],
                                       t_conv=s["t_conv"]),
        # one batch of training rows: one optimisation step per run
        "task": write_task(os.path.join(work, "sst2"), "sst-2", train=s["batch"], dev=s["dev"]),
        "pregenerated": write_pregenerated(os.path.join(work, "pregenerated"), epochs=1, examples=s["batch"]),
    }


def read_text(path):
    return open(path, encoding="utf-8").read() if os.path.isfile(path) else ""


def run_check(output_dir, *expected, results=False):
    """A check of a training run: its log.txt holds every expected text (and, with ``results``, its
    eval_results.txt an accuracy); returns a note with the logged loss and the accuracy."""
    def check(output):
        log = os.path.join(output_dir, "log.txt")
        text = read_text(log)
        missing = [e for e in expected if e not in text]
        if missing:
            raise AssertionError(f"{log} lacks {', '.join(repr(m) for m in missing)}")
        losses = [line.split(" step ", 1)[1] for line in text.splitlines() if " step " in line and "loss=" in line]
        note = f"log: {', '.join(expected)}" + (f"; step {losses[-1]}" if losses else "")
        if results:
            accuracy = re.search(r"^\S*\bacc = .*$", read_text(os.path.join(output_dir, "eval_results.txt")), re.M)
            if not accuracy:
                raise AssertionError(f"{output_dir}/eval_results.txt has no accuracy")
            note += f"; {accuracy.group(0)}"
        return note
    return check


def probe_check(output):
    line = re.search(r"^all_reduce over .*$", output, re.M)
    if not line or "sum correct" not in line.group(0):
        raise AssertionError(line.group(0) if line else "no all_reduce line in the output")
    return line.group(0)


def pytest_check(device):
    def check(output):
        summary = output.strip().splitlines()[-1] if output.strip() else ""
        if device == "cuda":
            if "needs a CUDA device" in output or " passed" not in summary:
                raise AssertionError(f"the CUDA tests did not run on the GPU: {summary}")
        elif " passed" in summary:
            raise AssertionError(f"CUDA tests ran without CUDA: {summary}")
        return summary + ("" if device == "cuda" or not summary else " (expected without CUDA)")
    return check


def plan(args, device, gpus, fixtures, work):
    s = SETTINGS[device]
    python = sys.executable
    one_gpu = {}
    if device == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        one_gpu = {"CUDA_VISIBLE_DEVICES": visible.split(",")[0].strip() if visible else "0"}
    no_cuda = ["--no_cuda"] if device == "cpu" else []
    expected_device = "device cuda" if device == "cuda" else "device cpu"
    common = ["--max_seq_length", "32", "--train_batch_size", str(s["batch"]), "--num_train_epochs", "1",
              "--do_lower_case", "--learning_rate", "1e-3", *no_cuda]
    task = [python, "spiking_bert_task_distill.py", "--teacher_model", fixtures["task_teacher"], "--data_dir",
            fixtures["task"], "--task_name", "sst-2", *common]
    general = ["spiking_bert_general_distill.py", "--teacher_model", fixtures["general_teacher"],
               "--spiking_student_model", fixtures["student"], "--pregenerated_data", fixtures["pregenerated"], *common]
    torchrun = [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc)]
    out = {name: os.path.join(work, "runs", name) for name in ("task_1gpu", "task_pred_bf16", "general_dp",
                                                               "general_torchrun")}
    gpu_word, one = ("1 GPUs", "one GPU") if device == "cuda" else ("0 GPUs", "the CPU")
    return [
        Step("cuda_tests", "pytest tests/test_cuda.py (CUDA against CPU)",
             [python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_cuda.py"],
             check=pytest_check(device)),
        Step("task_1gpu", f"task distillation (IKD), one step on {one}",
             task + ["--spiking_student_model", fixtures["student"], "--output_dir", out["task_1gpu"]], env=one_gpu,
             check=run_check(out["task_1gpu"], f"{expected_device}, {gpu_word}")),
        Step("task_pred_bf16", f"prediction distillation with --bf16, one step on {one}, then dev evaluation",
             task + ["--spiking_student_model", out["task_1gpu"], "--output_dir", out["task_pred_bf16"],
                     "--pred_distill", "--bf16"], env=one_gpu, needs="task_1gpu",
             check=run_check(out["task_pred_bf16"], "bf16 True", results=True)),
        Step("general_dp", "general distillation, one step on "
             + (f"all {gpus} visible GPUs (DataParallel)" if gpus > 1 else "the one visible GPU (no DataParallel)"
                if device == "cuda" else "the CPU"),
             [python] + general + ["--output_dir", out["general_dp"]],
             check=run_check(out["general_dp"], f"{expected_device}, {gpus} GPUs")),
        Step("general_torchrun", f"general distillation under torchrun --nproc_per_node {args.nproc}"
                                 + (" (DDP over NCCL)" if args.nproc > 1 else " (one process: no process group)"),
             torchrun + general + ["--output_dir", out["general_torchrun"]],
             check=run_check(out["general_torchrun"], f"rank 0 of {args.nproc}")),
        Step("nccl_all_reduce", f"all_reduce under torchrun --nproc_per_node {args.nproc}",
             torchrun + ["tools/gpu_check.py", "--nccl_probe"],
             check=probe_check),
        Step("bench_spiking", "benchmarks/bench_spiking.py",
             [python, "benchmarks/bench_spiking.py", "--device", device, *s["bench_spiking"]]),
        Step("bench_eval_speed", "benchmarks/bench_eval_speed.py on task_pred_bf16's student",
             [python, "benchmarks/bench_eval_speed.py", "--spiking_student_model", out["task_pred_bf16"],
              "--data_dir", fixtures["task"], "--task_name", "sst-2", "--device", device, "--t_conv",
              str(s["t_conv"]), "--max_seq_length", "32", "--do_lower_case", *s["bench_eval"]],
             needs="task_pred_bf16"),
    ]


def run_step(step, logs, deadline, done):
    if step.needs and done.get(step.needs) != "pass":
        step.result, step.note = "not run", f"needs {step.needs}"
        return
    limit = min(TIMEOUTS[step.name], deadline - time.monotonic())
    if limit < 10:
        step.result, step.note = "not run", "--time_limit reached"
        return
    env = {**os.environ, "PYTHONPATH": REPO, **(step.env or {})}
    start = time.monotonic()
    # a session of its own, so that a timeout also ends torchrun's workers and the benchmarks' subprocesses
    process = subprocess.Popen(step.command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        step.output, _ = process.communicate(timeout=limit)
        rc = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        step.output, _ = process.communicate()
        rc = None
    step.seconds = time.monotonic() - start
    with open(os.path.join(logs, f"{step.name}.log"), "w", encoding="utf-8") as f:
        f.write(f"$ {shlex.join(step.command)}\n{step.output}")
    if rc is None:
        step.result, step.note = "FAIL", f"timed out after {limit:.0f} s"
    elif rc != 0:
        step.result, step.note = "FAIL", f"exit status {rc}"
    else:
        try:
            step.note = step.check(step.output) if step.check else ""
            step.result = "pass"
        except AssertionError as e:
            step.result, step.note = "FAIL", str(e)
    done[step.name] = step.result


def write_report(path, device, facts, steps, total):
    passed = sum(s.result == "pass" for s in steps)
    lines = [f"# GPU check ({'CUDA' if device == 'cuda' else 'CPU dry run: --device cpu, no GPU checked'})", "",
             f"{passed} of {len(steps)} steps passed in {total:.0f} s.", ""]
    lines += [f"- {key}: {value}" for key, value in facts.items()]
    lines += ["", "| step | result | seconds | what | note |", "|---|---|---|---|---|"]
    for s in steps:
        note = s.note.replace("|", "/").replace("\n", " ")
        lines.append(f"| {s.name} | {s.result} | {s.seconds:.1f} | {s.what} | {note} |")
    lines += ["", "## Benchmarks", ""]
    for s in steps:
        if s.name.startswith("bench_"):
            lines += [f"### {s.name} ({s.result})", "", f"`{shlex.join(s.command[1:])}`", "", "```",
                      *s.output.strip().splitlines(), "```", ""]
    failed = [s for s in steps if s.result == "FAIL"]
    if failed:
        lines += ["## Failures (last 40 lines of output; whole output in logs/)", ""]
        for s in failed:
            lines += [f"### {s.name}", "", f"`{shlex.join(s.command)}`", "", "```",
                      *s.output.strip().splitlines()[-40:], "```", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def prepare_work(work):
    if os.path.exists(work):
        if not os.path.isfile(os.path.join(work, WORK_MARKER)):
            raise SystemExit(f"error: {work} exists and was not made by gpu_check; choose another --out_dir")
        shutil.rmtree(work)
    os.makedirs(work)
    open(os.path.join(work, WORK_MARKER), "w").close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default=os.path.join("runs", "gpu_check"),
                        help=f"where {REPORT_NAME}, logs/ and work/ go")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: run every step on the CPU with small sizes (checks the plumbing only)")
    parser.add_argument("--nproc", type=int, default=None,
                        help="processes under torchrun (default: the visible GPUs; 1 with --device cpu)")
    parser.add_argument("--time_limit", type=float, default=480, help="seconds for all steps together")
    parser.add_argument("--nccl_probe", action="store_true", help=argparse.SUPPRESS)  # torchrun worker
    args = parser.parse_args(argv)
    if args.nccl_probe:
        return nccl_probe()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device visible (torch {torch.__version__}); nothing checked")
        return 0
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    args.nproc = args.nproc or max(gpus, 1)
    if args.nproc < 1 or (args.device == "cuda" and args.nproc > gpus):
        raise SystemExit(f"error: --nproc must be between 1 and the {gpus} visible GPUs")
    start = time.monotonic()
    out_dir = os.path.abspath(args.out_dir)
    work, logs = os.path.join(out_dir, "work"), os.path.join(out_dir, "logs")
    prepare_work(work)
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    facts = machine_facts(args.device)
    steps = plan(args, args.device, gpus, make_fixtures(work, args.device), work)
    done = {}
    for step in steps:
        print(f"gpu_check: {step.name} ...", flush=True)
        run_step(step, logs, start + args.time_limit, done)
        print(f"gpu_check: {step.name} {step.result} ({step.seconds:.1f} s) {step.note}", flush=True)
    report = os.path.join(out_dir, REPORT_NAME)
    write_report(report, args.device, facts, steps, time.monotonic() - start)
    print(f"gpu_check: report in {report}")
    return 0 if all(s.result == "pass" for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())

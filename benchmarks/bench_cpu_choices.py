"""End-to-end cost of the two CPU choices of the training scripts, measured side by side.

- ``--cpu_allocator keep_freed`` (glibc keeps freed memory for reuse, distill/devices.py) against
  glibc's default;
- ``dropout_masks "pcg64_16bit"`` (StepDropout, modules/snn_bert_modules.py) against torch's dropout.

One task-IKD optimisation step as the scripts run it (teacher forward, spiking student
forward with dropout and backward, BertAdam step) at the quick start's sizes: the
packaged MiniLM teacher's shape (6 layers, 384 wide) and its 3-layer spiking student,
batch 16, sentences of --seq_len tokens. The allocator setting is process-wide, so every
variant runs in its own fresh process; rounds visit the variants in turn (A, B, C, D, A,
B, ...) and the figure is the median over rounds of each process's median step time,
printed as a ratio to the variant with both choices off.

    python benchmarks/bench_cpu_choices.py --t_conv 8 32 --rounds 3
"""
import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

VARIANTS = [("glibc", "torch"), ("keep_freed", "torch"), ("glibc", "pcg64_16bit"), ("keep_freed", "pcg64_16bit")]


def one_process(allocator, dropout_masks, t_conv, seq_len, steps, threads):
    """Median seconds of ``steps`` IKD steps after one warm-up step (runs inside a fresh process)."""
    import torch

    from distill.devices import configure_cpu_allocator
    from distill.losses import internal_layer_loss
    from distill.training import build_optimizer
    from models import SpikingBertForSequenceClassification
    from models.pretrained import student_config
    from transformer.modeling import BertConfig, BertForSequenceClassification

    torch.set_num_threads(threads)
    configure_cpu_allocator(allocator)
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                                       intermediate_size=1536), num_labels=2).eval()
    config = student_config(os.path.join(REPO, "spiking_student_model", "minilm"), t_conv=t_conv, num_labels=2)
    config.spiking = dataclasses.replace(config.spiking, dropout_masks=dropout_masks)
    student = SpikingBertForSequenceClassification(config, 2).train()
    optimizer = build_optimizer(student, 1e-4, 0.1, 100, "none")
    ids = torch.randint(1000, 30000, (16, seq_len))
    segments, mask = torch.zeros_like(ids), torch.ones_like(ids)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.no_grad():
            teacher_outputs = teacher(ids, segments, mask)
        internal_layer_loss(student(ids, segments, mask), teacher_outputs)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def check_args(args):
    """One ``error: ...`` line for a bad number (torch is only imported by the worker processes)."""
    for name in ("t_conv", "seq_len", "rounds", "threads"):
        values = getattr(args, name)
        for value in values if isinstance(values, list) else [values]:
            if value < 1:
                sys.exit(f"error: --{name} must be >= 1, got {value}")
    if args.steps < 2:
        sys.exit(f"error: --steps must be >= 2 (the first step is a warm-up), got {args.steps}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t_conv", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seq_len", type=int, default=32, help="tokens per sentence (the quick start's are 20-40)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    check_args(args)
    if args.worker:
        allocator, dropout_masks, t_conv = args.worker
        print(one_process(allocator, dropout_masks, int(t_conv), args.seq_len, args.steps, args.threads))
        return
    print(f"IKD step, MiniLM-sized teacher and 3-layer student, batch 16, length {args.seq_len}, "
          f"{args.threads} torch thread(s); {args.rounds} rounds, median of {args.steps} steps per process")
    for t_conv in args.t_conv:
        seconds = {variant: [] for variant in VARIANTS}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                command = [sys.executable, __file__, "--worker", *variant, str(t_conv), "--seq_len",
                           str(args.seq_len), "--steps", str(args.steps), "--threads", str(args.threads)]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                seconds[variant].append(float(output.split()[-1]))
        base = statistics.median(seconds[VARIANTS[0]])
        for variant in VARIANTS:
            ratios = [s / base for s in seconds[variant]]
            print(f"t_conv {t_conv:3d}  allocator {variant[0]:10s}  dropout {variant[1]:11s}  "
                  f"step {statistics.median(seconds[variant]):.3f} s  = {statistics.median(seconds[variant]) / base:.2f}"
                  f" ({min(ratios):.2f}-{max(ratios):.2f}) of glibc + torch dropout", flush=True)


if __name__ == "__main__":
    main()

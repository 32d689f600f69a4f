"""Spiking student cost against an ordinary BERT of the same size, measured side by side.

Prints, per (hidden/heads/intermediate, T):
- eval: simulated time per step / one BertModel forward (eval mode, no_grad);
- a training step split into simulation, surrogate forward and backward, in units of
  one BERT forward;
- peak memory of a training step / the same-size BERT's training step.

Times are the minimum over --repeats interleaved rounds (the least disturbed by other
processes on a shared machine; BERT forwards are timed just before and after each
spiking run); medians are printed too. Memory on CPU is the rise
of the process's peak resident set (VmHWM, reset just before the step) over its
resident set before one training step, in a fresh subprocess per model; on CUDA it is
torch.cuda.max_memory_allocated over the step. Both include the parameter
gradients allocated by the backward pass.

Example: python benchmarks/bench_spiking.py --quick
         python benchmarks/bench_spiking.py --sizes 256 768 --t_conv 25 125
"""
import argparse
import multiprocessing
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models import SpikingBertForGeneralKD  # noqa: E402
from modules.snn_modules import chunk_steps, step_bytes  # noqa: E402
from transformer.modeling import BertConfig, BertModel, extended_attention_mask  # noqa: E402

SIZES = {256: (256, 4, 1024), 768: (768, 12, 3072)}


def build_config(size, layers, t_conv, args):
    hidden, heads, intermediate = SIZES[size]
    config = BertConfig(hidden_size=hidden, num_attention_heads=heads, intermediate_size=intermediate,
                        num_hidden_layers=layers, t_conv=t_conv, vth=1.0, fit_size=hidden)
    if args.chunk_steps:
        config.sim_chunk_steps = args.chunk_steps
    if args.chunk_budget_mb is not None:
        config.sim_chunk_budget_mb = args.chunk_budget_mb
    return config


def make_batch(config, args, device):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, config.vocab_size, (args.batch, args.seq_len), generator=generator).to(device)
    return ids, torch.zeros_like(ids), torch.ones_like(ids)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bert_loss(bert, batch):
    hidden_states, scores, _ = bert(*batch)
    return sum(h.pow(2).mean() for h in hidden_states) + sum(s.mean() for s in scores)


def spiking_loss(student, batch, device, clock):
    """The general-KD forward in its two parts, appending the time after each to ``clock``."""
    ids, segments, mask = batch
    bert = student.bert
    embedding_current = bert.embeddings(ids, segments)
    additive = extended_attention_mask(mask, embedding_current.dtype)
    rates, _ = bert.simulate(embedding_current.detach(), additive)
    sync(device)
    clock.append(time.perf_counter())
    outputs, scores = bert.straight_through(embedding_current, additive, rates)
    loss = sum(r.pow(2).mean() for r in student.fit_representations(outputs)) + sum(s.mean() for s in scores)
    sync(device)
    clock.append(time.perf_counter())
    return loss


def spiking_training_step(student, batch, device):
    """One training step timed in its three parts: (simulation, surrogate forward, backward) seconds."""
    clock = [time.perf_counter()]
    spiking_loss(student, batch, device, clock).backward()
    sync(device)
    clock.append(time.perf_counter())
    student.zero_grad(set_to_none=True)
    return tuple(b - a for a, b in zip(clock, clock[1:]))


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def bert_training_step(bert, batch):
    bert_loss(bert, batch).backward()
    bert.zero_grad(set_to_none=True)


def warm_up(bert, student, batch, device):
    """First calls allocate and pick kernels; run them with one time step."""
    t_conv, student.config.t_conv = student.config.t_conv, 1
    with torch.no_grad():
        bert.eval()(*batch)
        student.eval()(*batch)
    bert_training_step(bert.train(), batch)
    spiking_training_step(student.train(), batch, device)
    student.config.t_conv = t_conv


def measure_times(size, t_conv, args, device):
    config = build_config(size, args.layers, t_conv, args)
    torch.manual_seed(0)
    bert = BertModel(config).to(device)
    student = SpikingBertForGeneralKD(config).to(device)
    batch = make_batch(config, args, device)
    warm_up(bert, student, batch, device)
    bert_forward, spiking_eval, bert_train, spiking_train = [], [], [], []
    for _ in range(args.repeats):
        bert.eval()
        student.eval()
        with torch.no_grad():
            # BERT forwards around each long spiking run, so both see the same machine load.
            bert_forward += [timed(lambda: bert(*batch), device) for _ in range(2)]
            spiking_eval.append(timed(lambda: student(*batch), device))
            bert_forward += [timed(lambda: bert(*batch), device) for _ in range(2)]
        bert.train()
        student.train()
        bert_train.append(timed(lambda: bert_training_step(bert, batch), device))
        spiking_train.append(spiking_training_step(student, batch, device))
    return dict(bert_forward=bert_forward, spiking_eval=spiking_eval, bert_train=bert_train,
                spiking_train=spiking_train, chunk=chunk_steps(config, args.batch, args.seq_len, 4, device.type),
                chunk_bytes=step_bytes(config, args.batch, args.seq_len, 4))


def resident_bytes(field):
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_resident():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_memory_worker(kind, size, t_conv, args, device_name, queue):
    """Peak memory rise of one training step (run in a fresh process on CPU)."""
    torch.set_num_threads(args.threads or torch.get_num_threads())
    device = torch.device(device_name)
    config = build_config(size, args.layers, t_conv, args)
    torch.manual_seed(0)
    model = (BertModel(config) if kind == "bert" else SpikingBertForGeneralKD(config)).to(device).train()
    batch = make_batch(config, args, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        reset_peak_resident()
        before = resident_bytes("VmRSS")
    if kind == "bert":
        bert_training_step(model, batch)
    else:
        spiking_training_step(model, batch, device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resident_bytes("VmHWM")
    queue.put(peak - before)


def measure_peak(kind, size, t_conv, args, device):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=peak_memory_worker, args=(kind, size, t_conv, args, str(device), queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", choices=sorted(SIZES), default=None,
                        help="hidden sizes to run (default: all)")
    parser.add_argument("--t_conv", type=int, nargs="+", default=None, help="time steps (default: 25 125)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=None,
                        help="measured rounds after a one-step warm-up (default 3)")
    parser.add_argument("--chunk_steps", type=int, default=None, help="fixed simulation chunk (steps)")
    parser.add_argument("--chunk_budget_mb", type=float, default=None, help="simulation chunk budget (MiB)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no_memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--quick", action="store_true",
                        help="defaults become hidden 256, T 25, 1 measured round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    quick = args.quick
    args.sizes = args.sizes or ([256] if quick else sorted(SIZES))
    args.t_conv = args.t_conv or ([25] if quick else [25, 125])
    args.repeats = args.repeats or (1 if quick else 3)
    if args.repeats < 1:
        raise SystemExit("error: --repeats must be >= 1")
    return args


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch}, length {args.seq_len}, "
          f"{args.layers} layers, {args.repeats} measured rounds (min/median)")
    header = ("H/A/I", "T", "chunk", "BERT fwd s", "eval step/fwd", "train step/fwd", "target",
              "sim/fwd", "surr fwd/fwd", "bwd/fwd", "mem ratio", "mem target")
    print(" | ".join(header))
    for size in args.sizes:
        for t_conv in args.t_conv:
            r = measure_times(size, t_conv, args, device)
            fwd_min, fwd_med = min(r["bert_forward"]), statistics.median(r["bert_forward"])
            eval_min, eval_med = min(r["spiking_eval"]) / t_conv, statistics.median(r["spiking_eval"]) / t_conv
            parts = list(zip(*r["spiking_train"]))
            train = [sum(p) for p in r["spiking_train"]]
            row = [
                "/".join(map(str, SIZES[size])), str(t_conv), str(r["chunk"]),
                f"{fwd_min:.3f}/{fwd_med:.3f}",
                f"{eval_min / fwd_min:.2f}/{eval_med / fwd_med:.2f}",
                f"{min(train) / fwd_min:.1f}/{statistics.median(train) / fwd_med:.1f}",
                f"<= {1.25 * t_conv + 3:.1f}",
                f"{min(parts[0]) / fwd_min:.1f}",
                f"{min(parts[1]) / fwd_min:.2f}",
                f"{min(parts[2]) / fwd_min:.2f}",
            ]
            if args.no_memory:
                row += ["-", "-"]
            else:
                bert_peak = measure_peak("bert", size, t_conv, args, device)
                spiking_peak = measure_peak("spiking", size, t_conv, args, device)
                chunk_buffers = r["chunk"] * r["chunk_bytes"]
                row += [f"{spiking_peak / 2 ** 20:.0f}/{bert_peak / 2 ** 20:.0f} MiB = {spiking_peak / bert_peak:.2f}",
                        f"<= {(2 * bert_peak + chunk_buffers) / 2 ** 20:.0f} MiB"]
            print(" | ".join(row), flush=True)
            print(f"  BERT training step {min(r['bert_train']) / fwd_min:.2f} forwards", flush=True)


if __name__ == "__main__":
    main()

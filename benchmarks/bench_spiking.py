"""Spiking student cost against an ordinary BERT of the same size, measured side by side.

Prints, per (hidden/heads/intermediate, T):
- eval: simulated time per step / one BertModel forward (eval mode, no_grad);
- a training step split into simulation, surrogate forward and backward, in units of
  one BERT forward;
- peak memory of a training step / the same-size BERT's training step.

Timing is done in rounds after a one-step warm-up. A round times a block of
--forwards BERT forwards, the spiking eval run, another block, a spiking and a BERT
training step, and a last block; each spiking time is divided by the median forward of
the blocks on either side of it, so a ratio compares two things measured under the same
machine load. Ratios are printed as the median over rounds with their range: on a shared
machine single forwards vary by 20-40%, so one round proves little. Memory on CPU is the rise
of the process's peak resident set (VmHWM, reset just before the step) over its
resident set before one training step, in a fresh subprocess per model; on CUDA it is
torch.cuda.max_memory_allocated over the step. Both include the parameter
gradients allocated by the backward pass.

Example: python benchmarks/bench_spiking.py --quick
         python benchmarks/bench_spiking.py --sizes 256 768 --t_conv 25 125
"""
import argparse
import dataclasses
import multiprocessing
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distill.cli import check_positive_args  # noqa: E402
from distill.devices import keep_freed_cpu_memory  # noqa: E402
from distill.script import run_main  # noqa: E402
from models import SpikingBertConfig, SpikingBertForGeneralKD  # noqa: E402
from modules.snnide_bert_multilayer_modules import chunk_steps, step_bytes  # noqa: E402
from transformer.modeling import BertModel, embed_inputs  # noqa: E402

SIZES = {256: (256, 4, 1024), 768: (768, 12, 3072)}


def build_config(size, layers, t_conv, args):
    hidden, heads, intermediate = SIZES[size]
    return SpikingBertConfig(hidden_size=hidden, num_attention_heads=heads, intermediate_size=intermediate,
                             num_hidden_layers=layers, t_conv=t_conv, vth=1.0, fit_size=hidden,
                             sim_chunk_steps=args.chunk_steps, sim_chunk_budget_mb=args.chunk_budget_mb)


def make_batch(config, args, device):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, config.vocab_size, (args.batch, args.seq_len), generator=generator).to(device)
    return ids, torch.zeros_like(ids), torch.ones_like(ids)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bert_loss(bert, batch):
    outputs = bert(*batch)
    return sum(h.pow(2).mean() for h in outputs.hidden_states) + sum(s.mean() for s in outputs.attention_scores)


def spiking_loss(student, batch, device, clock):
    """The general-KD forward in its two parts, appending the time after each to ``clock``."""
    bert = student.bert
    embedding_current, additive = embed_inputs(bert.embeddings, *batch)
    rates, _ = bert.simulate(embedding_current.detach(), additive)
    sync(device)
    clock.append(time.perf_counter())
    outputs, scores = bert.straight_through(embedding_current, additive, rates)
    representations = [student.fit_dense(r) for r in [outputs.embedding] + outputs.layer_outputs()]
    loss = sum(r.pow(2).mean() for r in representations) + sum(s.mean() for s in scores)
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
    spiking = student.config.spiking
    student.config.spiking = dataclasses.replace(spiking, t_conv=1)
    with torch.no_grad():
        bert.eval()(*batch)
        student.eval()(*batch)
    bert_training_step(bert.train(), batch)
    spiking_training_step(student.train(), batch, device)
    student.config.spiking = spiking


def measure_times(size, t_conv, args, device):
    """Per round: BERT forwards, spiking eval, BERT forwards, spiking and BERT training steps, BERT
    forwards. Each spiking time is divided by the median of the BERT forwards timed next to it,
    so both see the same machine state; the returned ratios are per round."""
    config = build_config(size, args.layers, t_conv, args)
    torch.manual_seed(0)
    bert = BertModel(config).to(device)
    student = SpikingBertForGeneralKD(config).to(device)
    batch = make_batch(config, args, device)
    warm_up(bert, student, batch, device)

    def bert_forwards():
        bert.eval()
        with torch.no_grad():
            return [timed(lambda: bert(*batch), device) for _ in range(args.forwards)]

    rounds = []
    for _ in range(args.repeats):
        before = bert_forwards()
        student.eval()
        with torch.no_grad():
            spiking_eval = timed(lambda: student(*batch), device)
        middle = bert_forwards()
        student.train()
        bert.train()
        spiking_train = spiking_training_step(student, batch, device)
        bert_train = timed(lambda: bert_training_step(bert, batch), device)
        after = bert_forwards()
        eval_forward = statistics.median(before + middle)
        train_forward = statistics.median(middle + after)
        rounds.append(dict(forward=eval_forward, eval=spiking_eval / t_conv / eval_forward,
                           train=sum(spiking_train) / train_forward,
                           parts=[part / train_forward for part in spiking_train],
                           bert_train=bert_train / train_forward))
    return dict(rounds=rounds, chunk=chunk_steps(config, args.batch, args.seq_len, 4, device.type),
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
    if device.type == "cpu" and not args.glibc_malloc:
        keep_freed_cpu_memory()
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
                        help="measured rounds after a one-step warm-up (default 5)")
    parser.add_argument("--forwards", type=int, default=5,
                        help="BERT forwards per timing block around the spiking runs")
    parser.add_argument("--chunk_steps", type=int, default=None, help="fixed simulation chunk (steps)")
    parser.add_argument("--chunk_budget_mb", type=float, default=None, help="simulation chunk budget (MiB)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--glibc_malloc", action="store_true",
                        help="keep glibc's default of returning freed memory to the system (the scripts "
                             "turn it off on CPU, see distill/devices.py keep_freed_cpu_memory)")
    parser.add_argument("--no_memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--quick", action="store_true",
                        help="defaults become hidden 256, T 25, 1 measured round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    quick = args.quick
    args.sizes = args.sizes or ([256] if quick else sorted(SIZES))
    args.t_conv = args.t_conv or ([25] if quick else [25, 125])
    args.repeats = args.repeats or (1 if quick else 5)
    check_positive_args(args, ["t_conv", "layers", "batch", "seq_len", "repeats", "forwards", "chunk_steps",
                               "threads"])
    if args.chunk_budget_mb is not None and not args.chunk_budget_mb > 0:
        raise ValueError(f"--chunk_budget_mb must be > 0, got {args.chunk_budget_mb}")
    try:
        torch.device(args.device)
    except RuntimeError as e:
        raise ValueError(f"--device {args.device}: {e}") from None
    return args


def median_and_range(values, digits):
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu" and not args.glibc_malloc:
        keep_freed_cpu_memory()
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch}, length {args.seq_len}, "
          f"{args.layers} layers, {args.repeats} rounds of {args.forwards} BERT forwards per block; "
          "ratios: median (min-max) over rounds")
    header = ("H/A/I", "T", "chunk", "BERT fwd s", "eval step/fwd", "train step/fwd", "target",
              "sim/fwd", "surr fwd/fwd", "bwd/fwd", "mem ratio", "mem target")
    print(" | ".join(header))
    for size in args.sizes:
        for t_conv in args.t_conv:
            r = measure_times(size, t_conv, args, device)
            rounds = r["rounds"]
            parts = list(zip(*(round_["parts"] for round_ in rounds)))
            row = [
                "/".join(map(str, SIZES[size])), str(t_conv), str(r["chunk"]),
                f"{statistics.median(round_['forward'] for round_ in rounds):.3f}",
                median_and_range([round_["eval"] for round_ in rounds], 2),
                median_and_range([round_["train"] for round_ in rounds], 1),
                f"<= {1.25 * t_conv + 3:.1f}",
                f"{statistics.median(parts[0]):.1f}",
                f"{statistics.median(parts[1]):.2f}",
                f"{statistics.median(parts[2]):.2f}",
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
            bert_train = statistics.median(round_["bert_train"] for round_ in rounds)
            print(f"  BERT training step {bert_train:.2f} forwards", flush=True)


if __name__ == "__main__":
    run_main(main)

"""What the default recipe costs against the binary one, and what the evaluation stage's one simulation saves,
measured side by side in one process on one trained student.

  1. signed against binary spikes, the same weights (--ternary_spikes on / off):
     a  a prediction-KD training step (grid surrogate, no simulation: soft cross-entropy to fixed targets,
        backward, BertAdam) on --train_batch_size sentences;
     b  a --t_conv step evaluation of --eval_batch_size sentences (simulation, spike counts, logits).
  2. the quick start's evaluation of the kept student (the student as saved):
     a  one evaluation per step count: fixed at each of --readout_steps, then adaptive at --t_conv (the
        stages before one simulation served them all);
     b  one simulation: adaptive at --t_conv with every --readout_steps count read out of it (stage ``eval``);
     and whether b's predictions equal a's.

Rounds visit the variants in turn (A, B, A, B, ...); each time is the median over rounds (range in brackets),
and the ratio is B's median over A's. One torch thread by default: steadier figures on a shared CPU.

    python benchmarks/bench_recipes.py --spiking_student_model runs/quickstart-default/seed42/pred_kd \
        --data_dir runs/quickstart-default/data/movie --limit 256
"""
import argparse
import dataclasses
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from distill.adaptive import StoppingRule  # noqa: E402
from distill.cli import check_positive_args  # noqa: E402
from distill.devices import Devices  # noqa: E402
from distill.evaluation import evaluate  # noqa: E402
from distill.preflight import require_weights, vocab_path  # noqa: E402
from distill.script import run_main  # noqa: E402
from distill.training import build_optimizer  # noqa: E402
from glue import convert_examples_to_features, get_processor, pad_batch  # noqa: E402
from models.snn_ide_bert_classi import SpikingBertForSequenceClassification  # noqa: E402
from transformer.tokenization import BertTokenizer  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--spiking_student_model", required=True, help="a trained classification student folder")
    parser.add_argument("--data_dir", required=True, help="the task folder (train.tsv, dev.tsv)")
    parser.add_argument("--task_name", default="movie")
    parser.add_argument("--t_conv", type=int, default=32)
    parser.add_argument("--readout_steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--train_batch_size", type=int, default=16)
    parser.add_argument("--eval_batch_size", type=int, default=64)
    parser.add_argument("--train_steps", type=int, default=5, help="training steps timed per round")
    parser.add_argument("--limit", type=int, default=256, help="dev sentences of part 2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    check_positive_args(args, ["t_conv", "readout_steps", "max_seq_length", "train_batch_size", "eval_batch_size",
                               "train_steps", "limit", "rounds", "threads"])
    require_weights(args.spiking_student_model, "--spiking_student_model")
    return args


def load(args, ternary=None):
    flags = {"t_conv": args.t_conv, **({} if ternary is None else {"ternary_spikes": ternary})}
    return SpikingBertForSequenceClassification.from_pretrained(args.spiking_student_model, flags=flags)


def median_and_range(times):
    return f"{statistics.median(times):.3g} [{min(times):.3g}-{max(times):.3g}]"


def compare(name_a, run_a, name_b, run_b, rounds):
    """Time run_a and run_b in alternating rounds; print both and the ratio of B's median to A's."""
    times = {name_a: [], name_b: []}
    for _ in range(rounds):
        for name, run in ((name_a, run_a), (name_b, run_b)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"  {name}: {median_and_range(values)} s")
    ratio = statistics.median(times[name_b]) / statistics.median(times[name_a])
    print(f"  {name_b} / {name_a}: {ratio:.3f}")
    return ratio


def spike_kinds(args, train_batch, eval_batch):
    """Part 1: a training step and an evaluation batch, signed against binary spikes."""
    students = {kind: load(args, ternary=kind == "signed") for kind in ("binary", "signed")}
    torch.manual_seed(args.seed)
    targets = torch.softmax(torch.randn(len(train_batch.labels), 2), -1)

    def training(student):
        optimizer = build_optimizer(student, 1e-4, 0.1, 1000, "warmup_linear")

        def run():
            student.train()
            for _ in range(args.train_steps):
                logits = student(**train_batch.inputs()).logits
                loss = -(targets * F.log_softmax(logits, -1)).sum(-1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return run

    def evaluation(student):
        def run():
            student.eval()
            with torch.no_grad():
                student(**eval_batch.inputs(), output_rates=True)
        return run

    print(f"1a. {args.train_steps} prediction-KD training steps of {len(train_batch.labels)} sentences "
          f"({train_batch.input_ids.shape[1]} tokens), grid surrogate at t_conv {args.t_conv}")
    compare("binary", training(students["binary"]), "signed", training(students["signed"]), args.rounds)
    print(f"1b. a {args.t_conv}-step evaluation of {len(eval_batch.labels)} sentences "
          f"({eval_batch.input_ids.shape[1]} tokens)")
    compare("binary", evaluation(students["binary"]), "signed", evaluation(students["signed"]), args.rounds)


def evaluation_stage(args, features):
    """Part 2: one evaluation per step count against one simulation with readouts."""
    student, devices, rule = load(args).eval(), Devices(torch.device("cpu")), StoppingRule()
    readout_steps = sorted(set(args.readout_steps))
    outcome = {}

    def run_at(steps, stopping_rule=None, readouts=()):
        student.config.spiking = dataclasses.replace(student.config.spiking, t_conv=steps)
        return evaluate(student, features, args.task_name, "classification", args.eval_batch_size, devices,
                        stopping_rule=stopping_rule, readout_steps=readouts)

    def separately():
        outcome["separate"] = {steps: run_at(steps).predictions for steps in readout_steps}
        outcome["separate"]["adaptive"] = run_at(args.t_conv, rule).predictions

    def together():
        result = run_at(args.t_conv, rule, readout_steps)
        outcome["together"] = {steps: result.readouts[steps].predictions for steps in readout_steps}
        outcome["together"]["adaptive"] = result.predictions

    print(f"2. the kept student on {len(features)} dev sentences: fixed at {readout_steps} and adaptive at "
          f"t_conv {args.t_conv} (the default rule)")
    compare("one evaluation per step count", separately, "one simulation", together, args.rounds)
    same = [key for key in outcome["separate"] if (outcome["separate"][key] == outcome["together"][key]).all()]
    print(f"  predictions equal: {len(same)} of {len(outcome['separate'])} evaluations")


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    vocab = vocab_path(args.spiking_student_model)
    if vocab is None:
        raise FileNotFoundError(f"--spiking_student_model {args.spiking_student_model}: no vocab.txt")
    processor, tokenizer = get_processor(args.task_name), BertTokenizer(vocab, do_lower_case=True)

    def features_of(examples):
        return convert_examples_to_features(examples, processor.get_labels(), args.max_seq_length, tokenizer,
                                            processor.output_mode, pad_to_max=False)

    train = sorted(features_of(processor.get_train_examples(args.data_dir)), key=lambda f: f.seq_length)
    dev = features_of(processor.get_dev_examples(args.data_dir))
    # Batches of median-length sentences, as length bucketing and length-sorted evaluation make them.
    middle = len(train) // 2
    train_batch = pad_batch(train[middle:middle + args.train_batch_size])
    eval_batch = pad_batch(train[middle:middle + args.eval_batch_size])
    print(f"torch {torch.__version__}, {args.threads} thread(s), student {args.spiking_student_model}")
    spike_kinds(args, train_batch, eval_batch)
    evaluation_stage(args, dev[:args.limit])


if __name__ == "__main__":
    run_main(main)

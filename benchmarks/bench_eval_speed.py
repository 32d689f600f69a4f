"""Evaluation speed of a spiking student on a task's dev set, three ways side by side in one process:

  A  file order: batches of consecutive dev sentences, each padded to its longest member (before issue 14);
  B  length-sorted: batches of sentences of nearly one length (what evaluation does now);
  C  length-sorted, with adaptive time steps (--adaptive_t_conv and the --adaptive_* rule flags).

Rounds visit the variants in turn (A, B, C, A, B, C, ...); a variant's wall time is the median over
rounds of one whole evaluation of the dev set (range in brackets). Printed per variant: accuracy,
mean steps simulated per sentence, padded tokens (batch size x width minus real tokens, summed over
batches), wall time and its ratio to file order, and whether the predictions equal file order's.

    python benchmarks/bench_eval_speed.py --spiking_student_model runs/quickstart-default/seed42/pred_kd \
        --data_dir runs/quickstart-default/data/movie --task_name movie --t_conv 125 --do_lower_case
"""
import argparse
import os
import statistics
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from distill.adaptive import StoppingRule  # noqa: E402
from distill.cli import add_stopping_rule_args, check_positive_args  # noqa: E402
from distill.devices import Devices  # noqa: E402
from distill.evaluation import eval_batches, evaluate  # noqa: E402
from distill.preflight import check_vocab_size, read_student_config, require_weights, vocab_path  # noqa: E402
from distill.script import run_main  # noqa: E402
from glue import convert_examples_to_features, get_processor  # noqa: E402
from models.snn_ide_bert_classi import SpikingBertForSequenceClassification  # noqa: E402
from transformer.tokenization import BertTokenizer  # noqa: E402


def padded_tokens(features, batches):
    return int(sum(len(rows) * max(features[i].seq_length for i in rows) - sum(features[i].seq_length for i in rows)
                   for rows in batches))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--spiking_student_model", required=True, help="a trained classification student folder")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--task_name", required=True)
    parser.add_argument("--t_conv", type=int, default=None, help="time steps (default: the student config's)")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument("--do_lower_case", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="only the first N dev sentences")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    add_stopping_rule_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    check_positive_args(args, ["max_seq_length", "eval_batch_size", "limit", "rounds", "threads"])
    rule = StoppingRule.from_args(args)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise ValueError(f"--device {args.device}: {e}") from None
    processor = get_processor(args.task_name)
    if processor.output_mode != "classification":
        raise ValueError(f"adaptive time steps need a classification task; {args.task_name} is regression")
    # The student is checked (config, flags, weights, vocab) before the dev set is read.
    flags = {"t_conv": args.t_conv} if args.t_conv is not None else {}
    config = read_student_config(args.spiking_student_model, flags)
    require_weights(args.spiking_student_model, "--spiking_student_model")
    vocab_file = vocab_path(args.spiking_student_model)
    if vocab_file is None:
        raise FileNotFoundError(f"--spiking_student_model {args.spiking_student_model}: no vocab.txt")
    check_vocab_size(vocab_file, {"--spiking_student_model": config})
    torch.set_num_threads(args.threads)
    set_name, examples = next(iter(processor.dev_sets(args.data_dir).items()))
    tokenizer = BertTokenizer(vocab_file, do_lower_case=args.do_lower_case)
    features = convert_examples_to_features(examples[:args.limit], processor.get_labels(), args.max_seq_length,
                                            tokenizer, processor.output_mode, pad_to_max=False)
    model = SpikingBertForSequenceClassification.from_pretrained(args.spiking_student_model, flags=flags)
    devices = Devices(device)
    model.to(devices.device).eval()
    variants = {"file order": dict(sort_by_length=False), "length-sorted": dict(sort_by_length=True),
                "length-sorted + adaptive": dict(sort_by_length=True, stopping_rule=rule)}

    real_tokens = sum(f.seq_length for f in features)
    print(f"{set_name}: {len(features)} dev sentences, {real_tokens} real tokens (mean "
          f"{real_tokens / len(features):.1f}), batch {args.eval_batch_size}, t_conv {model.config.spiking.t_conv}, "
          f"{args.threads} torch thread(s), device {args.device}, {args.rounds} rounds")
    print(f"adaptive rule: {rule.describe()}")
    times = {name: [] for name in variants}
    results = {}
    for _ in range(args.rounds):
        for name, options in variants.items():
            start = time.perf_counter()
            results[name] = evaluate(model, features, set_name, processor.output_mode, args.eval_batch_size,
                                     devices, **options)
            times[name].append(time.perf_counter() - start)

    baseline = statistics.median(times["file order"])
    print("| batching | accuracy | mean steps | padded tokens | wall time (s) | time / file order | "
          "predictions = file order's |")
    print("|---|---|---|---|---|---|---|")
    for name, options in variants.items():
        result, median = results[name], statistics.median(times[name])
        padding = padded_tokens(features, eval_batches(features, args.eval_batch_size, options["sort_by_length"]))
        differing = int((result.predictions != results["file order"].predictions).sum())
        print(f"| {name} | {result.metrics['acc']:.4f} | {result.steps.mean():.2f} | {padding} | {median:.2f} "
              f"[{min(times[name]):.2f}-{max(times[name]):.2f}] | {median / baseline:.3f} | "
              f"{'yes' if not differing else f'no, {differing} differ'} |")


if __name__ == "__main__":
    run_main(main)

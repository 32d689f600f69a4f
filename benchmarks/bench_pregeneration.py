"""Pregeneration speed on the packaged Wikipedia sample: corpus words per second of the whole run
(reading, tokenizing, making and writing the instances of every epoch).

    python benchmarks/bench_pregeneration.py [--workers 1 2] [--epochs 1] [--cache_dir DIR]
"""
import argparse
import filecmp
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from corpus.assets import prepare_assets  # noqa: E402
from corpus.pregeneration import PregenerationConfig, pregenerate  # noqa: E402
from distill.cli import check_positive_args  # noqa: E402
from distill.script import run_main  # noqa: E402
from transformer.tokenization import BertTokenizer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cache_dir", default=None, help="asset cache (see prepare_assets.py)")
    args = parser.parse_args()
    check_positive_args(args, ["workers", "epochs"])
    logging.basicConfig(level=logging.WARNING)
    paths = prepare_assets(args.cache_dir)
    tokenizer = BertTokenizer.from_pretrained(paths["teacher"], do_lower_case=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"corpus {paths['wiki_corpus']}, {args.epochs} epoch(s), max_seq_len 128, cpu cores {os.cpu_count()}")
        print("workers\twords\tseconds\twords/s\tinstances/epoch")
        for workers in args.workers:
            start = time.perf_counter()
            stats = pregenerate(paths["wiki_corpus"], tokenizer, os.path.join(tmp, str(workers)), args.epochs,
                                PregenerationConfig(), num_workers=workers)
            seconds = time.perf_counter() - start
            print(f"{workers}\t{stats['words']}\t{seconds:.1f}\t{stats['words'] / seconds:.0f}\t"
                  f"{stats['instances'][0]}")
        outputs = [os.path.join(tmp, str(w), "epoch_0.json") for w in args.workers]
        print("identical output for every worker count:",
              all(filecmp.cmp(outputs[0], other, shallow=False) for other in outputs[1:]))


if __name__ == "__main__":
    run_main(main)

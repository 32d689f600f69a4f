"""CPU cost of the simulation's dropout (StepDropout) against the alternatives, side by side.

Prints milliseconds per call on a [16, 4, 128, 128] tensor (about one million elements,
the attention probabilities of two folded steps at batch 8, 4 heads, length 128), median
of 7 timed groups, for StepDropout, thresholding torch.rand, and torch's own dropout.

Example: python benchmarks/bench_dropout.py
"""
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modules.snn_bert_modules import StepDropout  # noqa: E402

P = 0.1


def milliseconds(fn, calls=40, groups=7):
    for _ in range(3):
        fn()
    times = []
    for _ in range(groups):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(times)


def main():
    x = torch.randn(16, 4, 128, 128)
    step_dropout = StepDropout(P).train()
    candidates = {
        "StepDropout": lambda: step_dropout(x),
        "torch.rand threshold": lambda: x * torch.rand_like(x).ge_(P).mul_(1 / (1 - P)),
        "F.dropout": lambda: F.dropout(x, P),
    }
    print(f"torch threads {torch.get_num_threads()}, {x.numel():,} elements, p {P}")
    for round_ in range(2):
        print(f"round {round_ + 1}: " + ", ".join(f"{name} {milliseconds(fn):.2f} ms"
                                               for name, fn in candidates.items()))


if __name__ == "__main__":
    main()

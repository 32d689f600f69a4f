"""The accuracy/energy frontier of quick-start runs: every evaluation of every run (test accuracy against energy
per test sentence as a fraction of an ordinary BERT of the student's shape), the Pareto front among them and
each run's teacher, as frontier.md and frontier.png (pipeline/frontier.py).

    python benchmarks/frontier.py default=logs/quickstart-default/four_seeds reference=logs/reference \\
        --out_dir runs/frontier

Each run is NAME=PATH, PATH a results.json written by quickstart.py or a folder holding one. With
--baseline NAME, frontier.md also compares every other run's evaluations with that run's at the same steps
(test accuracy in points, energy as a factor, and each point's distance to its run's teacher): what each
lever gave, when the runs differ by one lever. When the runs' students differ in shape (a 6-layer student beside
3-layer ones), every energy is over one ANN, the baseline's student shape (else the first run's), so that
energies compare. The ablation (benchmarks/ablate_low_latency.py) writes the same
two files for its variants.
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distill.script import run_main  # noqa: E402
from pipeline.frontier import (SAME_SIZE_ANN, against_baseline_markdown, frontier_markdown,  # noqa: E402
                               points_of_results, write_frontier_plot)
from transformer.file_utils import check_output_folder, write_atomically  # noqa: E402

logger = logging.getLogger("frontier")
RESULTS_NAME = "results.json"


def read_run(argument):
    """NAME=PATH -> (name, path, results.json as read by json); a one-line ValueError for anything else."""
    name, separator, path = argument.partition("=")
    if not separator or not name or not path:
        raise ValueError(f"run {argument!r}: expected NAME=PATH (a results.json or a folder holding one)")
    if os.path.isdir(path):
        path = os.path.join(path, RESULTS_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            return name, path, json.load(f)
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a quick start's results.json ({e})") from None


def ann_energy(path, results):
    try:
        return float(results["same_size_ann"]["energy_uj"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a quick start's results.json (no {e})") from None


def energy_scale(runs, baseline):
    """(the ANN energy every run's energies are divided by, or None for each run's own; the name of that ANN):
    students of different shapes (say 3 and 6 layers) are compared over one ANN, the baseline's or else the
    first run's, so that a ratio stays proportional to the energy itself."""
    energies = {name: ann_energy(path, results) for name, path, results in runs}
    if max(energies.values()) - min(energies.values()) <= 1e-9 * max(energies.values()):
        return None, SAME_SIZE_ANN
    reference = baseline if baseline is not None else runs[0][0]
    logger.info("the students differ in shape: every energy is over the ANN of %s's student shape", reference)
    return energies[reference], f"ANN of {reference}'s student shape"


def frontier_document(points, teachers, energy_unit, baseline=None):
    """frontier.md: a title, its contents, the table of every evaluation and (with a baseline) every other run
    against the baseline, each under its own heading."""
    sections = [("Every evaluation", frontier_markdown(points, teachers, energy_unit))]
    if baseline is not None:
        sections.append((f"Against {baseline}", against_baseline_markdown(points, teachers, baseline, energy_unit)))
    contents = "".join(f"- [{title}](#{title.lower().replace(' ', '-')})\n" for title, _ in sections)
    body = "\n".join(f"## {title}\n\n{table}" for title, table in sections)
    return f"# Accuracy against energy\n\n## Contents\n\n{contents}\n{body}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("runs", nargs="+", metavar="NAME=PATH")
    parser.add_argument("--out_dir", required=True, help="where frontier.md and frontier.png are written")
    parser.add_argument("--baseline", default=None, metavar="NAME",
                        help="one of the runs: the others' evaluations are compared with its own at the same steps")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s frontier: %(message)s", datefmt="%H:%M:%S")
    runs = [read_run(argument) for argument in args.runs]
    names = [name for name, _, _ in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"run names must differ, got {' '.join(names)}")
    if args.baseline is not None and args.baseline not in names:
        raise ValueError(f"--baseline {args.baseline} is not one of the runs ({' '.join(names)})")
    ann_energy_uj, energy_unit = energy_scale(runs, args.baseline)
    points, teachers = [], []
    for name, path, results in runs:
        try:
            run_points, teacher = points_of_results(name, results, ann_energy_uj)
        except (KeyError, TypeError, ZeroDivisionError) as e:
            raise ValueError(f"{path}: not a quick start's results.json (no {e})") from None
        points += run_points
        teachers.append(teacher)
    check_output_folder(args.out_dir, "--out_dir")
    os.makedirs(args.out_dir, exist_ok=True)
    table = frontier_document(points, teachers, energy_unit, args.baseline)
    write_atomically(os.path.join(args.out_dir, "frontier.md"), lambda f: f.write(table))
    write_frontier_plot(points, teachers, os.path.join(args.out_dir, "frontier.png"), energy_unit)
    print(table)
    logger.info("frontier.md and frontier.png in %s", args.out_dir)


if __name__ == "__main__":
    run_main(main)

"""Ablation of the few-step options: the paper's method, the best combination, and the combination with
each option taken out, 2 seeds each.

    python benchmarks/ablate_low_latency.py [--run_dir runs/ablation] [--variants paper best ...] [--jobs 2]

Every variant is a preset of the quick start (pipeline/presets.py: ``ablation_<variant>``, which
``quickstart.py --preset ablation_<variant>`` also runs alone) under one budget, smaller than the
default preset's (on a 2-core CPU shared with other work, a variant took about 10 minutes, 20 with
simulated training or augmentation): 2,000 movie training sentences, 500 dev sentences, 3,000 corpus
sentences, training at t_conv 8 (the target), task IKD 1 epoch and prediction KD 1 epoch, batch 16,
task batches of similar lengths. The data slices, the task
teacher and the corpus are shared by all variants, and the paper's general-KD student by the variants
that start from it (one per seed).

At this budget the paper's method stays at the majority class (its prediction KD at 8 steps does not
leave ln 2), and so would most single options added to it, so each option is measured by taking it
out of the best combination instead:

  paper             general KD, IKD and prediction KD at t_conv 8 (clamp surrogate, membranes from 0,
                    one vth, training through the simulation)
  best              all the options: the default preset's recipe at this budget
                    m05         membrane_init 0.5
                    grid        surrogate grid
                    thresholds  per-population thresholds, calibrated (99th percentile) and learned
                    teacher     init_from_teacher (the task teacher's layers 2, 4, 6; no general KD)
                    nosim       train_simulation off (training through the surrogate alone)
                    t32         training at t_conv 32 (through the surrogate it costs what 8 steps cost)
                    aug         task IKD on TinyBERT-augmented sentences
  no_aug            best without augmentation
  no_<option>       no_aug without that option as well (augmentation triples the training time, so the
                    other options are taken out of no_aug); no_nosim also trains at t_conv 8 (simulating
                    32 steps costs four times as much)
  minilm            no_aug with MiniLM's attention and value-relation KD in place of attention MSE
                    (--kd_losses hidden_mse minilm)

Each student is evaluated at t_conv 4, 8, 16 and 32. The table (dev accuracy per t_conv, mean spike
rate at 8 and 16, training wall time; mean over seeds with the range) is printed and written to
<run_dir>/ablation.md and ablation.json; the accuracy/energy frontier of every variant and t_conv (test
accuracy against energy per test sentence as a fraction of the same-size ANN's, the Pareto front marked,
pipeline/frontier.py) to <run_dir>/frontier.md and frontier.png. With --jobs 2, two stages run at once, each with one torch thread.
"""
import argparse
import logging
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from corpus.assets import asset_paths  # noqa: E402
from distill.cli import check_positive_args  # noqa: E402
from distill.script import run_main  # noqa: E402
from glue import TEST_SET  # noqa: E402
from pipeline.frontier import frontier_markdown, points_of_ablation, write_frontier_plot  # noqa: E402
from pipeline.presets import ABLATION_BUDGET, ABLATION_VARIANTS, PRESETS  # noqa: E402
from pipeline.report import read_results  # noqa: E402
from pipeline.stages import (REPO, build_stages, execute_seeds_side_by_side, fixed_evaluation_folder,  # noqa: E402
                             plan, prepare_assets, seeded, shared_folders, show_path, stage_settings,
                             write_json_atomic)
from transformer.file_utils import check_output_folder, write_atomically  # noqa: E402

logger = logging.getLogger("quickstart")

EVAL_T_CONV = ABLATION_BUDGET["eval_t_conv"]

def shared_stage_folders(run_dir, preset):
    """Stages every variant shares: data, teacher, corpus, and the paper's general-KD students."""
    folders = shared_folders(os.path.join(run_dir, "shared"))
    for seed in preset["seeds"]:
        folders[seeded("general_kd", seed, preset)] = os.path.join(run_dir, "shared", f"seed{seed}", "general_kd")
    return folders


def summarise(name, preset, stages, timings):
    """Accuracy per t_conv and spike rates of one variant, per seed and as mean and range."""
    folders = {stage.name: stage.folder for stage in stages}
    row = {"variant": name, "options": list(ABLATION_VARIANTS[name]), "per_seed": {}}
    for seed in preset["seeds"]:
        figures = {}
        for t_conv in EVAL_T_CONV:
            results = read_results(fixed_evaluation_folder(folders, preset, seed, t_conv))
            figures[f"acc_t{t_conv}"] = results["movie.acc"]
            figures[f"rate_t{t_conv}"] = results["movie.rate.mean_over_populations"]
            figures[f"test_acc_t{t_conv}"] = results[f"{TEST_SET}.acc"]
            figures[f"energy_ratio_t{t_conv}"] = (results[f"{TEST_SET}.energy.energy_uj"]
                                                  / results[f"{TEST_SET}.energy.ann_energy_uj"])
        figures["train_seconds"] = sum(timings[seeded(stage, seed, preset)]["seconds"]
                                       for stage, _ in preset["distillation"])
        row["per_seed"][seed] = figures
    for key in next(iter(row["per_seed"].values())):
        values = [figures[key] for figures in row["per_seed"].values()]
        row[key] = {"mean": statistics.mean(values), "min": min(values), "max": max(values)}
    return row


def teacher_reference(stages):
    """The shared teacher as the frontier's reference point: its test accuracy and its energy per test sentence
    as a fraction of the same-size ANN's (from an evaluation's energy report)."""
    folders = {stage.name: stage.folder for stage in stages}
    evaluation = read_results(next(folder for name, folder in folders.items() if name.startswith("eval")))
    return {"run": "teacher", "label": "teacher", "test_acc": read_results(folders["teacher"])[f"{TEST_SET}.acc"],
            "energy_ratio": (evaluation[f"{TEST_SET}.energy.teacher_energy_uj"]
                             / evaluation[f"{TEST_SET}.energy.ann_energy_uj"])}


def write_frontier(run_dir, rows, teacher):
    """frontier.md and frontier.png: test accuracy against energy for every variant and t_conv."""
    points = points_of_ablation(rows, EVAL_T_CONV)
    table = frontier_markdown(points, [teacher])
    write_atomically(os.path.join(run_dir, "frontier.md"), lambda f: f.write(table))
    write_frontier_plot(points, [teacher], os.path.join(run_dir, "frontier.png"))


def markdown(rows):
    def cell(row, key, digits=4):
        figure = row[key]
        return f"{figure['mean']:.{digits}f} ({figure['min']:.{digits}f}-{figure['max']:.{digits}f})"

    lines = ["| variant | options | " + " | ".join(f"acc t_conv {t}" for t in EVAL_T_CONV)
             + " | rate t_conv 8 | rate t_conv 16 | training s |", "|---" * (5 + len(EVAL_T_CONV)) + "|"]
    for row in rows:
        lines.append(f"| {row['variant']} | {' + '.join(row['options']) or '-'} | "
                     + " | ".join(cell(row, f"acc_t{t}") for t in EVAL_T_CONV)
                     + f" | {cell(row, 'rate_t8')} | {cell(row, 'rate_t16')} | {cell(row, 'train_seconds', 0)} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--run_dir", default=os.path.join(REPO, "runs", "ablation"))
    parser.add_argument("--variants", nargs="+", choices=list(ABLATION_VARIANTS), default=list(ABLATION_VARIANTS))
    parser.add_argument("--jobs", type=int, default=2,
                        help="seeds trained side by side, each stage with cpu_count / jobs torch threads")
    args = parser.parse_args()
    check_positive_args(args, ["jobs"])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ablation: %(message)s", datefmt="%H:%M:%S")
    run_dir = os.path.abspath(args.run_dir)
    check_output_folder(run_dir, "--run_dir")
    os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
    assets = asset_paths()
    prepare_assets(assets, run_dir)
    rows = []
    for name in args.variants:
        preset = PRESETS[f"ablation_{name}"]
        stages = build_stages(preset, os.path.join(run_dir, name), assets, shared_stage_folders(run_dir, preset))
        settings = stage_settings(stages)
        timings = execute_seeds_side_by_side(stages, settings, plan(stages, settings, overwrite=False), run_dir,
                                             args.jobs)
        rows.append(summarise(name, preset, stages, timings))
        table = markdown(rows)
        write_atomically(os.path.join(run_dir, "ablation.md"), lambda f: f.write(table))
        write_json_atomic(os.path.join(run_dir, "ablation.json"), rows)
        write_frontier(run_dir, rows, teacher_reference(stages))
        logger.info("%s done:\n%s", name, table)
    print(table)
    logger.info("table in %s", show_path(os.path.join(run_dir, "ablation.md")))


if __name__ == "__main__":
    run_main(main)

"""The quick start's results: collected from the stages' eval_results.txt, as a table and a plot.

Accuracy is reported on dev (where checkpoints and recipes are chosen) and on the held-out test set
(the headline); steps, spike rates and energy are measured on the test sentences. With several seeds
every student row gives the mean over seeds and the range (min-max); results.json keeps each seed's figures.
"""
import math
import os
import shutil
import statistics

from safetensors import safe_open

from distill.curves import CURVES_NAME
from glue import TEST_SET
from pipeline.presets import TASK, final_stage, final_t_conv
from pipeline.stages import EVAL_STAGE, REPO, fixed_evaluation_folder, seeded
from transformer.checkpoint import weights_file
from transformer.file_utils import write_atomically

CURVES_DIR = "curves"
STUDENT_FIGURES = ("dev_acc", "test_acc", "mean_steps", "mean_spike_rate", "energy_uj", "energy_ratio_to_teacher")


def read_results(folder):
    """eval_results.txt of a stage folder as a dict of floats (``key = value`` lines)."""
    results = {}
    with open(os.path.join(REPO, folder, "eval_results.txt"), encoding="utf-8") as f:
        for line in f:
            key, _, value = line.strip().partition(" = ")
            try:
                results[key] = float(value)
            except ValueError:
                results[key] = value
    return results


def count_parameters(model_dir):
    with safe_open(weights_file(os.path.join(REPO, model_dir)), framework="pt") as f:
        return sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())  # noqa: SIM118 (no __iter__)


def read_labels(tsv):
    with open(tsv, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t")[-1] for line in f.readlines()[1:] if line.strip()]


def majority_baseline(movie_dir):
    """The most frequent dev label and its accuracy on dev and test."""
    dev, test = read_labels(os.path.join(movie_dir, "dev.tsv")), read_labels(os.path.join(movie_dir, "test.tsv"))
    majority = max(set(dev), key=dev.count)
    return {"label": majority, "dev_acc": dev.count(majority) / len(dev), "test_acc": test.count(majority) / len(test)}


def evaluation_summary(results, preset):
    """One evaluation's figures (eval_results.txt values): dev and test accuracy; steps, spike rate and energy
    per sentence on the test sentences."""
    t_conv = int(results["t_conv"])
    return {"t_conv": t_conv, "dev_acc": results[f"{TASK}.acc"], "test_acc": results[f"{TEST_SET}.acc"],
            "mean_steps": results[f"{TEST_SET}.distribution.steps.mean"],
            "mean_spike_rate": results[f"{TEST_SET}.rate.mean_over_populations"],
            "energy_uj": results[f"{TEST_SET}.energy.energy_uj"],
            "energy_ratio_to_teacher": results[f"{TEST_SET}.energy.energy_ratio_to_teacher"],
            "trained_at": t_conv == final_t_conv(preset)}


def over_seeds(per_seed):
    """Figures of several seeds' evaluations -> each figure's mean, min and max (and the seeds' values)."""
    summary = {key: per_seed[0][key] for key in ("t_conv", "trained_at")}
    for key in STUDENT_FIGURES:
        values = [evaluation[key] for evaluation in per_seed]
        summary[key] = statistics.mean(values)
        summary[f"{key}_range"] = [min(values), max(values)]
        summary[f"{key}_per_seed"] = values
    return summary


def collect_results(preset_name, preset, stages, timings):
    folders = {stage.name: stage.folder for stage in stages}
    seeds = preset["seeds"]

    evaluations = [over_seeds([evaluation_summary(read_results(fixed_evaluation_folder(folders, preset, seed, t_conv)),
                                                  preset) for seed in seeds]) for t_conv in preset["eval_t_conv"]]
    adaptive = None
    if preset.get("adaptive_eval", True):
        per_seed = [read_results(folders[seeded(EVAL_STAGE, seed, preset)]) for seed in seeds]
        adaptive = {**over_seeds([evaluation_summary(results, preset) for results in per_seed]),
                    "rule": per_seed[0]["adaptive.rule"]}
    any_results = read_results(fixed_evaluation_folder(folders, preset, seeds[0], preset["eval_t_conv"][0]))
    student_folder = folders[seeded(final_stage(preset)[0], seeds[0], preset)]
    teacher_results = read_results(folders["teacher"])
    return {
        "preset": preset_name, "settings": preset, "task": TASK, "seeds": seeds,
        "dev_examples": int(any_results[f"{TASK}.num_examples"]),
        "test_examples": int(any_results[f"{TEST_SET}.num_examples"]),
        "majority_baseline": majority_baseline(os.path.join(REPO, folders["data"], "movie")),
        "teacher": {"dev_acc": teacher_results[f"{TASK}.acc"], "test_acc": teacher_results[f"{TEST_SET}.acc"],
                    "parameters": count_parameters(folders["teacher"]), "folder": folders["teacher"],
                    "energy_uj": any_results[f"{TEST_SET}.energy.teacher_energy_uj"]},
        "same_size_ann": {"energy_uj": any_results[f"{TEST_SET}.energy.ann_energy_uj"]},
        "student": {"parameters": count_parameters(student_folder), "folder": student_folder,
                    "final_t_conv": final_t_conv(preset), "evaluations": evaluations, "adaptive": adaptive},
        "stages": timings,
    }


def figure(evaluation, key, digits):
    """``mean`` or, over several seeds, ``mean (min-max)``."""
    low, high = evaluation[f"{key}_range"]
    if len(evaluation[f"{key}_per_seed"]) == 1:
        return f"{evaluation[key]:.{digits}}"
    return f"{evaluation[key]:.{digits}} ({low:.{digits}}-{high:.{digits}})"


def results_markdown(results):
    student, teacher = results["student"], results["teacher"]
    adaptive = student["adaptive"]
    seeds = results["seeds"]
    over = (f" Student rows: mean over seeds {', '.join(map(str, seeds))} (range in brackets)."
            if len(seeds) > 1 else "")
    majority = results["majority_baseline"]
    lines = [f"# Quick start results ({results['preset']} preset)", "",
             (f"Movie-review sentiment (Rotten Tomatoes sentences, SST-2 layout): {results['dev_examples']} dev "
              f"sentences (checkpoints chosen here), {results['test_examples']} held-out test sentences (steps, "
              "spike rate and energy measured here). Energy per sentence: 0.9 pJ per accumulate, 4.6 pJ per "
              f"multiply-accumulate (45 nm), arithmetic only (README, Energy).{over}"), "",
             "| model | dev accuracy | test accuracy | mean steps | mean spike rate | energy per sentence (uJ) "
             "| energy / teacher's | parameters |", "|---|---|---|---|---|---|---|---|",
             f"| majority class ({majority['label']}) | {majority['dev_acc']:.4f} | {majority['test_acc']:.4f} | | | | | |",
             (f"| teacher: all-MiniLM-L6-v2 fine-tuned | {teacher['dev_acc']:.4f} | {teacher['test_acc']:.4f} | | | "
              f"{teacher['energy_uj']:.4g} | 1 | {teacher['parameters']:,} |"),
             f"| same-size ordinary BERT (energy only) | | | | | {results['same_size_ann']['energy_uj']:.4g} | "
             f"{results['same_size_ann']['energy_uj'] / teacher['energy_uj']:.3g} | |"]
    rows = [(f"t_conv {e['t_conv']}{' (training value)' if e['trained_at'] else ''}", e)
            for e in student["evaluations"]]
    if adaptive is not None:
        rows.append((f"adaptive, at most t_conv {adaptive['t_conv']}", adaptive))
    for name, evaluation in rows:
        lines.append(f"| spiking student, {name} | {figure(evaluation, 'dev_acc', '4f')} | "
                     f"{figure(evaluation, 'test_acc', '4f')} | {figure(evaluation, 'mean_steps', '4g')} | {figure(evaluation, 'mean_spike_rate', '4f')} | "
                     f"{figure(evaluation, 'energy_uj', '4g')} | {figure(evaluation, 'energy_ratio_to_teacher', '3g')}"
                     f" | {student['parameters']:,} |")
    lines += ["", f"Adaptive rule: {adaptive['rule']}." if adaptive is not None else "No adaptive evaluation.", "",
              "| stage | wall time (s) | |", "|---|---|---|"]
    for name, timing in results["stages"].items():
        lines.append(f"| {name} | {timing['seconds']:.0f} | {'reused' if timing['reused'] else ''} |")
    total = sum(timing["seconds"] for timing in results["stages"].values())
    lines.append(f"| all stages, summed | {total:.0f} | |")
    if "wall_seconds" in results:  # seeds run side by side, so the run takes less than the sum
        lines.append(f"| the whole run, wall clock | {results['wall_seconds']:.0f} | |")
    lines.append("")
    return "\n".join(lines)


def gather_curves(stages, run_dir):
    """Each training stage's curves.png (distill/curves.py) copied to ``run_dir``/curves/<stage>.png, one folder
    to look at; returns the copies' paths."""
    copies = []
    for stage in stages:
        source = os.path.join(REPO, stage.folder, CURVES_NAME)
        if os.path.isfile(source):
            copies.append(os.path.join(run_dir, CURVES_DIR, f"{stage.name}.png"))
            os.makedirs(os.path.dirname(copies[-1]), exist_ok=True)
            shutil.copyfile(source, copies[-1])
    return copies


def write_tradeoff_plot(results, path):
    """tradeoff.png: test accuracy (dev accuracy fainter, top) and energy per sentence (bottom) against the time
    steps, the teacher as horizontal lines, the adaptive evaluation as one point at its mean steps; with several
    seeds the means with their ranges as error bars."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    student, teacher = results["student"], results["teacher"]
    evaluations, adaptive = student["evaluations"], student["adaptive"]
    steps = [e["t_conv"] for e in evaluations]

    def error_bars(points, key):
        return [[p[key] - p[f"{key}_range"][0] for p in points], [p[f"{key}_range"][1] - p[key] for p in points]]

    def plot_student(axis, key, label, alpha=1.0):
        axis.errorbar(steps, [e[key] for e in evaluations], yerr=error_bars(evaluations, key), fmt="o-",
                      color="tab:blue", capsize=3, alpha=alpha, label=f"spiking student, fixed t_conv{label}")
        if adaptive is not None:
            axis.errorbar([adaptive["mean_steps"]], [adaptive[key]], yerr=error_bars([adaptive], key), fmt="D",
                          color="tab:red", markersize=8, capsize=3, alpha=alpha,
                          label=f"spiking student, adaptive (at most {adaptive['t_conv']}), at its mean steps{label}")

    figure_, (accuracy_axis, energy_axis) = plt.subplots(2, 1, sharex=True, figsize=(6.4, 7.2))
    plot_student(accuracy_axis, "dev_acc", " (dev)", alpha=0.3)
    plot_student(accuracy_axis, "test_acc", " (test)")
    accuracy_axis.axhline(teacher["dev_acc"], color="tab:green", linestyle="--", alpha=0.3, label="teacher (dev)")
    accuracy_axis.axhline(teacher["test_acc"], color="tab:green", linestyle="--", label="teacher (test)")
    accuracy_axis.axhline(results["majority_baseline"]["test_acc"], color="grey", linestyle=":",
                          label="majority class (test)")
    plot_student(energy_axis, "energy_uj", "")
    energy_axis.axhline(teacher["energy_uj"], color="tab:green", linestyle="--", label="teacher")
    energy_axis.axhline(results["same_size_ann"]["energy_uj"], color="tab:orange", linestyle="-.",
                        label="ordinary BERT of the student's size")
    for axis in (accuracy_axis, energy_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6)
    accuracy_axis.set_ylabel("accuracy")
    energy_axis.set_ylabel("energy per test sentence (uJ, arithmetic at 45 nm)")
    energy_axis.set_xscale("log", base=2)
    energy_axis.set_xticks(steps, [str(s) for s in steps])
    accuracy_axis.tick_params(labelbottom=True)
    energy_axis.set_xlabel("time steps (t_conv; adaptive: mean steps used)")
    accuracy_axis.set_title(f"Spiking student on {results['task']} ({results['preset']} preset): "
                            "accuracy and energy against time steps", fontsize=9)
    figure_.tight_layout()
    write_atomically(path, lambda f: figure_.savefig(f, format="png", dpi=120), "wb")
    plt.close(figure_)

"""The accuracy/energy frontier: every student evaluation of one or more runs as a point (test accuracy against
energy per test sentence as a fraction of an ordinary BERT of the student's own shape), the Pareto front among
them, the teachers as reference points; as frontier.md (a table) and frontier.png. Runs whose students differ in
shape are put on one scale: each energy over the same ANN, one run's (the ``energy_unit`` names it).

A point comes from a quick start's results.json (pipeline/report.py: one point per evaluated t_conv and one for
the adaptive evaluation, at its mean steps) or from an ablation row (benchmarks/ablate_low_latency.py). With
several seeds a point is the mean over seeds, with the range.
"""
import statistics

from transformer.file_utils import write_atomically


def point(run, label, steps, test_acc_per_seed, energy_ratio_per_seed):
    """One student evaluation: ``steps`` (t_conv, or the adaptive mean), per-seed test accuracies and energy
    ratios to the same-size ANN."""
    return {"run": run, "label": label, "steps": steps,
            "test_acc": statistics.mean(test_acc_per_seed),
            "test_acc_range": [min(test_acc_per_seed), max(test_acc_per_seed)],
            "energy_ratio": statistics.mean(energy_ratio_per_seed),
            "energy_ratio_range": [min(energy_ratio_per_seed), max(energy_ratio_per_seed)]}


SAME_SIZE_ANN = "same-size ANN"


def points_of_results(run, results, ann_energy_uj=None):
    """The student points and the teacher reference of a quick start's results.json (as read by json): energies
    over ``ann_energy_uj`` (energy per sentence of an ANN), by default the run's own same-size ANN's."""
    ann = results["same_size_ann"]["energy_uj"] if ann_energy_uj is None else ann_energy_uj
    student = results["student"]
    points = []
    for evaluation in student["evaluations"] + ([student["adaptive"]] if student["adaptive"] else []):
        adaptive = evaluation is student["adaptive"]
        label = f"adaptive (at most {evaluation['t_conv']})" if adaptive else f"t_conv {evaluation['t_conv']}"
        points.append(point(run, label, evaluation["mean_steps"], evaluation["test_acc_per_seed"],
                            [energy / ann for energy in evaluation["energy_uj_per_seed"]]))
    teacher = {"run": run, "label": "teacher", "test_acc": results["teacher"]["test_acc"],
               "energy_ratio": results["teacher"]["energy_uj"] / ann}
    return points, teacher


def points_of_ablation(rows, t_convs):
    """The student points of the ablation's rows (benchmarks/ablate_low_latency.py summarise), one per variant
    and t_conv."""
    points = []
    for row in rows:
        seeds = list(row["per_seed"].values())
        for t_conv in t_convs:
            points.append(point(row["variant"], f"t_conv {t_conv}", t_conv,
                                [figures[f"test_acc_t{t_conv}"] for figures in seeds],
                                [figures[f"energy_ratio_t{t_conv}"] for figures in seeds]))
    return points


def dominates(a, b):
    """a is at least as accurate for at most the energy, and strictly better in one of the two."""
    return (a["test_acc"] >= b["test_acc"] and a["energy_ratio"] <= b["energy_ratio"]
            and (a["test_acc"] > b["test_acc"] or a["energy_ratio"] < b["energy_ratio"]))


def pareto_front(points):
    """The points no other point dominates, by increasing energy."""
    front = [p for p in points if not any(dominates(other, p) for other in points)]
    return sorted(front, key=lambda p: (p["energy_ratio"], -p["test_acc"]))


def frontier_markdown(points, teachers, energy_unit=SAME_SIZE_ANN):
    """The table: every point by increasing energy, those on the Pareto front marked, then the teachers."""
    front = {id(p) for p in pareto_front(points)}

    def ranged(p, key, scale, digits):
        low, high = p[f"{key}_range"]
        if low == high:
            return f"{p[key] * scale:.{digits}f}"
        return f"{p[key] * scale:.{digits}f} ({low * scale:.{digits}f}-{high * scale:.{digits}f})"

    lines = [f"| run | evaluation | mean steps | test accuracy (%) | energy / {energy_unit} | on the front |",
             "|---|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: (p["energy_ratio"], -p["test_acc"])):
        lines.append(f"| {p['run']} | {p['label']} | {p['steps']:.1f} | {ranged(p, 'test_acc', 100, 1)} | "
                     f"{ranged(p, 'energy_ratio', 1, 3)} | {'yes' if id(p) in front else ''} |")
    for teacher in teachers:
        lines.append(f"| {teacher['run']} | teacher (ANN) | | {teacher['test_acc'] * 100:.1f} | "
                     f"{teacher['energy_ratio']:.3f} | |")
    return "\n".join(lines) + "\n"


def against_baseline_markdown(points, teachers, baseline, energy_unit=SAME_SIZE_ANN):
    """Each other run's points against the ``baseline`` run's evaluation of the same label: test accuracy and
    its difference in points, energy ratio and its factor, and how far each point is behind its run's teacher
    (what a lever gave, every run under the same budget)."""
    base = {p["label"]: p for p in points if p["run"] == baseline}
    teacher_acc = {teacher["run"]: teacher["test_acc"] for teacher in teachers}
    lines = [f"| run | evaluation | test accuracy (%) | vs {baseline} (points) | energy / {energy_unit} | "
             f"vs {baseline} (x) | behind its teacher (points) |", "|---|---|---|---|---|---|---|"]
    for p in points:
        if p["run"] == baseline:
            continue
        other = base.get(p["label"])
        accuracy_change = f"{(p['test_acc'] - other['test_acc']) * 100:+.1f}" if other else "-"
        energy_factor = f"{p['energy_ratio'] / other['energy_ratio']:.2f}" if other else "-"
        lines.append(f"| {p['run']} | {p['label']} | {p['test_acc'] * 100:.1f} | {accuracy_change} | "
                     f"{p['energy_ratio']:.3f} | {energy_factor} | "
                     f"{(teacher_acc[p['run']] - p['test_acc']) * 100:.1f} |")
    return "\n".join(lines) + "\n"


def write_frontier_plot(points, teachers, path, energy_unit=SAME_SIZE_ANN):
    """frontier.png: test accuracy against energy ratio (log scale), one marker series per run with the seeds'
    ranges as error bars, the Pareto front as a line, the teachers as stars and the ANN of the ratios at 1."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axis = plt.subplots(figsize=(6.4, 4.8))
    runs = list(dict.fromkeys(p["run"] for p in points))
    colours = {run: f"C{index}" for index, run in enumerate(runs)}
    for run in runs:
        own = [p for p in points if p["run"] == run]
        axis.errorbar([p["energy_ratio"] for p in own], [p["test_acc"] * 100 for p in own],
                      xerr=[[p["energy_ratio"] - p["energy_ratio_range"][0] for p in own],
                            [p["energy_ratio_range"][1] - p["energy_ratio"] for p in own]],
                      yerr=[[(p["test_acc"] - p["test_acc_range"][0]) * 100 for p in own],
                            [(p["test_acc_range"][1] - p["test_acc"]) * 100 for p in own]],
                      fmt="o", color=colours[run], capsize=2, label=f"{run}: spiking student")
        for p in own:
            short = p["label"].replace("t_conv ", "T=").replace(" (at most ", " T<=").rstrip(")")
            axis.annotate(short, (p["energy_ratio"], p["test_acc"] * 100), textcoords="offset points",
                          xytext=(4, -9), fontsize=6, color=colours[run])
    front = pareto_front(points)
    axis.plot([p["energy_ratio"] for p in front], [p["test_acc"] * 100 for p in front], "k--", linewidth=1,
              label="Pareto front of the students")
    for teacher in teachers:
        axis.plot([teacher["energy_ratio"]], [teacher["test_acc"] * 100], "*", markersize=12,
                  color=colours.get(teacher["run"], "k"), label=f"{teacher['run']}: teacher (ANN)")
    axis.axvline(1.0, color="grey", linestyle="-.", label=f"the {energy_unit} (an ordinary BERT)")
    axis.set_xscale("log")
    axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "25" else ""))
    axis.set_xlabel(f"energy per test sentence / {energy_unit} (arithmetic at 45 nm)")
    axis.set_ylabel("test accuracy (%)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6, loc="lower right")
    axis.set_title("Accuracy against energy: every evaluation of every run", fontsize=9)
    figure.tight_layout()
    write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=120), "wb")
    plt.close(figure)

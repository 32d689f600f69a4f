"""curves.png beside a training run's log.txt: its losses, spike rate and dev scores against the steps.

The figures come from log.txt itself (the loop's ``step N lr X name=value ...`` lines and the
evaluations' ``step N dev: <set> {metrics} eval_loss X`` lines), so a resumed run, whose log.txt
continues the first one's, is drawn whole; a step logged twice keeps its last value.
matplotlib is imported only in ``plot_curves``.
"""
import ast
import os
import re

from distill.runs import LOG_NAME
from transformer.file_utils import write_atomically

CURVES_NAME = "curves.png"
LOSS_LINE = re.compile(r" step (\d+) lr \S+ (.+)$")
DEV_LINE = re.compile(r" step (\d+) dev: (.+)$")
DEV_SET = re.compile(r"(\S+) (\{[^}]*\}) eval_loss ([^\s;]+)")


def read_curves(log_path):
    """{"losses": name -> {step: value}, "rate": {step: value}, "dev": "<set> <metric>" -> {step: value}}."""
    curves = {"losses": {}, "rate": {}, "dev": {}}
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if match := LOSS_LINE.search(line):
                step = int(match.group(1))
                for name, _, value in (item.partition("=") for item in match.group(2).split()):
                    target = curves["rate"] if name == "rate" else curves["losses"].setdefault(name, {})
                    target[step] = float(value)
            elif match := DEV_LINE.search(line):
                step = int(match.group(1))
                for set_name, metrics, eval_loss in DEV_SET.findall(match.group(2)):
                    for metric, value in {**ast.literal_eval(metrics), "eval_loss": float(eval_loss)}.items():
                        curves["dev"].setdefault(f"{set_name} {metric}", {})[step] = float(value)
    return curves


def plot_curves(curves, path, title):
    """One panel per kind of curve that has points (losses, spike rate, dev scores); PNG at ``path``."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    panels = [(name, series) for name, series in (("loss", curves["losses"]), ("mean spike rate",
                                                                                {"rate": curves["rate"]}),
                                                  ("dev", curves["dev"])) if any(series.values())]
    figure, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(6.4, 2.4 * len(panels)), squeeze=False)
    for axis, (label, series) in zip(axes[:, 0], panels):
        for name, points in series.items():
            steps = sorted(points)
            axis.plot(steps, [points[step] for step in steps], marker="o" if len(steps) < 20 else None,
                      markersize=3, label=name)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[-1, 0].set_xlabel("optimisation step")
    axes[0, 0].set_title(title, fontsize=9)
    figure.tight_layout()
    write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=100), "wb")
    plt.close(figure)


def write_curves(output_dir, title):
    """Draw ``output_dir``/log.txt as ``output_dir``/curves.png; returns its path, or None when the log has no
    training lines yet."""
    log_path = os.path.join(output_dir, LOG_NAME)
    if not os.path.isfile(log_path):
        return None
    curves = read_curves(log_path)
    if not any(curves["losses"].values()):
        return None
    path = os.path.join(output_dir, CURVES_NAME)
    plot_curves(curves, path, title)
    return path

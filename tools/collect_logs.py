"""Copy a quick-start or ablation run folder's logs into logs/ (what the repository keeps of a run).

    python tools/collect_logs.py runs/quickstart-default logs/quickstart-default

Kept: results tables and plots, stage_done.json, log.txt, eval_results.txt, energy.json, prediction
TSVs, config.json and every console log (runs' logs/ folder, renamed console/), with progress-bar
redraws (separated by carriage returns) collapsed to their last state. Left out: weights,
checkpoints, vocabularies and data files. The destination must not exist.
"""
import argparse
import os
import shutil
import sys

KEPT_NAMES = {"stage_done.json", "log.txt", "eval_results.txt", "energy.json", "config.json", "results.md",
              "results.json", "quickstart_run.json", "tradeoff.png", "ablation.md", "ablation.json",
              "preprocess.log"}
KEPT_SUFFIXES = ("_predictions.tsv",)


def collapse_redraws(text):
    """Each line as it last appeared on a terminal: the part after its last carriage return."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def kept(name):
    return name in KEPT_NAMES or name.endswith(KEPT_SUFFIXES)


def collect(run_dir, destination):
    copied = 0
    for folder, subfolders, files in os.walk(run_dir):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("checkpoint-"))
        relative = os.path.relpath(folder, run_dir)
        parts = relative.split(os.sep)
        is_console = parts[0] == "logs"
        target = os.path.join(destination, *(["console"] + parts[1:] if is_console else parts))
        for name in sorted(files):
            source = os.path.join(folder, name)
            if is_console and name.endswith(".txt"):
                os.makedirs(target, exist_ok=True)
                with open(source, encoding="utf-8", errors="replace", newline="") as f:
                    text = collapse_redraws(f.read())
                with open(os.path.join(target, name), "w", encoding="utf-8") as f:
                    f.write(text)
            elif kept(name):
                os.makedirs(target, exist_ok=True)
                shutil.copy2(source, os.path.join(target, name))
            else:
                continue
            copied += 1
    return copied


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("destination")
    args = parser.parse_args()
    if not os.path.isdir(args.run_dir):
        sys.exit(f"{args.run_dir}: no such run folder")
    if os.path.exists(args.destination):
        sys.exit(f"{args.destination} exists: remove it first or choose another destination")
    print(f"{collect(args.run_dir, args.destination)} files copied to {args.destination}")


if __name__ == "__main__":
    main()

"""Copy what the repository keeps of a quick-start or ablation run folder into logs/.

    python tools/collect_logs.py runs/quickstart-default logs/quickstart-default

What is kept, and why (each kept file backs figures of the README or docs/):

- the tables and plots the run wrote, as they are: results.md, results.json, tradeoff.png (ablation.md,
  ablation.json for the ablation), and curves/ (each training stage's loss, rate and dev curves);
- commands.txt: every stage's command line, when it finished and how long it took, in the order the
  stages finished (from each stage's stage_done.json);
- logs.txt: every stage's own log (log.txt, or preprocess.log for the corpus), and the console output of
  each stage that writes no log of its own (the driver's, e.g. quickstart.txt, and the augmentation's);
- eval_results.txt: every eval_results.txt (metrics, spike rates, operation counts, energy, steps);
  an evaluation that is a byte-for-byte copy of one already kept (the quick start's evaluation at the
  prediction-KD t_conv) is named with the file it repeats.

logs.txt and eval_results.txt are bundles in the format of `head` with several files: each file under a
line `==> PATH <==` (PATH relative to the run folder), followed by a blank line; read_bundle() splits one.
Stages come in the order they finished, each seed's together.

Left out: weights, checkpoints, vocabularies and data files; prediction TSVs (one line per dev sentence,
behind no figure); energy.json (the same values as the energy lines of eval_results.txt); config.json (the
student's settings, which the stage's command line and the first line of its log state); stage_done.json
(its command is in commands.txt); the console output of a stage that writes a log (that log, with the
command line and progress bars). A run folder that was collected in the older layout (console/ instead of
logs/, one file per stage) is read the same way. The destination must not exist.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import sys

CURVES_DIR = "curves"  # the quick start's copies of each training stage's curves.png
TABLES = ("results.md", "results.json", "tradeoff.png", "ablation.md", "ablation.json")
STAGE_LOGS = ("log.txt", "preprocess.log")
EVAL_RESULTS = "eval_results.txt"
MARKER = "stage_done.json"
CONSOLE_FOLDERS = ("logs", "console")
HEADER = re.compile(r"^==> (.+) <==$")


def collapse_redraws(text):
    """Each line as it last appeared on a terminal: the part after its last carriage return."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def read_text(path):
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        return collapse_redraws(f.read())


def scan(run_dir):
    """Stage folders (relative path -> {file name: absolute path}), console files (relative path) and the
    tables, found under ``run_dir`` (checkpoint folders skipped)."""
    stages, consoles, tables = {}, [], []
    for folder, subfolders, files in os.walk(run_dir):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("checkpoint-"))
        relative = os.path.relpath(folder, run_dir)
        relative = "" if relative == "." else relative.replace(os.sep, "/")
        if os.path.basename(folder) in CONSOLE_FOLDERS and relative:
            consoles += [f"{relative}/{name}" for name in sorted(files) if name.endswith(".txt")]
            subfolders[:] = []
            continue
        for name in sorted(files):
            if name in TABLES and not relative:
                tables.append(name)
            elif name in STAGE_LOGS + (EVAL_RESULTS, MARKER):
                stages.setdefault(relative, {})[name] = os.path.join(folder, name)
    return stages, consoles, tables


def read_marker(files):
    if MARKER not in files:
        return {}
    with open(files[MARKER], encoding="utf-8") as f:
        return json.load(f)


def stage_order(stages):
    """Stage paths in the order they finished (from stage_done.json), each folder's stages together;
    stages without a finishing time after, in natural path order."""
    finished = {path: read_marker(files).get("finished") or "~" for path, files in stages.items()}

    def natural(path):
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]

    group_start = {}
    for path, time in finished.items():
        group = path.rpartition("/")[0]
        group_start[group] = min(group_start.get(group, "~"), time)
    return sorted(stages, key=lambda p: (group_start[p.rpartition("/")[0]], natural(p.rpartition("/")[0]),
                                         finished[p], natural(p)))


def console_stage(console, stages):
    """The stage folder a console file belongs to (``task_ikd.seed42.txt`` -> ``.../seed42/task_ikd``, looked
    for beside the console folder), or None (the driver's own console)."""
    name = os.path.basename(console)[:-len(".txt")]
    stage, _, seed = name.partition(".")
    owner = console.rsplit("/", 2)[0] + "/" if console.count("/") > 1 else ""
    for path in stages:
        if not path.startswith(owner):
            continue
        parts = path.split("/")
        if parts[-1] == stage and (not seed or (len(parts) > 1 and parts[-2] == seed)):
            return path
    return None


def commands_text(stages, order):
    lines = ["# Each stage's command line, in the order the stages finished (from its stage_done.json).", ""]
    for path in order:
        marker = read_marker(stages[path])
        if not marker:
            continue
        settings = marker.get("settings", {})
        lines.append(f"# {path}: finished {marker.get('finished', '?')}, {marker.get('seconds', '?')} s")
        if "command" in settings:
            lines.append("python " + shlex.join(settings["command"]))
        else:
            lines.append("# not a script: " + json.dumps(settings.get("job", settings), sort_keys=True))
        lines.append("")
    return "\n".join(lines)


def bundle(entries):
    """``head``-style text of (path, text) entries."""
    parts = []
    for path, text in entries:
        parts.append(f"==> {path} <==\n{text.rstrip(chr(10))}\n")
    return "\n".join(parts)


def read_bundle(path):
    """{PATH: text} of a bundle written by bundle()."""
    files, current, lines = {}, None, []
    with open(path, encoding="utf-8") as f:
        for line in f.read().split("\n"):
            match = HEADER.match(line)
            if match:
                if current is not None:
                    files[current] = "\n".join(lines).rstrip("\n") + "\n"
                current, lines = match.group(1), []
            elif current is not None:
                lines.append(line)
    if current is not None:
        files[current] = "\n".join(lines).rstrip("\n") + "\n"
    return files


def collect(run_dir, destination):
    """Write the kept files of ``run_dir`` into ``destination``; returns the number of files written."""
    stages, consoles, tables = scan(run_dir)
    order = stage_order(stages)
    logged = {path for path, files in stages.items() if any(name in files for name in STAGE_LOGS)}
    console_of = {}
    for console in consoles:
        console_of.setdefault(console_stage(console, stages), []).append(console)
    # The driver's console first, then each stage's log, or its console output where it writes no log.
    log_entries = [(console, read_text(os.path.join(run_dir, console))) for console in console_of.pop(None, [])]
    eval_entries, seen = [], {}
    for path in order:
        files = stages[path]
        prefix = f"{path}/" if path else ""
        if path not in logged:
            log_entries += [(console, read_text(os.path.join(run_dir, console))) for console in console_of.get(path, [])]
        log_entries += [(prefix + name, read_text(files[name])) for name in STAGE_LOGS if name in files]
        if EVAL_RESULTS in files:
            text = read_text(files[EVAL_RESULTS])
            if text in seen:
                text = f"(identical to {seen[text]})\n"
            else:
                seen[text] = prefix + EVAL_RESULTS
            eval_entries.append((prefix + EVAL_RESULTS, text))
    os.makedirs(destination)
    written = 0
    for name in tables:
        shutil.copy2(os.path.join(run_dir, name), os.path.join(destination, name))
        written += 1
    curves = os.path.join(run_dir, CURVES_DIR)
    if os.path.isdir(curves):
        shutil.copytree(curves, os.path.join(destination, CURVES_DIR))
        written += len(os.listdir(curves))
    outputs = {"commands.txt": commands_text(stages, order) if any(read_marker(stages[p]) for p in stages)
               else None,
               "logs.txt": bundle(log_entries) if log_entries else None,
               EVAL_RESULTS: bundle(eval_entries) if eval_entries else None}
    for name, text in outputs.items():
        if text is not None:
            with open(os.path.join(destination, name), "w", encoding="utf-8") as f:
                f.write(text)
            written += 1
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("destination")
    args = parser.parse_args()
    if not os.path.isdir(args.run_dir):
        sys.exit(f"{args.run_dir}: no such run folder")
    if os.path.exists(args.destination):
        sys.exit(f"{args.destination} exists: remove it first or choose another destination")
    print(f"{collect(args.run_dir, args.destination)} files written to {args.destination}")


if __name__ == "__main__":
    main()

"""Rerun a development run (a row of runs.md) from its parameters in results.jsonl.

    python logs/development/rerun.py --list
    python logs/development/rerun.py lr2 --dry-run                  # print the commands
    python logs/development/rerun.py lr2 --base runs/quickstart-default

Each row of results.jsonl holds a run's parameters: the seeds, each stage's flags, the evaluations, the
commit it ran at (`commit`) and the one to rerun it from (`rerun_commit`, the same where it was recorded),
and what it starts from (`base`: a quick-start run folder whose teacher/, data/movie/, augment/ and
corpus/ it reads). The commands are built from those parameters: every task-distillation stage gets
`--teacher_model BASE/teacher --task_name movie --do_lower_case --seed S --max_seq_length 64` and, when it
trains, `--keep_checkpoints 1`; its own flags follow. Seeds run side by side with one torch thread each, as
they did. Outputs go to OUT/ROW/[VARIANT/]seedS/STAGE. Run it from the repository root of a checkout of the
row's rerun commit (git worktree add ../at-COMMIT COMMIT) for the logged figures; the current checkout is
used as it is.

Special stage keys: `student` (`minilm`: spiking_student_model/minilm; `base:PATH`: BASE/PATH; `ROW:PATH`:
another row's output; default: the previous stage), `data` (`movie`: BASE/data/movie, the default;
`augment`: BASE/augment; `augment:own`: this row's own augment stage; `probe`: the first 128 training
sentences of BASE/data/movie and its whole dev set, written by this script; which 128 sentences the probes
used was not recorded, and the population probes trained beside a smaller dev slice, which changes only
their own dev evaluation during training, not the rates, measured on the whole dev set), `script` (`general`: spiking_bert_general_distill.py on BASE/corpus with the
packaged MiniLM teacher; `augment`: data_augmentation.py on BASE/data with the packaged MiniLM).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = os.path.join(HERE, "results.jsonl")
TASK_SCRIPT = "spiking_bert_task_distill.py"
PROBE_TRAIN = 128


def load_rows(path=ROWS):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {row["name"]: row for row in rows}


def as_flags(flags):
    """--name value pairs of a flag dict (True: the bare flag; False: left out; a list: several values)."""
    argv = []
    for name, value in flags.items():
        if value is True:
            argv.append(f"--{name}")
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            argv += [f"--{name}"] + [str(v) for v in value]
        else:
            argv += [f"--{name}", str(value)]
    return argv


class Plan:
    """The commands of one row, as (description, argv, environment) steps."""

    def __init__(self, row, out, base, python, assets):
        self.row, self.out, self.base, self.python, self.assets = row, out, base, python, assets
        self.steps = []

    def folder(self, variant, seed, stage, row=None):
        parts = [self.out, row or self.row["name"]] + ([variant] if variant else []) + [f"seed{seed}", stage]
        return os.path.join(*parts)

    def student(self, spec, variant, seed, previous):
        if spec is None:
            return previous or "spiking_student_model/minilm"
        if spec == "minilm":
            return "spiking_student_model/minilm"
        where, _, path = spec.partition(":")
        path = path.format(seed=seed)
        if where == "base":
            return os.path.join(self.base, path)
        return os.path.join(self.out, where, *([variant] if variant else []), path)

    def data(self, spec, variant, seed):
        spec = spec or "movie"
        if spec == "movie":
            return os.path.join(self.base, "data", "movie")
        if spec == "augment":
            return os.path.join(self.base, "augment")
        if spec == "augment:own":
            return self.folder(variant, seed, "augment")
        if spec == "probe":
            return os.path.join(self.out, self.row["name"], "probe_data")
        raise ValueError(f"{self.row['name']}: unknown data {spec!r}")

    def stage(self, name, flags, variant, seed, previous):
        flags = dict(flags)
        script = flags.pop("script", "task")
        output = self.folder(variant, seed, name)
        if script == "augment":
            argv = ["data_augmentation.py", "--pretrained_bert_model", os.path.join(self.assets, "teacher_minilm"),
                    "--glue_dir", os.path.join(self.base, "data"), "--task_name", "movie", "--output_dir", output]
            return argv + as_flags(flags), previous
        student = self.student(flags.pop("student", None), variant, seed, previous)
        data = self.data(flags.pop("data", None), variant, seed)
        if script == "general":
            common = {"pregenerated_data": os.path.join(self.base, "corpus"),
                      "teacher_model": os.path.join(self.assets, "teacher_minilm")}
            script_name = "spiking_bert_general_distill.py"
        else:
            common = {"teacher_model": os.path.join(self.base, "teacher"), "data_dir": data, "task_name": "movie"}
            script_name = TASK_SCRIPT
        common.update({"spiking_student_model": student, "output_dir": output, "do_lower_case": True,
                       "seed": seed, "max_seq_length": 64, "keep_checkpoints": 1})
        common.update(flags)
        return [script_name] + as_flags(common), output

    def evaluation(self, t_conv, student, variant, seed):
        flags = {"do_eval": True, "spiking_student_model": student,
                 "teacher_model": os.path.join(self.base, "teacher") if self.row["eval_flags"].get("teacher") else None,
                 "data_dir": os.path.join(self.base, "data", "movie"), "task_name": "movie",
                 "output_dir": self.folder(variant, seed, f"eval_t{t_conv}"), "t_conv": t_conv, "eval_batch_size": 64,
                 "do_lower_case": True, "max_seq_length": 64}
        flags.update({k: v for k, v in self.row["eval_flags"].items() if k != "teacher"})
        return [TASK_SCRIPT] + as_flags(flags)

    def build(self):
        row = self.row
        if row["kind"] == "quickstart":
            self.steps.append(("the default quick start of the row's commit" +
                               (f", with {row['patch']} applied (git apply)" if row.get("patch") else ""),
                               ["quickstart.py", "--run_dir", os.path.join(self.out, row["name"])], {}))
            return self.steps
        if any(flags.get("data") == "probe" for _, flags in row["stages"]):
            self.steps.append((f"probe data: {self.data('probe', None, None)}", ["probe-data"], {}))
        variants = row.get("variants") or {"": {}}
        threads = {"OMP_NUM_THREADS": "1"} if len(row["seeds"]) > 1 or len(variants) > 1 else {}
        for variant, extra in variants.items():
            for seed in row["seeds"]:
                previous = None
                for name, flags in row["stages"]:
                    argv, previous = self.stage(name, {**flags, **extra}, variant, seed, previous)
                    self.steps.append((f"{variant + ' ' if variant else ''}seed {seed}: {name}", argv, threads))
                for t_conv in row["evals"]:
                    self.steps.append((f"{variant + ' ' if variant else ''}seed {seed}: eval_t{t_conv}",
                                       self.evaluation(t_conv, previous, variant, seed), threads))
        return self.steps


def write_probe_data(folder, base):
    """The probes' task folder: the first PROBE_TRAIN training sentences and the whole dev set."""
    os.makedirs(folder, exist_ok=True)
    source = os.path.join(base, "data", "movie")
    for name, count in (("train.tsv", PROBE_TRAIN), ("dev.tsv", None)):
        with open(os.path.join(source, name), encoding="utf-8") as f:
            lines = f.readlines()
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.writelines(lines if count is None else lines[:count + 1])


def shell_line(argv, env, python):
    prefix = "".join(f"{k}={v} " for k, v in env.items())
    if argv[0] == "probe-data":
        return None
    return prefix + shlex.join([python] + argv)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", nargs="?", help="the run's name (a row of runs.md)")
    parser.add_argument("--list", action="store_true", help="list the rows")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--out", default="runs/development", help="where the row's folders go")
    parser.add_argument("--base", default=None,
                        help="the quick-start run folder the row starts from (default: OUT/BASE_ROW for a row whose "
                             "base is another row, else runs/quickstart-default)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--assets", default=os.path.expanduser("~/.cache/spikingbert/assets"))
    args = parser.parse_args(argv)
    rows = load_rows()
    if args.list or not args.row:
        for row in rows.values():
            print(f"{row['name']}: {row['what']}")
        return 0
    if args.row not in rows:
        parser.error(f"no row {args.row!r}; --list shows them")
    row = rows[args.row]
    base = args.base or (os.path.join(args.out, row["base_row"]) if row.get("base_row") else "runs/quickstart-default")
    steps = Plan(row, args.out, base, args.python, args.assets).build()
    print(f"# {row['name']}: {row['what']}")
    print(f"# ran {row['date']} at commit {row['commit'] or 'not recorded'}; rerun from a checkout of "
          f"{row['rerun_commit']}")
    if row["kind"] != "quickstart":
        print(f"# BASE={base}: {row['base']}")
    if row.get("patch"):
        print(f"# first apply the preset change of that run: git apply {row['patch']}")
    if args.dry_run:
        for description, step, env in steps:
            line = shell_line(step, env, args.python)
            print(f"# {description}" if line is None else line)
        return 0
    side_by_side = len(row["seeds"]) > 1
    chains = {}
    for description, step, env in steps:
        if step[0] == "probe-data":
            write_probe_data(Plan(row, args.out, base, args.python, args.assets).data("probe", None, None), base)
            continue
        chains.setdefault(description.rsplit(":", 1)[0] if side_by_side else "", []).append((description, step, env))
    processes = [subprocess.Popen([sys.executable, "-c", CHAIN, json.dumps([[[args.python] + s, e] for _, s, e in chain])]) for chain in chains.values()]
    return max(p.wait() for p in processes)


# One chain of commands (a seed's stages), run in order; stops at the first failure.
CHAIN = """
import json, os, subprocess, sys
for argv, env in json.loads(sys.argv[1]):
    print("$", " ".join(argv), flush=True)
    if subprocess.run(argv, env={**os.environ, **env}).returncode:
        sys.exit(1)
"""

if __name__ == "__main__":
    sys.exit(main())

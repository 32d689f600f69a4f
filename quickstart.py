"""Quick start: the paper's whole pipeline on packaged real data, from nothing to a results table.

    ./quickstart.sh [--smoke | --full] [--run_dir DIR] [--overwrite]     (or: python quickstart.py ...)

Every stage is one of the project's scripts run as a subprocess; its command line is printed and
logged first, so any stage can be rerun by hand:
  assets      prepare_assets.py: the all-MiniLM-L6-v2 teacher, the movie-review task, a Wikipedia sample
  data        the preset's slices of the movie task and the corpus, written into the run folder
  teacher     finetune_teacher.py: MiniLM fine-tuned on the movie task (the task teacher)
  corpus      preprocess_training_data.py: the corpus as pregenerated BERT instances
  general_kd  spiking_bert_general_distill.py: MiniLM -> the 3-layer spiking student
  task_ikd    spiking_bert_task_distill.py: task-based internal-layer KD from the task teacher
  pred_kd     spiking_bert_task_distill.py --pred_distill: prediction-layer KD, best dev checkpoint kept
  eval_t*     spiking_bert_task_distill.py --do_eval of that student at several t_conv values, and once more at
              the prediction-KD t_conv with --adaptive_t_conv (eval_t*_adaptive, the flags' default rule)
Results go to results.md, results.json and tradeoff.png (accuracy and energy per sentence against the time
steps) in the run folder; each stage's console output to logs/.
A stage whose folder holds stage_done.json with the same settings is reused; a folder made with other
settings is refused unless --overwrite (which redoes that stage and those after it).
"""
import argparse
import hashlib
import json
import logging
import math
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

from safetensors import safe_open

from corpus.assets import asset_paths, default_cache_dir
from transformer.checkpoint import atomic_directory, weights_file

# Preset sizes. None means "all of it". t_conv is the training value of each distillation stage;
# eval_t_conv must include the prediction-KD one (the final student's).
PRESETS = {
    "smoke": {
        "data": {"train_sentences": 160, "dev_sentences": 64, "corpus_sentences": 200},
        "max_seq_length": 32, "vth": 1.0, "t_conv": {"general_kd": 4, "task_ikd": 4, "pred_kd": 4},
        "eval_t_conv": [2, 4, 8, 16], "eval_batch_size": 64,
        "teacher": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 1e-4},
        "corpus": {"epochs_to_generate": 1, "max_seq_len": 32},
        "general_kd": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 3e-4},
        "task_ikd": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 3e-4},
        "pred_kd": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 1e-4, "eval_step": 5},
    },
    # Prediction KD at 32 steps: after IKD at 8, the last layer's [CLS] rates, quantised to 1/8, hardly
    # differ between sentences, and prediction KD at 8 steps stayed at the majority class.
    "default": {
        "data": {"train_sentences": 4000, "dev_sentences": None, "corpus_sentences": 5000},
        "max_seq_length": 64, "vth": 1.0, "t_conv": {"general_kd": 8, "task_ikd": 8, "pred_kd": 32},
        "eval_t_conv": [8, 16, 32, 64], "eval_batch_size": 64,
        "teacher": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 5e-5},
        "corpus": {"epochs_to_generate": 1, "max_seq_len": 32},
        "general_kd": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 3e-4},
        "task_ikd": {"num_train_epochs": 3, "train_batch_size": 16, "learning_rate": 3e-4},
        "pred_kd": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 1e-4, "eval_step": 125},
    },
    "full": {
        "data": {"train_sentences": None, "dev_sentences": None, "corpus_sentences": None},
        "max_seq_length": 128, "vth": 1.0, "t_conv": {"general_kd": 125, "task_ikd": 125, "pred_kd": 125},
        "eval_t_conv": [25, 50, 125, 250], "eval_batch_size": 32,
        "teacher": {"num_train_epochs": 3, "train_batch_size": 32, "learning_rate": 2e-5},
        "corpus": {"epochs_to_generate": 3, "max_seq_len": 128},
        "general_kd": {"num_train_epochs": 3, "train_batch_size": 32, "learning_rate": 5e-5},
        "task_ikd": {"num_train_epochs": 10, "train_batch_size": 32, "learning_rate": 5e-5},
        "pred_kd": {"num_train_epochs": 3, "train_batch_size": 32, "learning_rate": 3e-5, "eval_step": 100},
    },
}

STUDENT_CONFIG_DIR = "spiking_student_model/minilm"
TASK = "movie"
SEED = 42
MARKER_NAME = "stage_done.json"
RUN_RECORD_NAME = "quickstart_run.json"
REPO = os.path.dirname(os.path.abspath(__file__))

logger = logging.getLogger("quickstart")


@dataclass
class Stage:
    """One step of the pipeline: a script with its flags (or an in-process job) writing ``folder``."""
    name: str
    folder: str
    script: str = None
    flags: dict = field(default_factory=dict)
    inputs: tuple = ()
    job: object = None
    job_settings: dict = None

    def command(self):
        """argv after the interpreter: flags with value True are bare switches."""
        argv = [self.script]
        for flag, value in self.flags.items():
            argv += [flag] if value is True else [flag, str(value)]
        return argv


def show_path(path):
    """Paths inside the repository relative to it (commands run from there), others absolute."""
    path = os.path.abspath(path)
    relative = os.path.relpath(path, REPO)
    return path if relative.startswith("..") else relative


def build_stages(preset, run_dir, assets):
    """The pipeline for one preset, as data; nothing is run here."""
    def folder(name):
        return show_path(os.path.join(run_dir, name))

    teacher, movie, student_config = assets["teacher"], folder("data/movie"), STUDENT_CONFIG_DIR
    shared = {"--max_seq_length": preset["max_seq_length"], "--do_lower_case": True, "--seed": SEED}

    def spiking(t_conv):
        return {"--t_conv": t_conv, "--vth": preset["vth"]}

    def evaluation(name, t_conv, extra=None):
        # --teacher_model: its config.json gives the teacher's shape for the energy comparison.
        return Stage(name, folder(name), "spiking_bert_task_distill.py", {
            "--do_eval": True, "--spiking_student_model": folder("pred_kd"), "--teacher_model": folder("teacher"),
            "--data_dir": movie, "--task_name": TASK, "--output_dir": folder(name), **spiking(t_conv),
            "--eval_batch_size": preset["eval_batch_size"], "--max_seq_length": preset["max_seq_length"],
            "--do_lower_case": True, **(extra or {})}, inputs=("pred_kd",))

    stages = [
        Stage("data", folder("data"), job=write_data_slices,
              job_settings={"movie_sst2": assets["movie_sst2"], "wiki_corpus": assets["wiki_corpus"],
                            "seed": SEED, **preset["data"]}),
        Stage("teacher", folder("teacher"), "finetune_teacher.py", {
            "--bert_model": teacher, "--data_dir": movie, "--task_name": TASK, "--output_dir": folder("teacher"),
            **{f"--{k}": v for k, v in preset["teacher"].items()}, "--eval_batch_size": preset["eval_batch_size"],
            **shared}, inputs=("data",)),
        Stage("corpus", folder("corpus"), "preprocess_training_data.py", {
            "--train_corpus": folder("data/corpus.txt"), "--bert_model": teacher, "--reduce_memory": True,
            "--do_lower_case": True, **{f"--{k}": v for k, v in preset["corpus"].items()}, "--seed": SEED,
            "--output_dir": folder("corpus")},
            inputs=("data",)),
        Stage("general_kd", folder("general_kd"), "spiking_bert_general_distill.py", {
            "--pregenerated_data": folder("corpus"), "--teacher_model": teacher,
            "--spiking_student_model": student_config, "--output_dir": folder("general_kd"),
            **spiking(preset["t_conv"]["general_kd"]),
            **{f"--{k}": v for k, v in preset["general_kd"].items()}, **shared,
            "--max_seq_length": preset["corpus"]["max_seq_len"], "--keep_checkpoints": 1},
            inputs=("corpus",)),
        Stage("task_ikd", folder("task_ikd"), "spiking_bert_task_distill.py", {
            "--teacher_model": folder("teacher"), "--spiking_student_model": folder("general_kd"),
            "--data_dir": movie, "--task_name": TASK, "--output_dir": folder("task_ikd"),
            **spiking(preset["t_conv"]["task_ikd"]),
            **{f"--{k}": v for k, v in preset["task_ikd"].items()}, **shared, "--keep_checkpoints": 1},
            inputs=("teacher", "general_kd")),
        Stage("pred_kd", folder("pred_kd"), "spiking_bert_task_distill.py", {
            "--pred_distill": True, "--teacher_model": folder("teacher"),
            "--spiking_student_model": folder("task_ikd"), "--data_dir": movie, "--task_name": TASK,
            "--output_dir": folder("pred_kd"), **spiking(preset["t_conv"]["pred_kd"]),
            **{f"--{k}": v for k, v in preset["pred_kd"].items()},
            "--eval_batch_size": preset["eval_batch_size"], **shared, "--keep_checkpoints": 1},
            inputs=("task_ikd",)),
    ]
    stages += [evaluation(f"eval_t{t_conv}", t_conv) for t_conv in preset["eval_t_conv"]]
    stages.append(evaluation(adaptive_stage_name(preset), preset["t_conv"]["pred_kd"], {"--adaptive_t_conv": True}))
    return stages


def adaptive_stage_name(preset):
    return f"eval_t{preset['t_conv']['pred_kd']}_adaptive"


def digest(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def stage_settings(stages):
    """Each stage's settings: its command (or job settings) and a digest of each input stage's settings."""
    settings = {}
    for stage in stages:
        own = {"command": stage.command()} if stage.script else {"job": stage.job_settings}
        settings[stage.name] = {**own, "inputs": {name: digest(settings[name]) for name in stage.inputs}}
    return settings


def first_difference(old, new, path=""):
    """Short description of where two JSON values first differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else key)
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                return first_difference(a, b, f"{path}[{i}]")
    return f"{path}: {json.dumps(old)} -> {json.dumps(new)}"


def read_marker(folder):
    path = os.path.join(folder, MARKER_NAME)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json_atomic(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def check_run_dir(run_dir):
    """The run folder must be new, empty or an earlier quickstart run (never someone else's folder)."""
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not os.path.isfile(os.path.join(run_dir, RUN_RECORD_NAME)):
        raise SystemExit(f"error: --run_dir {run_dir} is not empty and holds no {RUN_RECORD_NAME}; "
                         "choose another --run_dir")


def plan(stages, settings, overwrite):
    """Names of the stages to run; refuses (before anything runs) to mix settings without --overwrite."""
    to_run = []
    for stage in stages:
        marker = read_marker(os.path.join(REPO, stage.folder))
        if marker is None:
            to_run.append(stage.name)
        elif marker["settings"] != settings[stage.name]:
            if not overwrite:
                raise SystemExit(f"error: {stage.folder} was made with other settings "
                                 f"({first_difference(marker['settings'], settings[stage.name])}); "
                                 "choose another --run_dir or pass --overwrite")
            to_run.append(stage.name)
    return to_run


def run_logged(argv, log_path):
    """Run ``argv`` from the repository root; its output goes to the console and to ``log_path``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log, subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                                       stderr=subprocess.STDOUT) as process:
        while chunk := os.read(process.stdout.fileno(), 65536):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            log.write(chunk)
        return process.wait()


def run_script(stage, run_dir):
    """Log the stage's command line, then run it; its output also goes to logs/<stage>.txt."""
    argv = [sys.executable] + stage.command()
    log_path = os.path.join(run_dir, "logs", f"{stage.name}.txt")
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(argv)}\n")
    logger.info("[%s] %s", stage.name, shlex.join(argv))
    returncode = run_logged(argv, log_path)
    if returncode != 0:
        raise SystemExit(f"error: stage {stage.name} failed (exit code {returncode}); its output is in "
                         f"{show_path(log_path)}")


def prepare_assets(assets, run_dir):
    """prepare_assets.py unless every asset is already in the cache; returns the stage's timing."""
    if all(os.path.exists(assets[key]) for key in ("teacher", "movie_sst2", "wiki_corpus")):
        logger.info("[assets] reusing the packaged assets in %s", assets["cache_dir"])
        return {"seconds": 0.0, "reused": True}
    start = time.monotonic()
    run_script(Stage("assets", assets["cache_dir"], "prepare_assets.py", {"--cache_dir": assets["cache_dir"]}),
               run_dir)
    return {"seconds": round(time.monotonic() - start, 1), "reused": False}


def run_stage(stage, settings, run_dir):
    folder = os.path.join(REPO, stage.folder)
    if os.path.exists(folder):
        logger.info("[%s] removing %s (unfinished, or made with other settings)", stage.name, stage.folder)
        shutil.rmtree(folder)
    start = time.monotonic()
    if stage.job is not None:
        logger.info("[%s] writing %s", stage.name, stage.folder)
        stage.job(folder, **stage.job_settings)
    else:
        run_script(stage, run_dir)
    seconds = time.monotonic() - start
    write_json_atomic(os.path.join(folder, MARKER_NAME), {"settings": settings, "seconds": round(seconds, 1),
                                                          "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    logger.info("[%s] done in %.0f s", stage.name, seconds)
    return seconds


def sample_rows(path, count, rng):
    """Header plus ``count`` data rows drawn at random (file order kept); all rows when count is None."""
    with open(path, encoding="utf-8") as f:
        header, *rows = f.readlines()
    if count is not None and count < len(rows):
        rows = [rows[i] for i in sorted(rng.sample(range(len(rows)), count))]
    return [header] + rows


def corpus_slice(path, sentences, rng):
    """Documents in a seeded random order, each cut to at most 1/8 of the budget (so there are several,
    as next-sentence pairs need), until ``sentences`` lines; every document when ``sentences`` is None."""
    with open(path, encoding="utf-8") as f:
        documents = [doc.splitlines() for doc in f.read().split("\n\n") if doc.strip()]
    if sentences is None:
        return documents
    rng.shuffle(documents)
    per_document = max(2, sentences // 8)
    chosen, total = [], 0
    for document in documents:
        if total >= sentences:
            break
        chosen.append(document[:min(per_document, sentences - total)])
        total += len(chosen[-1])
    return chosen


def write_data_slices(folder, movie_sst2, wiki_corpus, seed, train_sentences, dev_sentences, corpus_sentences):
    """``folder``/movie/{train,dev}.tsv and ``folder``/corpus.txt: the preset's slices of the packaged data."""
    rng = random.Random(seed)
    with atomic_directory(folder) as tmp:
        os.makedirs(os.path.join(tmp, "movie"))
        for split, count in (("train", train_sentences), ("dev", dev_sentences)):
            with open(os.path.join(tmp, "movie", f"{split}.tsv"), "w", encoding="utf-8") as f:
                f.writelines(sample_rows(os.path.join(movie_sst2, f"{split}.tsv"), count, rng))
        with open(os.path.join(tmp, "corpus.txt"), "w", encoding="utf-8") as f:
            f.write("\n\n".join("\n".join(doc) for doc in corpus_slice(wiki_corpus, corpus_sentences, rng)) + "\n")


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


def majority_baseline(dev_tsv):
    with open(dev_tsv, encoding="utf-8") as f:
        labels = [line.rstrip("\n").split("\t")[-1] for line in f.readlines()[1:] if line.strip()]
    majority = max(set(labels), key=labels.count)
    return majority, labels.count(majority) / len(labels), len(labels)


def collect_results(preset_name, preset, stages, timings):
    folders = {stage.name: stage.folder for stage in stages}
    majority_label, majority_acc, dev_size = majority_baseline(os.path.join(REPO, folders["data"], "movie", "dev.tsv"))
    evaluations = [evaluation_summary(read_results(folders[f"eval_t{t_conv}"]), preset)
                   for t_conv in preset["eval_t_conv"]]
    adaptive_results = read_results(folders[adaptive_stage_name(preset)])
    adaptive = {**evaluation_summary(adaptive_results, preset), "rule": adaptive_results["adaptive.rule"]}
    return {
        "preset": preset_name, "settings": preset, "task": TASK, "dev_examples": dev_size,
        "majority_baseline": {"label": majority_label, "dev_acc": majority_acc},
        "teacher": {"dev_acc": read_results(folders["teacher"])[f"{TASK}.acc"],
                    "parameters": count_parameters(folders["teacher"]), "folder": folders["teacher"],
                    "energy_uj": adaptive_results[f"{TASK}.energy.teacher_energy_uj"]},
        "same_size_ann": {"energy_uj": adaptive_results[f"{TASK}.energy.ann_energy_uj"]},
        "student": {"parameters": count_parameters(folders["pred_kd"]), "folder": folders["pred_kd"],
                    "train_t_conv": preset["t_conv"], "vth": preset["vth"], "evaluations": evaluations,
                    "adaptive": adaptive},
        "stages": timings,
    }


def evaluation_summary(results, preset):
    """One evaluation's row: accuracy, steps, spike rate and energy per sentence (eval_results.txt values)."""
    t_conv = int(results["t_conv"])
    return {"t_conv": t_conv, "dev_acc": results[f"{TASK}.acc"],
            "mean_steps": results[f"{TASK}.distribution.steps.mean"],
            "mean_spike_rate": results[f"{TASK}.rate.mean_over_populations"],
            "energy_uj": results[f"{TASK}.energy.energy_uj"],
            "energy_ratio_to_teacher": results[f"{TASK}.energy.energy_ratio_to_teacher"],
            "trained_at": t_conv == preset["t_conv"]["pred_kd"]}


def results_markdown(results):
    student, teacher = results["student"], results["teacher"]
    adaptive = student["adaptive"]
    lines = [f"# Quick start results ({results['preset']} preset)", "",
             (f"Movie-review sentiment (Rotten Tomatoes sentences, SST-2 layout), {results['dev_examples']} dev "
              "sentences. Energy per sentence: 0.9 pJ per accumulate, 4.6 pJ per multiply-accumulate (45 nm), "
              "arithmetic only (README, Energy)."), "",
             "| model | dev accuracy | mean steps | mean spike rate | energy per sentence (uJ) | energy / teacher's "
             "| parameters |", "|---|---|---|---|---|---|---|",
             (f"| majority class ({results['majority_baseline']['label']}) | "
              f"{results['majority_baseline']['dev_acc']:.4f} | | | | | |"),
             (f"| teacher: all-MiniLM-L6-v2 fine-tuned | {teacher['dev_acc']:.4f} | | | {teacher['energy_uj']:.4g} "
              f"| 1 | {teacher['parameters']:,} |"),
             f"| same-size ordinary BERT (energy only) | | | | {results['same_size_ann']['energy_uj']:.4g} | "
             f"{results['same_size_ann']['energy_uj'] / teacher['energy_uj']:.3g} | |"]
    rows = [(f"t_conv {e['t_conv']}{' (training value)' if e['trained_at'] else ''}", e)
            for e in student["evaluations"]]
    rows.append((f"adaptive, at most t_conv {adaptive['t_conv']}", adaptive))
    for name, evaluation in rows:
        lines.append(f"| spiking student, {name} | {evaluation['dev_acc']:.4f} | {evaluation['mean_steps']:.4g} | "
                     f"{evaluation['mean_spike_rate']:.4f} | {evaluation['energy_uj']:.4g} | "
                     f"{evaluation['energy_ratio_to_teacher']:.3g} | {student['parameters']:,} |")
    lines += ["", f"Adaptive rule: {adaptive['rule']}.", "", "| stage | wall time (s) | |", "|---|---|---|"]
    for name, timing in results["stages"].items():
        lines.append(f"| {name} | {timing['seconds']:.0f} | {'reused' if timing['reused'] else ''} |")
    total = sum(timing["seconds"] for timing in results["stages"].values())
    lines += [f"| total | {total:.0f} | |", ""]
    return "\n".join(lines)


def write_tradeoff_plot(results, path):
    """tradeoff.png: dev accuracy (top) and energy per sentence (bottom) against the time steps, the
    teacher as horizontal lines, the adaptive evaluation as one point at its mean steps."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    student, teacher = results["student"], results["teacher"]
    evaluations, adaptive = student["evaluations"], student["adaptive"]
    steps = [e["t_conv"] for e in evaluations]
    figure, (accuracy_axis, energy_axis) = plt.subplots(2, 1, sharex=True, figsize=(6.4, 7.2))
    for axis, key, teacher_value in ((accuracy_axis, "dev_acc", teacher["dev_acc"]),
                                     (energy_axis, "energy_uj", teacher["energy_uj"])):
        axis.plot(steps, [e[key] for e in evaluations], "o-", color="tab:blue", label="spiking student, fixed t_conv")
        axis.plot([adaptive["mean_steps"]], [adaptive[key]], "D", color="tab:red", markersize=8,
                  label=f"spiking student, adaptive (at most {adaptive['t_conv']}), at its mean steps")
        axis.axhline(teacher_value, color="tab:green", linestyle="--", label="teacher")
        axis.grid(alpha=0.3)
    accuracy_axis.axhline(results["majority_baseline"]["dev_acc"], color="grey", linestyle=":",
                          label="majority class")
    energy_axis.axhline(results["same_size_ann"]["energy_uj"], color="tab:orange", linestyle="-.",
                        label="ordinary BERT of the student's size")
    accuracy_axis.set_ylabel("dev accuracy")
    energy_axis.set_ylabel("energy per sentence (uJ, arithmetic at 45 nm)")
    energy_axis.set_xscale("log", base=2)
    energy_axis.set_xticks(steps, [str(s) for s in steps])
    energy_axis.set_xlabel("time steps (t_conv; adaptive: mean steps used)")
    for axis in (accuracy_axis, energy_axis):
        axis.legend(fontsize=7)
    accuracy_axis.set_title(f"Spiking student on {results['task']} ({results['preset']} preset): "
                            "accuracy and energy against time steps", fontsize=9)
    figure.tight_layout()
    tmp = f"{path}.tmp"
    figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    os.replace(tmp, path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_const", dest="preset", const="smoke",
                      help="tiny slices, a few minutes on a CPU: checks that everything runs")
    size.add_argument("--full", action="store_const", dest="preset", const="full",
                      help="all the movie data and corpus, the paper's t_conv 125 (for a GPU)")
    parser.set_defaults(preset="default")
    parser.add_argument("--run_dir", default=None, help="output folder (default runs/quickstart-<preset>)")
    parser.add_argument("--cache_dir", default=None, help=f"packaged assets (default {default_cache_dir()})")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo stages whose folders were made with other settings")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    run_dir = os.path.abspath(args.run_dir or os.path.join(REPO, "runs", f"quickstart-{args.preset}"))
    check_run_dir(run_dir)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(asctime)s quickstart: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[console])
    assets = asset_paths(args.cache_dir)
    stages = build_stages(preset, run_dir, assets)
    settings = stage_settings(stages)
    to_run = set(plan(stages, settings, args.overwrite))

    os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
    write_json_atomic(os.path.join(run_dir, RUN_RECORD_NAME), {"preset": args.preset, "repository": REPO})
    log_file = logging.FileHandler(os.path.join(run_dir, "logs", "quickstart.txt"))
    log_file.setFormatter(console.formatter)
    logging.getLogger().addHandler(log_file)
    logger.info("preset %s, run folder %s", args.preset, show_path(run_dir))
    timings = {"assets": prepare_assets(assets, run_dir)}
    for stage in stages:
        if stage.name in to_run or any(name in to_run for name in stage.inputs):
            to_run.add(stage.name)
            seconds = run_stage(stage, settings[stage.name], run_dir)
            timings[stage.name] = {"seconds": round(seconds, 1), "reused": False}
        else:
            marker = read_marker(os.path.join(REPO, stage.folder))
            logger.info("[%s] reusing %s (finished %s)", stage.name, stage.folder, marker["finished"])
            timings[stage.name] = {"seconds": marker["seconds"], "reused": True}

    results = collect_results(args.preset, preset, stages, timings)
    write_json_atomic(os.path.join(run_dir, "results.json"), results)
    markdown = results_markdown(results)
    with open(os.path.join(run_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(markdown)
    write_tradeoff_plot(results, os.path.join(run_dir, "tradeoff.png"))
    print(markdown)
    logger.info("results in %s, %s and %s", *(show_path(os.path.join(run_dir, name))
                                              for name in ("results.md", "results.json", "tradeoff.png")))


if __name__ == "__main__":
    main()

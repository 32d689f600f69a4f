"""The quick start's pipeline as data (Stage), and how stages are planned, run and reused.

Every stage is one of the project's scripts run as a subprocess (or the in-process job that
writes the data slices); its command line is printed and logged first, so any stage can be
rerun by hand. A stage whose folder holds stage_done.json with the same settings (its
command and a digest of each input stage's settings) is reused; a folder made with other
settings is refused unless the caller allows redoing it.
"""
import concurrent.futures
import ctypes
import hashlib
import json
import logging
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from corpus.assets import has_current_split
from distill.energy_report import ENERGY_NAME
from distill.evaluation import PREDICTIONS_SUFFIX, RESULTS_NAME, readout_folder
from pipeline.presets import SEED, STUDENT_CONFIG_DIR, TASK, final_stage, final_t_conv
from transformer.checkpoint import (CONFIG_NAME, FolderReplacement, atomic_directory, load_weights, read_json,
                                    recover_replaced, weights_file)
from transformer import file_utils
from transformer.file_utils import WriteError, write_atomically

MARKER_NAME = "stage_done.json"
RUN_RECORD_NAME = "quickstart_run.json"
DISTILL_DATA = "distill"  # the data stage's subfolder of the student's own training sentences, when a preset has them
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Stages that depend on the data slices and the teacher's settings only: runs of presets that agree on those can
# keep them in one folder and train one teacher (quickstart.py --shared_dir, the ablation).
SHARED_STAGES = ("data", "teacher", "corpus", "augment")
# The final student's evaluation stage (per seed): its adaptive evaluation, and each fixed t_conv as a readout.
EVAL_STAGE = "eval"

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
            if value is True:
                argv.append(flag)
            elif isinstance(value, (list, tuple)):  # nargs="+" flags such as --kd_losses
                argv += [flag, *map(str, value)]
            else:
                argv += [flag, str(value)]
        return argv


def show_path(path):
    """Paths inside the repository relative to it (commands run from there), others absolute."""
    path = os.path.abspath(path)
    relative = os.path.relpath(path, REPO)
    return path if relative.startswith("..") else relative


def shared_folders(shared_dir):
    """The SHARED_STAGES' folders in ``shared_dir``, as build_stages' ``folders``."""
    return {name: os.path.join(shared_dir, name) for name in SHARED_STAGES}


def build_stages(preset, run_dir, assets, folders=None):
    """The pipeline of one preset, as data; nothing is run here.

    ``folders`` maps stage names to folders used instead of ``run_dir``'s (stages shared by several
    runs, as in the ablation). Distillation and evaluation stages are per seed: named
    ``<stage>.seed<seed>`` in ``run_dir/seed<seed>/`` when the preset has several seeds.
    """
    folders = folders or {}

    def folder(name, subfolder=None):
        if name in folders:
            return show_path(folders[name])
        return show_path(os.path.join(run_dir, subfolder or name))

    teacher, movie = assets["teacher"], folder("data") + "/movie"
    # the task folder the distillation stages train on: the teacher's sentences unless the preset gives its own
    distill_glue = folder("data") + (f"/{DISTILL_DATA}" if preset["data"].get("distill_sentences") else "")
    sources = {"bert": teacher, "teacher": folder("teacher"), "corpus": folder("corpus"), "movie": movie,
               "distill": distill_glue + "/movie"}
    stages = [
        Stage("data", folder("data"), job=write_data_slices,
              job_settings={"movie_sst2": assets["movie_sst2"], "wiki_corpus": assets["wiki_corpus"],
                            "seed": SEED, **preset["data"]}),
        Stage("teacher", folder("teacher"), "finetune_teacher.py", {
            "--bert_model": teacher, "--data_dir": movie, "--task_name": TASK, "--output_dir": folder("teacher"),
            **flags_of(preset["teacher"]), "--eval_batch_size": preset["eval_batch_size"],
            "--max_seq_length": preset["max_seq_length"], "--do_lower_case": True, "--seed": SEED},
            inputs=("data",)),
    ]
    if any(stage == "general_kd" for stage, _ in preset["distillation"]):
        stages.append(Stage("corpus", folder("corpus"), "preprocess_training_data.py", {
            "--train_corpus": folder("data") + "/corpus.txt", "--bert_model": teacher, "--reduce_memory": True,
            "--do_lower_case": True, **flags_of(preset["corpus"]), "--seed": SEED, "--output_dir": folder("corpus")},
            inputs=("data",)))
    if preset.get("augment"):
        # TinyBERT's augmentation of the distillation sentences, into its own folder (train_aug.tsv).
        stages.append(Stage("augment", folder("augment"), "data_augmentation.py", {
            "--pretrained_bert_model": teacher, "--glue_dir": distill_glue, "--task_name": TASK,
            "--output_dir": folder("augment"), **flags_of(preset["augment"]), "--seed": SEED}, inputs=("data",)))
        sources["augmented"] = folder("augment")
    for seed in preset["seeds"]:
        def name_of(stage, seed=seed):
            return seeded(stage, seed, preset)

        def folder_of(stage, seed=seed):
            return folder(name_of(stage), f"seed{seed}/{stage}" if len(preset["seeds"]) > 1 else stage)

        student, previous = preset.get("student_config", STUDENT_CONFIG_DIR), None
        for stage, flags in preset["distillation"]:
            stages.append(distillation_stage(name_of(stage), folder_of(stage), stage, flags, student, previous,
                                             preset, seed, sources))
            student, previous = folder_of(stage), name_of(stage)
        copied, readouts = evaluation_plan(preset)
        for t_conv in copied:
            stages.append(Stage(name_of(f"eval_t{t_conv}"), folder_of(f"eval_t{t_conv}"), job=copy_evaluation,
                                job_settings={"student": student}, inputs=(previous,)))
        adaptive = preset.get("adaptive_eval", True)
        if readouts or adaptive:
            # One simulation per sentence gives every evaluation left: adaptive (at the training t_conv) on top,
            # or the longest fixed one, and each fixed t_conv as a readout of it.
            stages.append(Stage(name_of(EVAL_STAGE), folder_of(EVAL_STAGE), "spiking_bert_task_distill.py", {
                "--do_eval": True, "--spiking_student_model": student,
                # its config.json gives the teacher's shape for the energy comparison
                "--teacher_model": folder("teacher"), "--data_dir": movie, "--task_name": TASK,
                "--output_dir": folder_of(EVAL_STAGE), "--t_conv": final_t_conv(preset) if adaptive else max(readouts),
                "--eval_batch_size": preset["eval_batch_size"], "--max_seq_length": preset["max_seq_length"],
                "--do_lower_case": True, **({"--adaptive_t_conv": True} if adaptive else {}),
                **({"--readout_steps": readouts} if readouts else {})}, inputs=(previous,)))
    return stages


def seeded(stage, seed, preset):
    """The name of a per-seed stage: ``<stage>.seed<seed>`` when the preset has several seeds."""
    return f"{stage}.seed{seed}" if len(preset["seeds"]) > 1 else stage


def flags_of(settings):
    """{"num_train_epochs": 1, "pred_distill": True} -> {"--num_train_epochs": 1, "--pred_distill": True}."""
    return {f"--{key}": value for key, value in settings.items()}


def distillation_stage(name, folder, kind, flags, student, previous, preset, seed, sources):
    """One distillation stage: general KD from the plain teacher (``sources["bert"]``) on the corpus, or a
    task stage with the task teacher on the movie task."""
    common = {"--spiking_student_model": student, "--output_dir": folder, **flags_of(preset["spiking"]),
              **flags_of(flags), "--do_lower_case": True, "--seed": seed, "--keep_checkpoints": 1}
    if kind == "general_kd":
        return Stage(name, folder, "spiking_bert_general_distill.py", {
            "--pregenerated_data": sources["corpus"], "--teacher_model": sources["bert"], **common,
            "--max_seq_length": preset["corpus"]["max_seq_len"]}, inputs=("corpus",) + ((previous,) if previous else ()))
    extra = {"--eval_batch_size": preset["eval_batch_size"]} if flags.get("pred_distill") else {}
    data, inputs = sources["distill"], ("teacher",)
    if flags.get("aug_train"):  # reads train_aug.tsv from the augmentation stage's folder
        data, inputs = sources["augmented"], ("teacher", "augment")
    return Stage(name, folder, "spiking_bert_task_distill.py", {
        "--teacher_model": sources["teacher"], "--data_dir": data, "--task_name": TASK, **common, **extra,
        "--max_seq_length": preset["max_seq_length"]}, inputs=inputs + ((previous,) if previous else ()))


def evaluated_in_training(flags, t_conv):
    """Prediction KD evaluates on the dev set and publishes the best student with that evaluation's files, at
    its training t_conv, with the preset's batch size and sequence length: --do_eval of that student at the
    same t_conv writes the same bytes, so the evaluation stage copies them instead (minutes per seed)."""
    return bool(flags.get("pred_distill")) and flags["t_conv"] == t_conv and not flags.get("adaptive_t_conv")


def copy_evaluation(folder, student):
    """``student``'s evaluation files (results, energy, predictions), which its prediction KD wrote."""
    student = os.path.join(REPO, student)
    names = [name for name in sorted(os.listdir(student))
             if name in (RESULTS_NAME, ENERGY_NAME) or name.endswith(PREDICTIONS_SUFFIX)]
    if RESULTS_NAME not in names:
        raise SystemExit(f"error: {show_path(student)} holds no {RESULTS_NAME} from its dev evaluation")
    with atomic_directory(folder) as tmp:
        for name in names:
            shutil.copy2(os.path.join(student, name), os.path.join(tmp, name))
    logger.info("copied %s from %s (its dev evaluation in training)", ", ".join(names), show_path(student))


def evaluation_plan(preset):
    """(the t_conv values whose evaluation is prediction KD's own, copied; those read out of the eval stage's
    simulation) of the preset's ``eval_t_conv``."""
    copied = [t_conv for t_conv in preset["eval_t_conv"] if evaluated_in_training(final_stage(preset)[1], t_conv)]
    return copied, [t_conv for t_conv in preset["eval_t_conv"] if t_conv not in copied]


def fixed_evaluation_folder(folders, preset, seed, t_conv):
    """The folder of the final student's evaluation at ``t_conv`` (``folders``: stage name -> folder): the copy
    of prediction KD's own, or the eval stage's readout."""
    if t_conv in evaluation_plan(preset)[0]:
        return folders[seeded(f"eval_t{t_conv}", seed, preset)]
    return readout_folder(folders[seeded(EVAL_STAGE, seed, preset)], t_conv)


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
    """The stage_done.json of a stage folder, or None when it has none or one that cannot be read (logged)."""
    path = os.path.join(folder, MARKER_NAME)
    if not os.path.isfile(path):
        return None
    try:
        marker = read_json(path)
    except ValueError as e:
        logger.warning("%s; the stage is done again", e)
        return None
    if not (isinstance(marker, dict) and isinstance(marker.get("settings"), dict)):
        logger.warning("%s: no settings in it; the stage is done again", path)
        return None
    return marker


def unusable_output(folder):
    """Why a finished stage's folder cannot be reused (None when it can): its config.json must be valid JSON
    and its weights complete, as the next stage will load them."""
    try:
        if os.path.isfile(os.path.join(folder, CONFIG_NAME)):
            read_json(os.path.join(folder, CONFIG_NAME))
        if weights_file(folder) is not None:
            load_weights(folder)
    except (ValueError, OSError) as e:
        return str(e)
    return None


def write_json_atomic(path, data):
    write_atomically(path, lambda f: f.write(json.dumps(data, indent=2) + "\n"))


def check_output_folder(folder, flag):
    """file_utils.check_output_folder, its error ending the quick start in one line."""
    try:
        file_utils.check_output_folder(folder, flag)
    except (ValueError, WriteError) as e:
        raise SystemExit(f"error: {e}") from None


def check_run_dir(run_dir):
    """The run folder must be new, empty or an earlier quickstart run (never someone else's folder), and
    writable."""
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not os.path.isfile(os.path.join(run_dir, RUN_RECORD_NAME)):
        raise SystemExit(f"error: --run_dir {run_dir} is not empty and holds no {RUN_RECORD_NAME}; "
                         "choose another --run_dir")
    check_output_folder(run_dir, "--run_dir")


def plan(stages, settings, overwrite):
    """Names of the stages to run; refuses (before anything runs) to mix settings without --overwrite.

    A finished stage is reused only when what it wrote can be read (unusable_output); otherwise it is done
    again, with a warning. A stage folder that a killed quick start had moved aside to redo it is put back
    first, unless the stage was done again.
    """
    to_run = []
    for stage in stages:
        folder = os.path.join(REPO, stage.folder)
        recover_replaced(folder, keep_new=lambda path: read_marker(path) is not None)
        marker = read_marker(folder)
        if marker is None:
            to_run.append(stage.name)
        elif marker["settings"] != settings[stage.name]:
            if not overwrite:
                raise SystemExit(f"error: {stage.folder} was made with other settings "
                                 f"({first_difference(marker['settings'], settings[stage.name])}); "
                                 "choose another --run_dir or pass --overwrite")
            to_run.append(stage.name)
        elif (problem := unusable_output(folder)) is not None:
            logger.warning("[%s] cannot reuse %s (%s); the stage is done again", stage.name, stage.folder, problem)
            to_run.append(stage.name)
    return to_run


# Stage processes run in process groups of their own, so that a Ctrl-C in the terminal reaches the quick start
# alone, which forwards it once to each running stage (interrupt_stages) and waits for them to report and clean
# up. A kill -9 of the quick start runs none of its code: each stage asks the kernel to kill it when the thread
# that started it ends (PR_SET_PDEATHSIG, Linux; the thread waits for its stage, so it ends with the process).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1
_running = set()  # the stage processes running now
_running_lock = threading.Lock()
_interrupted = threading.Event()
_stopped = set()  # names of the stages Ctrl-C stopped


def _die_with_parent(parent):
    """preexec_fn of a stage; two system calls and nothing else, as it runs between fork and exec."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the quick start died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)


def stopped_stages():
    """The stages that Ctrl-C stopped."""
    return sorted(_stopped)


def interrupt_stages():
    """Ctrl-C: send SIGINT to every running stage (each stops with its own one-line report) and start no
    more."""
    _interrupted.set()
    with _running_lock:
        for process in _running:
            process.send_signal(signal.SIGINT)


def run_logged(argv, log_path, threads=None):
    """Run ``argv`` from the repository root; its output goes to ``log_path`` and, unless ``threads``
    (torch threads of a stage run beside others) is given, to the console. Ctrl-C interrupts it
    (interrupt_stages) and, once it has stopped, raises KeyboardInterrupt."""
    if _interrupted.is_set():
        raise KeyboardInterrupt
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    parent = os.getpid()
    with open(log_path, "ab") as log, subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                                       stderr=subprocess.STDOUT, start_new_session=True,
                                                       preexec_fn=lambda: _die_with_parent(parent)) as process:
        with _running_lock:
            _running.add(process)
        try:
            interrupted = False
            while True:
                try:
                    if not (chunk := os.read(process.stdout.fileno(), 65536)):
                        returncode = process.wait()
                        break
                    if not threads:
                        sys.stdout.buffer.write(chunk)
                        sys.stdout.flush()
                    log.write(chunk)
                except KeyboardInterrupt:  # in the main thread (one job): stop the stage, keep its last words
                    interrupt_stages()
                    interrupted = True
        finally:
            with _running_lock:
                _running.discard(process)
        if interrupted or _interrupted.is_set():
            raise KeyboardInterrupt
        return returncode


def run_script(stage, run_dir, threads=None):
    """Log the stage's command line, then run it; its output also goes to logs/<stage>.txt."""
    argv = [sys.executable] + stage.command()
    log_path = os.path.join(run_dir, "logs", f"{stage.name}.txt")
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(argv)}\n")
    logger.info("[%s] %s", stage.name, shlex.join(argv))
    try:
        returncode = run_logged(argv, log_path, threads)
    except KeyboardInterrupt:
        _stopped.add(stage.name)
        raise
    if returncode != 0:
        raise SystemExit(f"error: stage {stage.name} failed (exit code {returncode}); its output is in "
                         f"{show_path(log_path)}")


def prepare_assets(assets, run_dir):
    """prepare_assets.py unless every asset is already in the cache; returns the stage's timing."""
    if (all(os.path.exists(assets[key]) for key in ("teacher", "wiki_corpus"))
            and all(has_current_split(assets[key]) for key in ("movie_sst2", "movie_stsb"))):
        logger.info("[assets] reusing the packaged assets in %s", assets["cache_dir"])
        return {"seconds": 0.0, "reused": True}
    start = time.monotonic()
    run_script(Stage("assets", assets["cache_dir"], "prepare_assets.py", {"--cache_dir": assets["cache_dir"]}),
               run_dir)
    return {"seconds": round(time.monotonic() - start, 1), "reused": False}


def run_stage(stage, settings, run_dir, threads=None):
    """Do a stage into its folder. A folder already there (unfinished, or made with other settings) is moved
    aside and deleted once the stage is done; a stage that fails or is interrupted gets it back."""
    folder = os.path.join(REPO, stage.folder)
    replaced = None
    if os.path.exists(folder):
        logger.info("[%s] replacing %s (unfinished, or made with other settings)", stage.name, stage.folder)
        replaced = FolderReplacement(folder)
    try:
        start = time.monotonic()
        if stage.job is not None:
            logger.info("[%s] writing %s", stage.name, stage.folder)
            stage.job(folder, **stage.job_settings)
        else:
            run_script(stage, run_dir, threads)
        seconds = time.monotonic() - start
        write_json_atomic(os.path.join(folder, MARKER_NAME), {"settings": settings, "seconds": round(seconds, 1),
                                                              "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    except BaseException as e:
        if replaced is not None:
            replaced.rollback()
        if isinstance(e, KeyboardInterrupt) or _interrupted.is_set():
            _stopped.add(stage.name)
        raise
    if replaced is not None:
        replaced.commit()
    logger.info("[%s] done in %.0f s", stage.name, seconds)
    return seconds


def sample_indices(total, count, rng):
    """``count`` of range(``total``) drawn at random, in order; all of them when count is None or >= total."""
    if count is None or count >= total:
        return list(range(total))
    return sorted(rng.sample(range(total), count))


def sample_rows(path, count, rng):
    """Header plus ``count`` data rows drawn at random (file order kept); all rows when count is None."""
    with open(path, encoding="utf-8") as f:
        header, *rows = f.readlines()
    return [header] + [rows[i] for i in sample_indices(len(rows), count, rng)]


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


def teacher_and_distill_rows(path, train_sentences, distill_sentences, rng):
    """(the teacher's rows, the student's rows) of ``path``, each with its header. The teacher's are the rows
    ``sample_rows`` draws; the student's are drawn from them when fewer, else they are all of them plus
    rows drawn from the others, so the smaller set is part of the larger."""
    with open(path, encoding="utf-8") as f:
        header, *rows = f.readlines()
    teacher = sample_indices(len(rows), train_sentences, rng)
    if distill_sentences <= len(teacher):
        student = [teacher[i] for i in sample_indices(len(teacher), distill_sentences, rng)]
    else:
        chosen = set(teacher)
        others = [i for i in range(len(rows)) if i not in chosen]
        student = sorted(teacher + [others[i] for i in sample_indices(len(others), distill_sentences - len(teacher),
                                                                       rng)])
    return tuple([header] + [rows[i] for i in indices] for indices in (teacher, student))


def write_data_slices(folder, movie_sst2, wiki_corpus, seed, train_sentences, dev_sentences, test_sentences,
                      corpus_sentences, distill_sentences=None):
    """``folder``/movie/{train,dev,test}.tsv and ``folder``/corpus.txt (none when ``corpus_sentences`` is 0):
    the preset's slices of the packaged data (the test sentences are held out of the packaged train.tsv, so no
    slice of it can hold them). With ``distill_sentences``, the distillation stages' own training sentences go
    to ``folder``/distill/movie/train.tsv (with the same dev.tsv and test.tsv): the teacher is fine-tuned on its
    own ``train_sentences`` and, in distillation, labels the student's."""
    rng = random.Random(seed)
    train_path, dev_path, test_path = (os.path.join(movie_sst2, f"{split}.tsv") for split in ("train", "dev", "test"))
    if distill_sentences is None:
        task_folders, train_slices = ["movie"], [sample_rows(train_path, train_sentences, rng)]
    else:
        task_folders = ["movie", f"{DISTILL_DATA}/movie"]
        train_slices = teacher_and_distill_rows(train_path, train_sentences, distill_sentences, rng)
    dev_rows = sample_rows(dev_path, dev_sentences, rng)  # drawn after the training rows, as always
    test_rows = sample_rows(test_path, test_sentences, rng)
    with atomic_directory(folder) as tmp:
        for task_folder, train_rows in zip(task_folders, train_slices):
            os.makedirs(os.path.join(tmp, task_folder))
            for split, rows in (("train", train_rows), ("dev", dev_rows), ("test", test_rows)):
                with open(os.path.join(tmp, task_folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
                    f.writelines(rows)
        if corpus_sentences != 0:
            with open(os.path.join(tmp, "corpus.txt"), "w", encoding="utf-8") as f:
                f.write("\n\n".join("\n".join(doc) for doc in corpus_slice(wiki_corpus, corpus_sentences, rng)) + "\n")


def execute(stages, settings, to_run, run_dir, threads=None):
    """Run the planned stages (``plan``) and every stage after a redone input; reuse the others.
    Returns each stage's timing {"seconds", "reused"}."""
    to_run = set(to_run)
    timings = {}
    for stage in stages:
        if stage.name in to_run or any(name in to_run for name in stage.inputs):
            to_run.add(stage.name)
            seconds = run_stage(stage, settings[stage.name], run_dir, threads)
            timings[stage.name] = {"seconds": round(seconds, 1), "reused": False}
        else:
            marker = read_marker(os.path.join(REPO, stage.folder))
            logger.info("[%s] reusing %s (finished %s)", stage.name, stage.folder, marker.get("finished"))
            timings[stage.name] = {"seconds": marker.get("seconds", 0.0), "reused": True}
    return timings


def execute_seeds_side_by_side(stages, settings, to_run, run_dir, jobs):
    """``execute``, with the stages shared by all seeds first and then each seed's chain of stages,
    ``jobs`` chains at a time, each stage with os.cpu_count() // jobs torch threads (its console output
    only in its log). One job runs everything in order with torch's own thread count."""
    if jobs <= 1:
        return execute(stages, settings, to_run, run_dir)
    chains = {}
    for stage in stages:
        chains.setdefault(stage.name.rsplit(".seed", 1)[1] if ".seed" in stage.name else None, []).append(stage)
    timings = execute(chains.pop(None, []), settings, to_run, run_dir)
    redone = set(to_run) | {name for name, timing in timings.items() if not timing["reused"]}
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        runs = [pool.submit(execute, chain, settings, redone, run_dir, threads) for chain in chains.values()]
        try:
            for run in runs:
                timings.update(run.result())
        except KeyboardInterrupt:  # reaches the main thread only: stop the stages, then wait for them
            interrupt_stages()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return timings

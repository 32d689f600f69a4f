"""Runs interrupted (kill -9, Ctrl-C), replaced (--overwrite) or short of disk: what each keeps and removes.

Saves killed with SIGKILL midway: resuming and pruning remove what they left. Every entry script: a bad
flag with --overwrite leaves a finished run as it was; a full or read-only disk is one line naming the
path; Ctrl-C is one line saying where the run stopped and how to go on; nothing half-written stays.
"""
import gc
import glob
import json
import os
import pkgutil
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import torch

import data_augmentation
import finetune_teacher
import preprocess_training_data
import spiking_bert_general_distill as general
import spiking_bert_task_distill as task
from distill.checkpointing import (TRAINING_STATE_NAME, list_checkpoints, load_training_state, prune_checkpoints,
                                   publish_student, resume_point, save_checkpoint)
from distill.evaluation import RESULTS_NAME
from distill.runs import check_output_dir
from distill_fixtures import (REPO, augmentation_args, finetune_args, general_args, last_line, load_state,
                              max_abs_difference, one_line_exit, preprocess_args, run_script, script_inputs,
                              snapshot, task_args, teacher_config, write_task, write_vocab)
from pipeline.stages import MARKER_NAME, RUN_RECORD_NAME, Stage, run_stage
from transformer.checkpoint import REPLACEMENT_OWNER_NAME, FolderReplacement, recover_replaced
from transformer.file_utils import UMASK, write_atomically
from transformer.modeling import BertModel


def kill_this_process(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def killed(action, target, on_call=1):
    """Run ``action`` in a forked child that SIGKILLs itself at its ``on_call``-th call of ``target``."""
    calls = []
    real = pkgutil.resolve_name(target)

    def call_or_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == on_call:
            kill_this_process()
        return real(*args, **kwargs)

    pid = os.fork()
    if pid == 0:
        try:
            with mock.patch(target, call_or_die):
                action()
        finally:
            os._exit(1)  # never back into pytest; a child that was not killed is reported below
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the child was not killed"


@pytest.fixture
def run(tmp_path):
    """An output folder with checkpoints at steps 2 and 4 of a tiny model, and how to save more."""
    torch.manual_seed(0)
    model = BertModel(teacher_config())
    vocab = write_vocab(str(tmp_path / "vocab.txt"))
    output_dir = tmp_path / "out"
    output_dir.mkdir()

    def save(step, overwrite=False):
        with torch.no_grad():
            model.embeddings.word_embeddings.weight.fill_(step)  # the step can be read back from the weights
        return save_checkpoint(str(output_dir), step, model, vocab, {"global_step": step}, overwrite=overwrite)

    save(2)
    save(4)
    return {"output_dir": output_dir, "model": model, "vocab": vocab, "save": save}


def leftovers(output_dir):
    """Hidden entries of ``output_dir`` without tempfile's random suffix ("-" and 8 characters)."""
    return sorted(name.rsplit("-", 1)[0] for name in os.listdir(output_dir) if name.startswith("."))


def assert_checkpoint_of_step(path, step):
    assert load_training_state(path)["global_step"] == step
    assert load_state(path)["embeddings.word_embeddings.weight"].eq(step).all()


def test_resume_removes_a_checkpoint_killed_while_written(run):
    out = run["output_dir"]
    killed(lambda: run["save"](6), "torch.save")  # the training state is the last file of a checkpoint
    assert leftovers(out) == [".checkpoint-step6.tmp"]
    assert resume_point(str(out), True)[0] == str(out / "checkpoint-step4")
    assert leftovers(out) == []
    assert [os.path.basename(p) for p in list_checkpoints(str(out))] == ["checkpoint-step2", "checkpoint-step4"]
    assert_checkpoint_of_step(out / "checkpoint-step4", 4)


def test_resume_restores_a_checkpoint_moved_aside_by_a_killed_overwrite(run):
    out = run["output_dir"]
    # Replacing checkpoint-step4: killed after moving the old one aside, before renaming the new one in.
    killed(lambda: run["save"](4, overwrite=True), "os.rename", on_call=2)
    assert not (out / "checkpoint-step4").exists()
    assert leftovers(out) == [".checkpoint-step4.old", ".checkpoint-step4.tmp"]
    assert resume_point(str(out), True)[0] == str(out / "checkpoint-step4")
    assert leftovers(out) == []
    assert_checkpoint_of_step(out / "checkpoint-step4", 4)
    assert sorted(os.listdir(out / "checkpoint-step4")) == sorted(
        ["config.json", "model.safetensors", "vocab.txt", TRAINING_STATE_NAME])


def test_pruning_removes_killed_student_and_results_writes(run):
    out = run["output_dir"]
    killed(lambda: publish_student(str(out), run["model"], run["vocab"]), "os.replace")
    killed(lambda: write_atomically(str(out / RESULTS_NAME), lambda f: f.write("step = 4\n")), "os.replace")
    killed(lambda: run["save"](6), "torch.save")
    assert leftovers(out) == [".checkpoint-step6.tmp", ".eval_results.txt.tmp", ".student.tmp"]
    notes = out / ".notes.tmp-mine"  # a user's hidden file that only looks alike
    notes.write_text("keep")
    run["save"](8)
    prune_checkpoints(str(out), keep=2)
    assert leftovers(out) == [".notes.tmp"] and notes.read_text() == "keep"
    assert [os.path.basename(p) for p in list_checkpoints(str(out))] == ["checkpoint-step4", "checkpoint-step8"]
    assert_checkpoint_of_step(out / "checkpoint-step8", 8)


def test_fresh_start_leaves_the_folder_alone(run):
    out = run["output_dir"]
    killed(lambda: run["save"](6), "torch.save")
    assert resume_point(str(out), False) == (None, None)
    assert leftovers(out) == [".checkpoint-step6.tmp"]


# ----------------------------------------------------------------------------
# The entry scripts on tiny inputs.

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return script_inputs(tmp_path_factory.mktemp("inputs"))


def hidden_leftovers(folder):
    """What a run may have left beside or inside ``folder``: hidden entries (temporaries, folders set aside)."""
    parent = os.path.dirname(os.path.abspath(folder))
    return sorted(glob.glob(os.path.join(parent, ".*")) + glob.glob(os.path.join(folder, ".*")))


# script -> (main, its arguments, a bad flag checked before anything is written, the error it gives)
OVERWRITE_CASES = {
    "task": (task.main, task_args, ["--warmup_proportion", "nan"],
             "--warmup_proportion must be in [0, 1) (or -1: no warm-up), got nan"),
    "general": (general.main, general_args, ["--learning_rate", "-1"],
                "--learning_rate must be a finite number >= 0, got -1.0"),
    "finetune": (finetune_teacher.main, finetune_args, ["--learning_rate", "nan"],
                 "--learning_rate must be a finite number >= 0, got nan"),
    "preprocess": (preprocess_training_data.main, preprocess_args, ["--masked_lm_prob", "nan"],
                   "--masked_lm_prob must be in [0, 1], got nan"),
    "augmentation": (data_augmentation.main, augmentation_args, ["--p", "nan"], "--p must be in [0, 1], got nan"),
}


@pytest.mark.parametrize("name", OVERWRITE_CASES)
def test_overwrite_with_a_bad_flag_keeps_the_finished_run(inputs, tmp_path, name):
    main, arguments, bad_flag, error = OVERWRITE_CASES[name]
    out = tmp_path / "out"
    main(arguments(inputs, out))
    finished = snapshot(out)
    assert finished
    assert one_line_exit(main, arguments(inputs, out, "--overwrite", *bad_flag)) == f"error: {error}"
    assert snapshot(out) == finished and hidden_leftovers(out) == []


def test_quickstart_overwrite_with_a_bad_flag_keeps_the_run(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "teacher").mkdir(parents=True)
    (run_dir / RUN_RECORD_NAME).write_text(json.dumps({"preset": "smoke"}))
    (run_dir / "teacher" / MARKER_NAME).write_text(json.dumps({"settings": {"command": ["finetune_teacher.py"]}}))
    (run_dir / "teacher" / "model.safetensors").write_bytes(b"weights")
    finished = snapshot(run_dir)
    result = run_script("quickstart.py", "--smoke", "--run_dir", run_dir, "--overwrite", "--jobs", "-1")
    assert result.returncode == 1 and result.stderr == "error: --jobs must be at least 1, got -1\n"
    assert snapshot(run_dir) == finished


def test_overwrite_that_fails_before_its_first_checkpoint_puts_the_old_run_back(inputs, tmp_path):
    """The old folder waits aside until the new run's first checkpoint: a failure found only while training (a
    bad line of the epoch file, a diverging loss) gets it back; a stage of the quick start does the same."""
    out = tmp_path / "out"
    general.main(general_args(inputs, out))
    finished = snapshot(out)
    bad_data = tmp_path / "bad_data"
    shutil.copytree(inputs["pregenerated"], bad_data)
    with open(bad_data / "epoch_0.json", "a", encoding="utf-8") as f:
        f.write(json.dumps({"tokens": ["[CLS]", "zebra", "[SEP]"], "segment_ids": [0, 0, 0]}) + "\n")
    metrics = json.loads((bad_data / "epoch_0_metrics.json").read_text())
    (bad_data / "epoch_0_metrics.json").write_text(json.dumps({**metrics, "num_training_examples": 9}))
    message = one_line_exit(general.main, general_args(inputs, out, "--overwrite", "--pregenerated_data",
                                                        str(bad_data)))
    assert message.endswith("line 9: token 'zebra' is not in the teacher's vocab")
    assert snapshot(out) == finished and hidden_leftovers(out) == []

    stage_folder = tmp_path / "stage"
    stage_folder.mkdir()
    (stage_folder / MARKER_NAME).write_text(json.dumps({"settings": {"old": True}}))
    before = snapshot(stage_folder)

    def failing_job(folder):
        os.makedirs(folder)
        raise ValueError("the stage failed")

    with pytest.raises(ValueError, match="the stage failed"):
        run_stage(Stage("stage", str(stage_folder), job=failing_job, job_settings={}), {"new": True}, str(tmp_path))
    assert snapshot(stage_folder) == before and hidden_leftovers(stage_folder) == []

    # The script a stage runs checks its output folder as any run does: it must not take the stage's own
    # replacement, still running, for one that a kill interrupted (it once put the old folder back, then refused
    # it as not empty, and the stage's rollback deleted it).
    def job_checking_its_folder(folder, fail):
        check_output_dir(folder)
        os.makedirs(folder)
        if fail:
            raise ValueError("the stage failed")
        (Path(folder) / "new.txt").write_text("new")

    with pytest.raises(ValueError, match="the stage failed"):
        run_stage(Stage("stage", str(stage_folder), job=job_checking_its_folder, job_settings={"fail": True}),
                  {"new": True}, str(tmp_path))
    assert snapshot(stage_folder) == before and hidden_leftovers(stage_folder) == []
    run_stage(Stage("stage", str(stage_folder), job=job_checking_its_folder, job_settings={"fail": False}),
              {"new": True}, str(tmp_path))
    assert (stage_folder / "new.txt").read_text() == "new" and hidden_leftovers(stage_folder) == []


def test_a_folder_moved_aside_by_a_process_that_died_is_put_back(tmp_path):
    """A replacement is the running process's own while it runs; once that process is gone (killed), the next
    run puts the old folder back."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "model.safetensors").write_text("old")
    replacement = FolderReplacement(str(folder))
    recover_replaced(str(folder), keep_new=lambda path: False)
    assert not folder.exists(), "a running replacement was taken for an interrupted one"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = Path(replacement.aside) / REPLACEMENT_OWNER_NAME
    owner.write_text(json.dumps({**json.loads(owner.read_text()), "pid": int(dead.stdout)}))
    recover_replaced(str(folder), keep_new=lambda path: False)
    assert (folder / "model.safetensors").read_text() == "old" and hidden_leftovers(folder) == []
    replacement.rollback()  # finds it back already: leaves it
    assert (folder / "model.safetensors").read_text() == "old" and hidden_leftovers(folder) == []


def exceed_file_size(limit):
    """preexec_fn: files may not grow past ``limit`` bytes, as on a disk that is full (write fails with EFBIG)."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_the_last_checkpoint_stays(inputs, tmp_path):
    out = tmp_path / "out"
    task.main(task_args(inputs, out, "--num_train_epochs", "2", "--max_steps", "2"))
    kept = snapshot(out / "checkpoint-step2")
    state_size = os.path.getsize(out / "checkpoint-step2" / TRAINING_STATE_NAME)
    # Room for the published weights and the log, not for the next training state.
    result = run_script("spiking_bert_task_distill.py", *task_args(inputs, out, "--num_train_epochs", "2",
                                                                    "--continue_train"),
                        preexec_fn=exceed_file_size(state_size - 1))
    assert result.returncode == 1, result.stderr[-2000:]
    assert re.fullmatch(rf"error: {re.escape(str(out))}/checkpoint-step4/{TRAINING_STATE_NAME}: cannot write it "
                        r"\(is the disk full\? torch: .*\)", last_line(result))
    assert "Traceback" not in result.stderr
    assert snapshot(out / "checkpoint-step2") == kept and list_checkpoints(str(out)) == [str(out / "checkpoint-step2")]
    assert hidden_leftovers(out) == []

    # A disk full from the start: log.txt is given up with one warning (not a traceback per log record), the
    # first file of the run is named, and the new folder is removed again.
    fresh = tmp_path / "fresh"
    result = run_script("spiking_bert_task_distill.py", *task_args(inputs, fresh), preexec_fn=exceed_file_size(1500))
    assert result.returncode == 1 and "Traceback" not in result.stderr and "Logging error" not in result.stderr
    warning, error = [line for line in result.stderr.splitlines() if line.startswith(("warning: ", "error: "))]
    assert warning == f"warning: cannot write {fresh}/log.txt ([Errno 27] File too large); logging to the console only"
    assert error.startswith(f"error: {fresh}/model.safetensors: cannot write it (") and error == last_line(result)
    assert not fresh.exists()


needs_unprivileged_runs = pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                                             reason="root ignores a read-only mode without setpriv")


@needs_unprivileged_runs
@pytest.mark.parametrize("script, arguments", [("spiking_bert_task_distill.py", task_args),
                                               ("finetune_teacher.py", finetune_args),
                                               ("preprocess_training_data.py", preprocess_args)])
def test_a_read_only_output_folder_is_one_line_before_anything_runs(inputs, tmp_path, script, arguments):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = run_script(script, *arguments(inputs, out), unprivileged=True)
    finally:
        out.chmod(0o755)
    assert result.returncode == 1
    assert result.stderr == f"error: --output_dir {out}: cannot write into {out} (read-only or no permission)\n"
    assert os.listdir(out) == []


def test_quickstart_run_dir_naming_a_file_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_script("quickstart.py", "--smoke", "--run_dir", tmp_path / "notes.txt")
    assert result.returncode == 1
    assert result.stderr == f"error: --run_dir {tmp_path / 'notes.txt'} exists and is not a folder\n"
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_damaged_training_state_falls_back_to_the_checkpoint_before(inputs, tmp_path, caplog):
    full, out = tmp_path / "full", tmp_path / "out"
    general.main(general_args(inputs, full, "--num_train_epochs", "3"))
    general.main(general_args(inputs, out, "--num_train_epochs", "3", "--max_steps", "4"))
    damaged = out / "checkpoint-step4" / TRAINING_STATE_NAME
    damaged.write_bytes(damaged.read_bytes()[:1000])
    general.main(general_args(inputs, out, "--num_train_epochs", "3", "--continue_train"))
    assert f"{damaged}: corrupt or truncated" in caplog.text and "resuming from the checkpoint before it" in caplog.text
    assert f"resuming from {out / 'checkpoint-step2'} at step 2" in (out / "log.txt").read_text()
    # The run went on from step 2 as if never stopped.
    assert max_abs_difference(load_state(str(out)), load_state(str(full))) < 1e-6

    named = out / "checkpoint-step6" / TRAINING_STATE_NAME
    named.write_bytes(b"not a training state")
    message = one_line_exit(general.main, general_args(inputs, out, "--num_train_epochs", "3", "--continue_train",
                                                       str(out / "checkpoint-step6")))
    assert message.startswith(f"error: {named}: corrupt or truncated")


def write_glove(path):
    from distill_fixtures import VOCAB
    path.write_text("".join(f"{word} {i % 3} {i % 5} 1.0\n" for i, word in enumerate(VOCAB[5:])))
    return path


def interruptible():
    """In the child before exec: Ctrl-C's default action, which Python turns into KeyboardInterrupt. A suite run in
    the background (``cmd &``) inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_data_augmentation_interrupted_between_rows_prints_its_line_last(inputs, tmp_path, capsys):
    # Ctrl-C while the writer holds a row (outside the generator that draws the progress bar): the bar is closed
    # before the "interrupted" line, which stays the last line even once the stopped generator is collected.
    def write_some_then_interrupt(path, lines):
        for _ in range(3):
            next(iter(lines))
        raise KeyboardInterrupt

    with mock.patch.object(data_augmentation, "write_lines", write_some_then_interrupt), \
            pytest.raises(SystemExit) as stopped:
        data_augmentation.main(augmentation_args(inputs, tmp_path / "out"))
    assert stopped.value.code == 130
    del stopped
    gc.collect()
    err = capsys.readouterr().err
    assert "augmenting" in err
    assert err.strip().splitlines()[-1] == ("interrupted: train_aug.tsv was not written (nothing is kept); "
                                            "rerun the same command")


def test_preprocessing_interrupted_between_instances_prints_its_line_last(inputs, tmp_path, capsys):
    # The same for the corpus pregeneration's epoch bar.
    def write_some_then_interrupt(path, lines):
        next(iter(lines))
        raise KeyboardInterrupt

    out = tmp_path / "corpus"
    with mock.patch("corpus.pregeneration.write_lines", write_some_then_interrupt), \
            pytest.raises(SystemExit) as stopped:
        preprocess_training_data.main(preprocess_args(inputs, out))
    assert stopped.value.code == 130
    del stopped
    gc.collect()
    err = capsys.readouterr().err
    assert "epoch 0" in err
    assert err.strip().splitlines()[-1] == f"interrupted: {out} was left as it was; rerun the same command"


def test_data_augmentation_checks_before_the_work_and_leaves_nothing_half_written(inputs, tmp_path):
    # Default candidates on truncated weights: one line naming the file.
    mlm = tmp_path / "mlm"
    shutil.copytree(inputs["teacher"], mlm)
    (mlm / "model.safetensors").write_bytes((mlm / "model.safetensors").read_bytes()[:500])
    args = ["--pretrained_bert_model", str(mlm), "--glove_embs", str(write_glove(tmp_path / "glove.txt")),
            "--glue_dir", inputs["glue"], "--task_name", "SST-2", "--output_dir", str(tmp_path / "out")]
    message = one_line_exit(data_augmentation.main, args)
    assert message.startswith(f"error: {mlm / 'model.safetensors'}: corrupt or truncated safetensors file")

    # Many sentences, so that the run is still writing when it is stopped.
    glue = tmp_path / "glue"
    write_task(str(glue / "SST-2"), "sst-2", train=20000, dev=2)
    out = tmp_path / "augmented"
    argv = [sys.executable, "data_augmentation.py", *augmentation_args(inputs, out, "--glue_dir", str(glue),
                                                                       "--N", "20")]
    for stop in (signal.SIGINT, signal.SIGKILL):
        process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=interruptible)
        while not glob.glob(str(out / ".train_aug.tsv.tmp-*")):
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=60)
        if stop == signal.SIGINT:
            assert process.returncode == 130 and "Traceback" not in stderr
            assert stderr.strip().splitlines()[-1] == ("interrupted: train_aug.tsv was not written (nothing is kept); "
                                                      "rerun the same command")
            assert os.listdir(out) == []
    assert [os.path.basename(p)[:-8] for p in hidden_leftovers(out)] == [".train_aug.tsv.tmp-"]  # after kill -9
    # The next run removes what the killed one left.
    data_augmentation.main(augmentation_args(inputs, out))
    assert sorted(os.listdir(out)) == ["dev.tsv", "test.tsv", "train_aug.tsv"]

    # A read-only task folder: refused before the work (no progress bar), nothing written.
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return
    task_dir = glue / "SST-2"
    task_dir.chmod(0o555)
    try:
        result = run_script("data_augmentation.py", "--pretrained_bert_model", inputs["teacher"], "--candidates",
                            "embedding", "--glue_dir", glue, "--task_name", "SST-2", unprivileged=True)
    finally:
        task_dir.chmod(0o755)
    assert result.returncode == 1 and "augmenting" not in result.stderr
    assert last_line(result) == (f"error: the task folder {task_dir}: cannot write into {task_dir} (read-only or no "
                                 "permission)")
    assert sorted(os.listdir(task_dir)) == ["dev.tsv", "train.tsv"]


def wait_for(condition, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_ctrl_c_stops_a_training_run_with_one_line_and_it_resumes(inputs, tmp_path):
    out = tmp_path / "out"
    argv = task_args(inputs, out, "--num_train_epochs", "500")
    process = subprocess.Popen([sys.executable, "spiking_bert_task_distill.py", *argv], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    wait_for(lambda: list_checkpoints(str(out)), process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    match = re.fullmatch(r"interrupted at step (\d+); the last checkpoint is (.*checkpoint-step(\d+)): rerun with "
                         r"--continue_train to resume from it", last)
    assert match, last
    assert match.group(2) == list_checkpoints(str(out))[-1] and int(match.group(3)) <= int(match.group(1))
    task.main(argv + ["--continue_train", "--max_steps", str(int(match.group(3)) + 1)])
    assert f"resuming from {match.group(2)}" in (out / "log.txt").read_text()


def children(pid):
    """Processes whose parent is ``pid``."""
    found = []
    for stat_file in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat_file) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat_file.split("/")[2]))
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_stops_the_quickstart_and_its_stage_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "quickstart.py", "--smoke", "--run_dir", str(run_dir)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    wait_for(lambda: children(process.pid), process, timeout=600)
    stage = children(process.pid)[0]
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert re.fullmatch(r"interrupted during \S+; the finished stages are kept: rerun the same command to go on "
                        r"\(an unfinished stage starts again\)", stderr.strip().splitlines()[-1]), stderr[-2000:]
    assert not alive(stage)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_stage_dies_with_a_killed_quickstart(tmp_path):
    """kill -9 of the quick start runs none of its code; its stage (here one that prints nothing, so no broken
    pipe would stop it either) must not run on as an orphan."""
    code = ("import sys; from pipeline.stages import run_logged; "
            "run_logged([sys.executable, '-c', 'import time; time.sleep(300)'], sys.argv[1])")
    process = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "log.txt")], cwd=REPO)
    wait_for(lambda: children(process.pid), process)
    stage = children(process.pid)[0]
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while alive(stage) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(stage)


def test_result_files_have_the_mode_of_the_weights(inputs, tmp_path):
    out, student = tmp_path / "out", tmp_path / "student"
    shutil.copytree(inputs["student"], student)
    write_vocab(str(student / "vocab.txt"))
    task.main(task_args(inputs, out, "--pred_distill", "--train_true_labels", "--spiking_student_model", str(student)))
    expected = 0o666 & ~UMASK
    for name in ("model.safetensors", "eval_results.txt", "energy.json", "sst-2_dev_predictions.tsv",
                 "test_predictions.tsv", "config.json"):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == expected, name
    written = tmp_path / "written.txt"
    write_atomically(str(written), lambda f: f.write("x"))
    assert stat.S_IMODE(os.stat(written).st_mode) == expected


def test_failed_or_killed_pregeneration_and_general_kd_leave_nothing_behind(inputs, tmp_path):
    out = tmp_path / "out"
    # A corpus without text, or not UTF-8: one line, and the folder is not left behind for the corrected rerun.
    for name, content in (("empty.txt", b"\n\n"), ("binary.txt", b"the dog\n\xa3\xff\n")):
        (tmp_path / name).write_bytes(content)
        one_line_exit(preprocess_training_data.main, preprocess_args(inputs, out, "--train_corpus",
                                                                      str(tmp_path / name)))
        assert not out.exists()
    # Killed while writing with --reduce_memory: its scratch folder (tokenized documents, log) stays until the
    # next run, which then needs no --overwrite.
    killed(lambda: preprocess_training_data.main(preprocess_args(inputs, out, "--reduce_memory")),
           "corpus.pregeneration.write_lines")
    assert [os.path.basename(p)[:-8] for p in hidden_leftovers(out)] == [".pregeneration-"]
    preprocess_training_data.main(preprocess_args(inputs, out, "--epochs_to_generate", "3"))
    assert sorted(os.listdir(out)) == ["epoch_0.json", "epoch_0_metrics.json", "epoch_1.json", "epoch_1_metrics.json",
                                       "epoch_2.json", "epoch_2_metrics.json", "preprocess.log"]
    # --overwrite with fewer epochs: the earlier corpus's later epochs go (general KD would read them); others stay.
    (out / "notes.txt").write_text("mine")
    preprocess_training_data.main(preprocess_args(inputs, out, "--overwrite"))
    assert sorted(os.listdir(out)) == ["epoch_0.json", "epoch_0_metrics.json", "notes.txt", "preprocess.log"]

    # General KD killed with --reduce_memory leaves its memory-mapped arrays; the next run removes them.
    run = tmp_path / "general"
    argv = [sys.executable, "spiking_bert_general_distill.py", *general_args(inputs, run, "--reduce_memory",
                                                                               "--num_train_epochs", "500")]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Each epoch's arrays exist only while it trains: kill once a checkpoint and the arrays are both there (a
    # kill in the short gap between two epochs leaves nothing to clean; the loop below waits for a later epoch).
    wait_for(lambda: list_checkpoints(str(run)), process)
    for _ in range(3):
        wait_for(lambda: glob.glob(str(run / ".pregenerated-*")), process)
        os.kill(process.pid, signal.SIGSTOP)  # frozen: the arrays seen are the ones the kill leaves
        if glob.glob(str(run / ".pregenerated-*")):
            break
        os.kill(process.pid, signal.SIGCONT)
    process.kill()
    process.communicate()
    assert glob.glob(str(run / ".pregenerated-*"))
    general.main(general_args(inputs, run, "--reduce_memory", "--num_train_epochs", "500", "--continue_train",
                              "--max_steps", "3"))
    assert not glob.glob(str(run / ".pregenerated-*"))

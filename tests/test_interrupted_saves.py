"""Saves killed with SIGKILL (as by kill -9) midway: resuming and pruning remove what they left."""
import os
import pkgutil
import signal
from unittest import mock

import pytest
import torch

from distill.checkpointing import (TRAINING_STATE_NAME, list_checkpoints, load_training_state, prune_checkpoints,
                                   publish_student, resolve_resume, save_checkpoint)
from distill.evaluation import RESULTS_NAME, write_text_atomic
from distill_fixtures import load_state, teacher_config, write_vocab
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
    assert resolve_resume(str(out), True) == str(out / "checkpoint-step4")
    assert leftovers(out) == []
    assert [os.path.basename(p) for p in list_checkpoints(str(out))] == ["checkpoint-step2", "checkpoint-step4"]
    assert_checkpoint_of_step(out / "checkpoint-step4", 4)


def test_resume_restores_a_checkpoint_moved_aside_by_a_killed_overwrite(run):
    out = run["output_dir"]
    # Replacing checkpoint-step4: killed after moving the old one aside, before renaming the new one in.
    killed(lambda: run["save"](4, overwrite=True), "os.rename", on_call=2)
    assert not (out / "checkpoint-step4").exists()
    assert leftovers(out) == [".checkpoint-step4.old", ".checkpoint-step4.tmp"]
    assert resolve_resume(str(out), True) == str(out / "checkpoint-step4")
    assert leftovers(out) == []
    assert_checkpoint_of_step(out / "checkpoint-step4", 4)
    assert sorted(os.listdir(out / "checkpoint-step4")) == sorted(
        ["config.json", "model.safetensors", "vocab.txt", TRAINING_STATE_NAME])


def test_pruning_removes_killed_student_and_results_writes(run):
    out = run["output_dir"]
    killed(lambda: publish_student(str(out), run["model"], run["vocab"]), "os.replace")
    killed(lambda: write_text_atomic(str(out / RESULTS_NAME), "step = 4\n"), "os.replace")
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
    assert resolve_resume(str(out), False) is None
    assert leftovers(out) == [".checkpoint-step6.tmp"]

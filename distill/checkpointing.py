"""Checkpoints that are complete student folders plus the state needed to resume training.

``output_dir/checkpoint-step{N}/`` holds config.json, model.safetensors and vocab.txt
(loadable like any student) and ``training_state.pt``: optimizer state (which carries
the learning-rate schedule position), step counters, the data position and every
rank's RNG states. RNG states are stored as tensors and plain Python values, so the
file is read with ``torch.load(..., weights_only=True)``. Each checkpoint folder is
written under a temporary name and renamed into place.
"""
import logging
import os
import random
import re
import shutil
import tempfile

import numpy as np
import torch

from transformer.checkpoint import (CONFIG_NAME, TORCH_LOAD_ERRORS, VOCAB_NAME, WEIGHTS_NAME, remove_interrupted_writes,
                                   save_model_dir, weight_names, write_model_files)
from transformer.file_utils import WriteError, write_errors

logger = logging.getLogger(__name__)

TRAINING_STATE_NAME = "training_state.pt"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-step(\d+)$")


def checkpoint_dir(output_dir, step):
    return os.path.join(output_dir, f"checkpoint-step{step}")


def capture_rng():
    """This process's RNG states (torch CPU, every CUDA device, Python, NumPy) as plain data."""
    _, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
    }


def restore_rng(state):
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["key"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))


def save_checkpoint(output_dir, step, model, vocab_file, training_state, overwrite=False):
    """Write ``checkpoint-step{step}`` atomically; ``training_state`` must hold plain data and tensors.
    A full or unwritable disk is a WriteError naming the file; earlier checkpoints stay as they were."""
    target = checkpoint_dir(output_dir, step)

    def write_training_state(tmp_dir):
        path = os.path.join(tmp_dir, TRAINING_STATE_NAME)
        with write_errors(os.path.join(target, TRAINING_STATE_NAME)):
            try:
                torch.save(training_state, path)
            except RuntimeError as e:  # torch's writer reports a failed write as "unexpected pos ..."
                raise WriteError(f"{os.path.join(target, TRAINING_STATE_NAME)}: cannot write it (is the disk "
                                 f"full? torch: {str(e).splitlines()[0]})") from None

    save_model_dir(target, model.state_dict(), model.config.to_dict(), vocab_file=vocab_file,
                   overwrite=overwrite, extra=write_training_state)
    return target


def load_training_state(checkpoint):
    """The training state of a checkpoint folder; a missing, truncated or corrupt file is a one-line
    FileNotFoundError or ValueError naming it."""
    path = os.path.join(checkpoint, TRAINING_STATE_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{checkpoint}: no {TRAINING_STATE_NAME}; not a resumable checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as e:
        raise ValueError(f"{path}: corrupt or truncated ({type(e).__name__}); not a resumable checkpoint") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a training state (a {type(state).__name__}); not a resumable checkpoint")
    return state


def load_resumable(checkpoint):
    """The training state of a checkpoint whose weights are readable too (ValueError naming the bad file)."""
    state = load_training_state(checkpoint)
    weight_names(checkpoint)
    return state


def list_checkpoints(output_dir):
    """Resumable checkpoint folders in ``output_dir``, oldest step first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = CHECKPOINT_PATTERN.match(name)
        path = os.path.join(output_dir, name)
        if match and os.path.isfile(os.path.join(path, TRAINING_STATE_NAME)):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def resume_point(output_dir, continue_train):
    """(checkpoint folder to resume from, its training state), or (None, None) to start fresh.

    ``continue_train`` is True (the latest complete checkpoint in ``output_dir``) or a path given
    with the flag; a given path must be a resumable checkpoint. Temporaries of saves that a
    kill interrupted are removed from ``output_dir`` first. A damaged newer checkpoint (its
    training state or weights unreadable) is deleted with a warning and the one before it is used.
    """
    if not continue_train:
        return None, None
    if os.path.isdir(output_dir):
        remove_interrupted_writes(output_dir)
    if continue_train is not True:
        return continue_train, load_resumable(continue_train)
    for checkpoint in reversed(list_checkpoints(output_dir)):
        try:
            return checkpoint, load_resumable(checkpoint)
        except (ValueError, FileNotFoundError) as e:  # FileNotFoundError: another rank deleted it first
            logger.warning("%s; deleting %s and resuming from the checkpoint before it", e, checkpoint)
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None, None


def prune_checkpoints(output_dir, keep):
    """Delete all but the newest ``keep`` checkpoint folders (keep <= 0 keeps all) and what
    interrupted saves left in ``output_dir``."""
    remove_interrupted_writes(output_dir)
    if keep <= 0:
        return
    for path in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path)
        logger.info("removed old checkpoint %s", path)


def publish_student(output_dir, model, vocab_file):
    """Put the student's config, weights and vocab at the top level of ``output_dir``.

    The files are written into a temporary folder first and each is moved into place
    with an atomic rename, so a reader sees either the old or the new file.
    """
    tmp = tempfile.mkdtemp(prefix=".student.tmp-", dir=output_dir)
    try:
        write_model_files(tmp, model.state_dict(), model.config.to_dict(), vocab_file, target=output_dir)
        for name in (WEIGHTS_NAME, VOCAB_NAME, CONFIG_NAME):
            if os.path.exists(os.path.join(tmp, name)):
                os.replace(os.path.join(tmp, name), os.path.join(output_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

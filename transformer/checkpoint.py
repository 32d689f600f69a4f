"""Model directories on disk: read weights safely, write whole directories atomically.

A model directory holds ``config.json``, ``model.safetensors`` (or a legacy
``pytorch_model.bin``) and ``vocab.txt``. Every writer here builds the directory
under a temporary name beside the target and renames it into place, so a reader
never sees a half-written checkpoint; ``remove_interrupted_writes`` clears what a
writer killed midway left beside it.
"""
import json
import logging
import os
import pickle
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from transformer.file_utils import UMASK, WriteError, write_errors

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"
VOCAB_NAME = "vocab.txt"

# What the atomic writers leave behind when killed (atomic_directory, and any writer that makes its
# temporary with the prefix ".NAME.tmp-"): ".NAME.tmp-XXXXXXXX" (file or folder, never published) and
# ".NAME.old-XXXXXXXX/d" (a replaced folder moved aside), XXXXXXXX being tempfile's random part.
INTERRUPTED_WRITE_PATTERN = re.compile(r"^\.(?P<target>.+)\.(?P<kind>tmp|old)-[a-z0-9_]{8}$")
MOVED_ASIDE_NAME = "d"
# A folder that a run replaces (--overwrite) waits beside it as ".NAME.replaced-XXXXXXXX/d" until the new one
# holds something worth keeping (FolderReplacement).
REPLACED_PATTERN = re.compile(r"^\.(?P<target>.+)\.replaced-[a-z0-9_]{8}$")
# Beside "d", the replacing process's host and pid: a replacement whose process still runs is its own (a
# quick start's stage replaces the folder that the script it runs then checks), not one a kill interrupted.
REPLACEMENT_OWNER_NAME = "owner.json"
# Scratch folders a run keeps in its output folder while it runs (pregenerated data in memory-mapped files,
# tokenized documents, a corpus being pregenerated); one a killed run left is removed when the next run starts.
SCRATCH_PATTERN = re.compile(r"^\.(pregenerated|documents|pregeneration)-[a-z0-9_]{8}$")
# Exceptions torch.load raises on a truncated or corrupt file.
TORCH_LOAD_ERRORS = (RuntimeError, OSError, EOFError, pickle.UnpicklingError, ValueError)


def weights_file(model_dir):
    """Path of the weights file in ``model_dir`` or None when it has none."""
    for name in (WEIGHTS_NAME, LEGACY_WEIGHTS_NAME):
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return path
    return None


def load_weights(model_dir):
    """State dict of ``model_dir``; safetensors first, then a pickle read with weights_only.

    A truncated or corrupt file is a one-line ValueError naming it.
    """
    path = weights_file(model_dir)
    if path is None:
        raise FileNotFoundError(f"{model_dir}: no {WEIGHTS_NAME} or {LEGACY_WEIGHTS_NAME} found")
    if path.endswith(".safetensors"):
        try:
            return load_file(path)
        except SafetensorError as e:
            raise ValueError(f"{path}: corrupt or truncated safetensors file ({e})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as e:
        # torch's messages run over many lines and suggest weights_only=False: only the type is kept.
        raise ValueError(f"{path}: corrupt or truncated PyTorch weights file ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, found {type(state).__name__}")
    return state


def weight_shapes(model_dir):
    """Name -> shape of the tensors in ``model_dir``'s weights; a safetensors file is read without its data.

    A truncated or corrupt file is a one-line ValueError naming it.
    """
    path = weights_file(model_dir)
    if path is not None and path.endswith(".safetensors"):
        try:
            with safe_open(path, framework="pt") as f:
                return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
        except SafetensorError as e:
            raise ValueError(f"{path}: corrupt or truncated safetensors file ({e})") from None
    return {name: tuple(tensor.shape) for name, tensor in load_weights(model_dir).items()}


def weight_names(model_dir):
    """Names of the tensors in ``model_dir``'s weights; a safetensors file is read without its data."""
    return set(weight_shapes(model_dir))


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (not UTF-8: {e.reason})") from None


@contextmanager
def atomic_directory(target, overwrite=False):
    """Yield a temporary directory that becomes ``target`` when the block succeeds.

    An existing ``target`` is replaced only with ``overwrite=True``; it is moved aside
    first and deleted after the new directory is in place, so one of the two is
    always complete on disk.
    """
    target = os.path.abspath(target)
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} exists; refusing to overwrite it")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700; a model directory gets the usual mode
    try:
        yield tmp
        old = None
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=parent)
            os.rename(target, os.path.join(old, MOVED_ASIDE_NAME))
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_interrupted_writes(parent, target=None):
    """Delete what atomic writes killed midway left in ``parent`` (only those of ``target``, a name in
    ``parent``, when given).

    A folder moved aside whose replacement never arrived (killed between the two renames) is
    put back first, and kept when that fails, so the last complete version is never lost.
    """
    for name in sorted(os.listdir(parent)):
        match = INTERRUPTED_WRITE_PATTERN.match(name)
        if match is None or target is not None and match["target"] != target:
            continue
        path = os.path.join(parent, name)
        if match["kind"] == "old" and not _restore_moved_aside(os.path.join(path, MOVED_ASIDE_NAME),
                                                               os.path.join(parent, match["target"])):
            logger.warning("kept %s: it holds the only copy of %s", path, match["target"])
            continue
        _remove(path)
        logger.info("removed %s, left by an interrupted save", path)


class FolderReplacement:
    """A folder replaced without losing it too early: the old ``folder`` is moved aside (to
    ``.NAME.replaced-XXXXXXXX/d`` beside it), leaving its name free for the new one. ``commit()`` deletes
    the old one once the new one holds something worth keeping; ``rollback()`` puts it back; a process
    killed between the two leaves it for ``recover_replaced``.
    """

    def __init__(self, folder):
        self.folder = os.path.abspath(folder)
        parent, name = os.path.split(self.folder)
        self.aside = tempfile.mkdtemp(prefix=f".{name}.replaced-", dir=parent)
        with open(os.path.join(self.aside, REPLACEMENT_OWNER_NAME), "w", encoding="utf-8") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid()}, f)
        os.rename(self.folder, os.path.join(self.aside, MOVED_ASIDE_NAME))
        logger.info("moved the previous contents of %s aside to %s until they are replaced", folder, self.aside)

    def commit(self):
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None
            logger.info("deleted the previous contents of %s", self.folder)

    def rollback(self):
        if self.aside is None:
            return
        moved = os.path.join(self.aside, MOVED_ASIDE_NAME)
        if os.path.isdir(moved):  # else someone already put it back: what the folder holds is the old one
            if os.path.lexists(self.folder):
                _remove(self.folder)
            os.rename(moved, self.folder)
            logger.info("put the previous contents of %s back", self.folder)
        _remove(self.aside)
        self.aside = None


def _replacement_is_running(aside):
    """True when the process that moved a folder aside to ``aside`` still runs on this host."""
    try:
        owner = read_json(os.path.join(aside, REPLACEMENT_OWNER_NAME))
    except (OSError, ValueError):
        return False  # written before the folder was moved, so its absence means a replacement from before
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except (ProcessLookupError, ValueError, TypeError, KeyError):
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def recover_replaced(folder, keep_new):
    """Finish the replacements of ``folder`` that a kill interrupted (FolderReplacement): the old folder comes
    back, unless ``keep_new(folder)`` says the new one holds something worth keeping; then the old one is
    deleted."""
    parent, name = os.path.split(os.path.abspath(folder))
    if not os.path.isdir(parent):
        return
    for entry in sorted(os.listdir(parent)):
        match = REPLACED_PATTERN.match(entry)
        if match is None or match["target"] != name:
            continue
        aside = os.path.join(parent, entry)
        if _replacement_is_running(aside):
            continue
        moved = os.path.join(aside, MOVED_ASIDE_NAME)
        if os.path.isdir(moved) and not (os.path.isdir(folder) and keep_new(folder)):
            if os.path.lexists(folder):
                _remove(folder)
            try:
                os.rename(moved, folder)
                logger.warning("restored %s, which an interrupted run had moved aside to replace it", folder)
            except OSError:  # another rank of the same run restored it first
                continue
        _remove(aside)


def remove_scratch(folder):
    """Delete the scratch folders (SCRATCH_PATTERN) that killed runs left in ``folder``; call it before a run
    starts there, never while one runs."""
    for name in sorted(os.listdir(folder)):
        if SCRATCH_PATTERN.match(name):
            _remove(os.path.join(folder, name))
            logger.info("removed %s, left by an interrupted run", os.path.join(folder, name))


def _restore_moved_aside(moved, target):
    """Rename ``moved`` back to ``target`` when the target is missing; True when ``target`` exists."""
    if not os.path.exists(target) and os.path.isdir(moved):
        try:
            os.rename(moved, target)
            logger.info("restored %s from an interrupted save", target)
        except OSError:  # e.g. another rank of the same run restored it first
            pass
    return os.path.exists(target)


def _remove(path):
    # Ranks of one run may clean the same folder at once, so a vanished entry is not an error.
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def write_model_files(directory, state_dict, config_dict, vocab_file=None, target=None):
    """Write weights, config and (a copy of) the vocab into an existing directory; a full or unwritable disk
    is a WriteError naming the file in ``target``, the folder the files are for (default ``directory``)."""
    named = target or directory
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    weights_path = os.path.join(directory, WEIGHTS_NAME)
    with write_errors(os.path.join(named, WEIGHTS_NAME)):
        try:
            save_file(tensors, weights_path, metadata={"format": "pt"})
        except SafetensorError as e:  # safetensors reports the disk's errors as its own
            raise WriteError(f"{os.path.join(named, WEIGHTS_NAME)}: cannot write it ({e})") from None
        os.chmod(weights_path, 0o666 & ~UMASK)  # safetensors writes 0600
    config_path = os.path.join(directory, CONFIG_NAME)
    with write_errors(os.path.join(named, CONFIG_NAME)), open(config_path, "w", encoding="utf-8") as f:
        json.dump(config_dict, f, indent=2, sort_keys=True)
        f.write("\n")
    if vocab_file is not None:
        with write_errors(os.path.join(named, VOCAB_NAME)):
            shutil.copyfile(vocab_file, os.path.join(directory, VOCAB_NAME))


def save_model_dir(target, state_dict, config_dict, vocab_file=None, overwrite=False, extra=None):
    """Atomically write a complete model directory.

    ``extra`` is an optional callable ``extra(tmp_dir)`` that adds more files (optimizer
    state, training state) before the directory is renamed into place.
    """
    with atomic_directory(target, overwrite=overwrite) as tmp:
        write_model_files(tmp, state_dict, config_dict, vocab_file, target=target)
        if extra is not None:
            extra(tmp)
    logger.info("saved %s", target)

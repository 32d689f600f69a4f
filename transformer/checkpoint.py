"""Model directories on disk: read weights safely, write whole directories atomically.

A model directory holds ``config.json``, ``model.safetensors`` (or a legacy
``pytorch_model.bin``) and ``vocab.txt``. Every writer here builds the directory
under a temporary name beside the target and renames it into place, so a reader
never sees a half-written checkpoint.
"""
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"
VOCAB_NAME = "vocab.txt"


def weights_file(model_dir):
    """Path of the weights file in ``model_dir`` or None when it has none."""
    for name in (WEIGHTS_NAME, LEGACY_WEIGHTS_NAME):
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return path
    return None


def load_weights(model_dir):
    """State dict of ``model_dir``; safetensors first, then a pickle read with weights_only."""
    path = weights_file(model_dir)
    if path is None:
        raise FileNotFoundError(f"{model_dir}: no {WEIGHTS_NAME} or {LEGACY_WEIGHTS_NAME} found")
    if path.endswith(".safetensors"):
        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def weight_names(model_dir):
    """Names of the tensors in ``model_dir``'s weights; a safetensors file is read without its data."""
    path = weights_file(model_dir)
    if path is not None and path.endswith(".safetensors"):
        with safe_open(path, framework="pt") as f:
            return set(f.keys())
    return set(load_weights(model_dir))


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a model directory gets the usual mode
    try:
        yield tmp
        old = None
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=parent)
            os.rename(target, os.path.join(old, "d"))
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_model_files(directory, state_dict, config_dict, vocab_file=None):
    """Write weights, config and (a copy of) the vocab into an existing directory."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    weights_path = os.path.join(directory, WEIGHTS_NAME)
    save_file(tensors, weights_path, metadata={"format": "pt"})
    os.chmod(weights_path, 0o666 & ~_umask())  # safetensors writes 0600
    with open(os.path.join(directory, CONFIG_NAME), "w", encoding="utf-8") as f:
        json.dump(config_dict, f, indent=2, sort_keys=True)
        f.write("\n")
    if vocab_file is not None:
        shutil.copyfile(vocab_file, os.path.join(directory, VOCAB_NAME))


def save_model_dir(target, state_dict, config_dict, vocab_file=None, overwrite=False, extra=None):
    """Atomically write a complete model directory.

    ``extra`` is an optional callable ``extra(tmp_dir)`` that adds more files (optimizer
    state, training state) before the directory is renamed into place.
    """
    with atomic_directory(target, overwrite=overwrite) as tmp:
        write_model_files(tmp, state_dict, config_dict, vocab_file)
        if extra is not None:
            extra(tmp)
    logger.info("saved %s", target)

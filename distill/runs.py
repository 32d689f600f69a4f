"""Output-folder rules and logging shared by the distillation scripts."""
import contextlib
import logging
import os
import re
import shutil
import sys

from distill.checkpointing import list_checkpoints
from transformer.checkpoint import FolderReplacement, recover_replaced, remove_scratch
from transformer.file_utils import check_writable

logger = logging.getLogger(__name__)

LOG_NAME = "log.txt"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def check_output_dir(output_dir, overwrite=False, continue_train=False, inputs=(), add_files=False):
    """Raise before anything is written when ``output_dir`` may not be used.

    An existing non-empty folder is refused unless --overwrite (it is replaced), --continue_train
    (training resumes in it) or ``add_files`` (evaluation adds its result files to any folder,
    replacing nothing else). The folder may not be one of the input
    folders, nor (with --overwrite) contain one, so a run never deletes its own inputs, and it
    must be writable. A folder that a killed --overwrite run had moved aside is first put back
    (or deleted, when that run had written a checkpoint): see claimed_output_dir.
    """
    recover_replaced(output_dir, keep_new=lambda folder: bool(list_checkpoints(folder)))
    target = os.path.realpath(output_dir)
    for path in inputs:
        if path is None:
            continue
        if os.path.realpath(path) == target:
            raise ValueError(f"--output_dir {output_dir} is an input folder; choose another folder")
        if overwrite and os.path.realpath(path).startswith(target + os.sep):
            raise ValueError(f"--overwrite would delete the input {path} inside --output_dir {output_dir}")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir {output_dir} exists and is not a folder")
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not (overwrite or continue_train or add_files):
        raise ValueError(f"--output_dir {output_dir} exists and is not empty; "
                         "pass --overwrite to replace it or --continue_train to resume")
    check_writable(output_dir, "--output_dir")
    if overwrite and not (continue_train or add_files) and os.path.isdir(output_dir) and os.listdir(output_dir):
        # --overwrite moves the old folder aside, beside it
        check_writable(os.path.dirname(os.path.abspath(output_dir)), "--output_dir")


# What a run writes that is worth keeping even when it fails later.
VALUABLE = re.compile(r"^(checkpoint-step\d+|model\.safetensors|eval_results\.txt|.*_dev_predictions\.tsv)$")


@contextlib.contextmanager
def claimed_output_dir(output_dir, overwrite=False, continue_train=False, is_main=True):
    """Create ``output_dir`` for the block; yields the FolderReplacement of --overwrite, or None.

    With --overwrite (and without --continue_train) an existing non-empty folder is moved aside, not
    deleted: it is deleted once the run has a checkpoint of its own (the run calls the replacement's
    ``commit()``) or the block succeeds, and put back when the block fails before. Otherwise a block
    that fails before anything in VALUABLE is in the folder leaves it as it was found: a folder that
    did not exist is removed again, one that was empty is emptied again, so the corrected command
    just works. Scratch folders that a killed run left are removed first.
    """
    existed = os.path.isdir(output_dir)
    was_empty = not existed or not os.listdir(output_dir)
    replacement = None
    if is_main:
        if existed:
            remove_scratch(output_dir)
        if overwrite and not continue_train and existed and not was_empty:
            replacement = FolderReplacement(output_dir)
        os.makedirs(output_dir, exist_ok=True)
    try:
        yield replacement
    except BaseException:
        if replacement is not None:
            replacement.rollback()
        elif is_main and was_empty and os.path.isdir(output_dir) \
                and not any(VALUABLE.match(name) for name in os.listdir(output_dir)):
            if existed:
                for name in os.listdir(output_dir):
                    path = os.path.join(output_dir, name)
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            else:
                shutil.rmtree(output_dir)
        raise
    if replacement is not None:
        replacement.commit()


class LogFile(logging.FileHandler):
    """The run's log.txt. When a record cannot be written (a full disk), one line says so and the file is given
    up, instead of logging's traceback for every record; the console keeps logging."""

    given_up = False

    def handleError(self, record):
        if self.given_up:
            return
        self.given_up = True
        sys.stderr.write(f"warning: cannot write {self.baseFilename} ({sys.exc_info()[1]}); logging to the console "
                         "only\n")
        stream, self.stream = self.stream, None
        with contextlib.suppress(OSError):  # its buffer cannot be written either
            stream.close()

    def emit(self, record):
        if not self.given_up:
            super().emit(record)


@contextlib.contextmanager
def logging_to(output_dir=None, is_main=True):
    """Log INFO to the console and to output_dir/log.txt (appended); other ranks log warnings only."""
    root = logging.getLogger()
    handlers = [logging.StreamHandler(sys.stderr)]
    if output_dir is not None and is_main:
        handlers.append(LogFile(os.path.join(output_dir, LOG_NAME), mode="a", encoding="utf-8"))
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%m/%d/%Y %H:%M:%S")
    old_level = root.level
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO if is_main else logging.WARNING)
    try:
        yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(old_level)

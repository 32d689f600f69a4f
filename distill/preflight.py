"""Checks of the input models and flags, shared by both scripts and done before anything is written."""
import filecmp
import os

from models.pretrained import student_config
from transformer.checkpoint import VOCAB_NAME, weights_file
from transformer.file_utils import DownloadError, model_dir
from transformer.modeling import BertConfig
from transformer.tokenization import load_vocab


def fetch_model_args(args, names):
    """Replace each model-folder flag given as an http(s):// or s3:// URL (of a folder or an archive) by
    the local folder it was fetched into (transformer.file_utils.model_dir, cached)."""
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            continue
        try:
            setattr(args, name, model_dir(value))
        except DownloadError as e:
            raise ValueError(f"--{name} {value}: {e}") from None


def read_model_config(model_dir, flag):
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"{flag} {model_dir}: no such folder")
    return BertConfig.from_pretrained(model_dir)


def require_weights(model_dir, flag):
    if weights_file(model_dir) is None:
        raise FileNotFoundError(f"{flag} {model_dir}: no model.safetensors or pytorch_model.bin (weights needed)")


def vocab_path(model_dir):
    path = os.path.join(model_dir, VOCAB_NAME)
    return path if os.path.isfile(path) else None


def check_same_vocab(teacher_dir, student_dir):
    """Teacher and student must tokenize alike: their vocab.txt files, when both exist, must be equal."""
    teacher_vocab, student_vocab = vocab_path(teacher_dir), vocab_path(student_dir)
    if teacher_vocab and student_vocab and not filecmp.cmp(teacher_vocab, student_vocab, shallow=False):
        raise ValueError(f"vocab mismatch: {student_vocab} differs from the teacher's {teacher_vocab}")


def check_vocab_size(vocab_file, configs, exact=False):
    """Every id the tokenizer gives (a line number of ``vocab_file``) must have an embedding in each model
    (``configs``: flag -> BertConfig); with ``exact``, every id a model predicts must have a token too (the
    masked LM of data augmentation)."""
    size = max(load_vocab(vocab_file).values(), default=-1) + 1
    for flag, config in configs.items():
        if size > config.vocab_size:
            raise ValueError(f"{vocab_file}: {size} tokens, more than the vocab_size {config.vocab_size} of {flag}'s "
                             f"config.json (the wrong vocab.txt?)")
        if exact and size < config.vocab_size:
            raise ValueError(f"{vocab_file}: {size} tokens, fewer than the vocab_size {config.vocab_size} of {flag}'s "
                             "config.json: the model's predictions of the last ids have no token (the wrong "
                             "vocab.txt?)")


def read_student_config(model_dir, flags, flag="--spiking_student_model"):
    """The student's SpikingBertConfig with the command line's spiking ``flags`` applied, checked."""
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"{flag} {model_dir}: no such folder")
    return student_config(model_dir, flags)


def fit_size_override(student_config, teacher_config):
    """fit_size must be the teacher's hidden size: set it when absent, refuse a contradicting one."""
    fit_size = student_config.fit_size
    if fit_size is None:
        return {"fit_size": teacher_config.hidden_size}
    if fit_size != teacher_config.hidden_size:
        raise ValueError(f"student fit_size {fit_size} differs from the teacher's hidden size "
                         f"{teacher_config.hidden_size}")
    return {}


def check_max_seq_length(max_seq_length, configs):
    """--max_seq_length may not exceed any model's max_position_embeddings."""
    for flag, config in configs.items():
        if max_seq_length > config.max_position_embeddings:
            raise ValueError(f"--max_seq_length {max_seq_length} exceeds {flag}'s max_position_embeddings "
                             f"{config.max_position_embeddings}")


def spiking_differences(checkpoint, flags):
    """(setting, the checkpoint's value, this run's) of every spiking flag given (``flags``) that differs from
    the checkpoint's config.json: the settings a resumed run must keep."""
    saved = read_student_config(checkpoint, {}).spiking
    return [(name, getattr(saved, name), value) for name, value in flags.items() if getattr(saved, name) != value]

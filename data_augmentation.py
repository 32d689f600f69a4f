"""TinyBERT's data augmentation of a GLUE task: GLUE_DIR/TASK_NAME/train.tsv -> train_aug.tsv beside it.

    python data_augmentation.py --pretrained_bert_model BERT_BASE_DIR --glove_embs glove.6B.300d.txt \\
        --glue_dir glue_data --task_name SST-2
    # offline substitute for a checkpoint without a masked-LM head and no GloVe file:
    python data_augmentation.py --pretrained_bert_model TEACHER_DIR --candidates embedding \\
        --glue_dir DATA_DIR --task_name movie

Every word of ASCII letters that is not a stop word gets up to M candidates: with --candidates
mlm_glove (TinyBERT's), a word that is one WordPiece is masked and the masked LM's top M tokens are its
candidates, any other word takes its M nearest GloVe neighbours; with --candidates embedding, every
word takes its M nearest whole-word tokens in the checkpoint's word-embedding matrix. Each of N tries
replaces every such word by a random candidate with probability p; distinct changed sentences are kept.
train_aug.tsv has train.tsv's header and columns: each row as it is, then the row with each
augmented version of its first text column, then (sentence pairs) of its second, the other columns
unchanged. The file is a function of the inputs, --seed and --batch_size. With --output_dir, the
task's dev and test files are copied beside it, so that the folder is a whole --data_dir for --aug_train
(task IKD, and prediction KD, which evaluates on dev and scores test); they are never augmented.
"""
import argparse
import contextlib
import filecmp
import itertools
import logging
import os
import random
import shutil

import torch
from tqdm import tqdm

from augmentation.augmenter import Augmenter, EmbeddingCandidates, MaskedLMCandidates
from augmentation.word_vectors import read_glove
from corpus.pregeneration import batches, write_lines
from distill.preflight import check_vocab_size, read_model_config
from distill.script import run_main
from glue.processors import get_processor
from transformer.checkpoint import remove_interrupted_writes, weight_names
from transformer.file_utils import check_writable, write_atomically
from transformer.modeling import BertForMaskedLM, BertModel
from transformer.tokenization import BertTokenizer

logger = logging.getLogger(__name__)

OUTPUT_NAME = "train_aug.tsv"
# TinyBERT's tries per sentence (its script's per-task table; 30 for other tasks). The movie tasks
# are SST-2's sentences.
TASK_TRIES = {"cola": 30, "mnli": 10, "mrpc": 30, "sst-2": 20, "sts-b": 30, "qqp": 10, "qnli": 20, "rte": 30,
              "movie": 20, "movie-reg": 20}
DEFAULT_TRIES = 30
ROWS_PER_CHUNK = 64  # rows whose masked sequences are pooled, so that the model sees full batches


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained_bert_model", required=True,
                        help="BERT folder (config.json, weights, vocab.txt); with a masked-LM head for mlm_glove")
    parser.add_argument("--glove_embs", default=None, help="GloVe text file (e.g. glove.6B.300d.txt); for mlm_glove")
    parser.add_argument("--glue_dir", required=True, help="folder holding the task folder")
    parser.add_argument("--task_name", required=True, help="task folder name and task (e.g. SST-2, MRPC, movie)")
    parser.add_argument("--N", type=int, default=None,
                        help="tries per sentence (default: TinyBERT's per task, 20 for SST-2, 10 for MNLI "
                             "and QQP, 30 otherwise)")
    parser.add_argument("--M", type=int, default=15, help="candidates per word")
    parser.add_argument("--p", type=float, default=0.4, help="probability of replacing each word in a try")
    parser.add_argument("--candidates", choices=("mlm_glove", "embedding"), default="mlm_glove",
                        help="mlm_glove: TinyBERT's masked LM and GloVe; embedding: nearest neighbours in the "
                             "checkpoint's word-embedding matrix, for a checkpoint without a masked-LM head")
    parser.add_argument("--glove_words", type=int, default=100_000,
                        help="GloVe words read, from the top of the file (TinyBERT reads 100,000)")
    parser.add_argument("--do_lower_case", action=argparse.BooleanOptionalAction, default=True,
                        help="lower-case and strip accents before tokenizing (default, as TinyBERT's script)")
    parser.add_argument("--batch_size", type=int, default=32, help="masked sequences per forward pass")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_cuda", action="store_true", help="run the masked LM on the CPU even with a GPU")
    parser.add_argument("--output_dir", default=None,
                        help="folder for train_aug.tsv and a copy of the task's dev and test files (default: "
                        "the task folder, beside train.tsv)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing train_aug.tsv (and dev and test files that differ from the task's)")
    return parser.parse_args(argv)


def check_args(args):
    for name in ("M", "batch_size", "glove_words"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.N is not None and args.N < 0:
        raise ValueError(f"--N must be >= 0, got {args.N}")
    if not 0 <= args.p <= 1:
        raise ValueError(f"--p must be in [0, 1], got {args.p}")
    if args.candidates == "mlm_glove" and args.glove_embs is None:
        raise ValueError("--glove_embs is required with --candidates mlm_glove")


def load_candidates(args, tokenizer):
    """The candidate source of --candidates; the checkpoint must fit its config and the tokenizer's vocab."""
    model_dir = args.pretrained_bert_model
    config = read_model_config(model_dir, "--pretrained_bert_model")
    if args.candidates == "embedding":
        check_vocab_size(tokenizer.vocab_file, {"--pretrained_bert_model": config})
        model = BertModel.from_pretrained(model_dir, strict=True, fresh_allowed=("pooler.",))  # the pooler is unused
        return EmbeddingCandidates(tokenizer, model.embeddings.word_embeddings.weight.detach().numpy(), args.M)
    if not any(name.startswith("cls.predictions.") for name in weight_names(model_dir)):
        raise ValueError(f"{model_dir}: the checkpoint has no masked-LM head (cls.predictions.*); "
                         "pass --candidates embedding to take candidates from its word embeddings instead")
    check_vocab_size(tokenizer.vocab_file, {"--pretrained_bert_model": config}, exact=True)
    glove = read_glove(args.glove_embs, args.glove_words)
    logger.info("%s: %d words of %d dimensions", args.glove_embs, len(glove), glove.vectors.shape[1])
    model = BertForMaskedLM.from_pretrained(model_dir, strict=True)
    device = "cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu"
    return MaskedLMCandidates(model, tokenizer, glove, args.M, args.batch_size, device)


def evaluation_files(task_dir, output_dir, overwrite):
    """(source, target) of each dev and test file to copy into ``output_dir`` (none when it is the task folder);
    refuses to replace a different file there without ``overwrite``."""
    if os.path.abspath(output_dir) == os.path.abspath(task_dir):
        return []
    pairs = [(os.path.join(task_dir, name), os.path.join(output_dir, name)) for name in sorted(os.listdir(task_dir))
             if name.startswith(("dev", "test")) and name.endswith(".tsv")]
    for source, target in pairs:
        if os.path.exists(target) and not overwrite and not filecmp.cmp(source, target, shallow=False):
            raise ValueError(f"{target} exists and differs from {source}; pass --overwrite to replace it")
    return pairs


def augmented_rows(processor, rows, augmenter, seed):
    """Yield every output row: each input row, then its versions with one text column augmented."""
    with tqdm(total=len(rows), desc="augmenting", unit=" examples") as progress:
        for chunk in batches(rows, ROWS_PER_CHUNK):
            jobs = [(line_number, column, row) for line_number, row in chunk for column in processor.text_columns]
            # A generator of its own per (row, column): the file does not depend on the chunking.
            rngs = [random.Random(f"{seed}:{line_number}:{column}") for line_number, column, _ in jobs]
            results = iter(augmenter.augment([row[column] for _, column, row in jobs], rngs))
            for _, row in chunk:
                yield row
                for column in processor.text_columns:
                    for text in next(results):
                        yield row[:column] + [text] + row[column + 1:]
            progress.update(len(chunk))


def augment_task(args):
    """Write train_aug.tsv; returns (input rows, output rows, output path)."""
    check_args(args)
    processor = get_processor(args.task_name)
    task_dir = os.path.join(args.glue_dir, args.task_name)
    train_path = os.path.join(task_dir, "train.tsv")
    header = processor.header(train_path)
    rows = list(processor.rows(train_path))
    for line_number, row in rows:  # a bad label is reported here, not by the training run reading the output
        processor.parse_label(row[processor.label_column], train_path, line_number)
    # The output is checked before the work: a folder it cannot be written into fails now, not hours later.
    output_dir = args.output_dir or task_dir
    output_path = os.path.join(output_dir, OUTPUT_NAME)
    check_writable(output_dir, "--output_dir" if args.output_dir else "the task folder")
    if os.path.exists(output_path) and not args.overwrite:
        raise ValueError(f"{output_path} exists; pass --overwrite to replace it")
    copies = evaluation_files(task_dir, output_dir, args.overwrite)
    if os.path.isdir(output_dir):  # what a killed run left beside its outputs
        for target in [output_path] + [target for _, target in copies]:
            remove_interrupted_writes(output_dir, target=os.path.basename(target))
    tokenizer = BertTokenizer.from_pretrained(args.pretrained_bert_model, do_lower_case=args.do_lower_case)
    tries = args.N if args.N is not None else TASK_TRIES.get(processor.name, DEFAULT_TRIES)
    augmenter = Augmenter(tokenizer, load_candidates(args, tokenizer), tries, args.p)
    logger.info("%s: %d examples; candidates %s, M %d, N %d, p %g, seed %d", train_path, len(rows),
                args.candidates, args.M, tries, args.p, args.seed)
    os.makedirs(output_dir, exist_ok=True)
    augmented = augmented_rows(processor, rows, augmenter, args.seed)
    # Closed here, not when collected: an interruption between two rows closes the progress bar before the
    # "interrupted" line is printed, so that line stays the last one.
    with contextlib.closing(augmented):
        lines = itertools.chain([header] if header is not None else [], augmented)
        written = write_lines(output_path, ("\t".join(line) for line in lines))
    for source, target in copies:
        with open(source, "rb") as original:
            write_atomically(target, lambda copy: shutil.copyfileobj(original, copy), "wb")
    return len(rows), written - (header is not None), output_path


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    examples, rows, path = run_main(augment_task, args, interrupted=f"interrupted: {OUTPUT_NAME} was not written "
                                    "(nothing is kept); rerun the same command")
    print(f"{path}: {rows} rows from {examples} examples")


if __name__ == "__main__":
    main()

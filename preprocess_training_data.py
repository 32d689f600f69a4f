"""Pre-generate BERT pre-training instances for general distillation.

    python preprocess_training_data.py --train_corpus corpus.txt --bert_model TEACHER_DIR --do_lower_case \\
        --epochs_to_generate 3 --output_dir pregenerated --num_workers 2

The corpus has one sentence per line and a blank line between documents. Writes epoch_{e}.json (one
JSON instance per line) and epoch_{e}_metrics.json per epoch, and a log file, into --output_dir.
They are written into a scratch folder there first and moved into place when all are done, so a
run that fails or is interrupted leaves the folder as it was.
"""
import argparse
import logging
import os

from corpus.pregeneration import PregenerationConfig, pregenerate, staged_output
from distill.script import run_main
from transformer.checkpoint import remove_scratch
from transformer.file_utils import check_output_folder
from transformer.tokenization import BertTokenizer

LOG_NAME = "preprocess.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_corpus", required=True,
                        help="text file: a sentence per line, a blank line between documents")
    parser.add_argument("--bert_model", required=True, help="model directory whose vocab.txt is the tokenizer")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--do_lower_case", action="store_true")
    parser.add_argument("--reduce_memory", action="store_true",
                        help="keep tokenized documents on disk (a temporary folder in --output_dir)")
    parser.add_argument("--epochs_to_generate", type=int, default=3)
    parser.add_argument("--max_seq_len", type=int, default=128)
    parser.add_argument("--short_seq_prob", type=float, default=0.1,
                        help="probability of a shorter random target length")
    parser.add_argument("--masked_lm_prob", type=float, default=0.15)
    parser.add_argument("--max_predictions_per_seq", type=int, default=20)
    parser.add_argument("--do_whole_word_mask", action="store_true", help="mask whole words, not word pieces")
    parser.add_argument("--one_seq", action="store_true", help="single-segment instances (no sentence pairs)")
    parser.add_argument("--num_workers", type=int, default=1, help="processes; the output does not depend on it")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --output_dir: its epoch files and log are replaced (epoch "
                             "files beyond --epochs_to_generate deleted), other files stay")
    return parser.parse_args(argv)


def check_args(args):
    """Everything checked before anything is written; returns the PregenerationConfig."""
    if not os.path.isfile(args.train_corpus):
        raise FileNotFoundError(f"--train_corpus {args.train_corpus}: file not found")
    if not os.path.isfile(os.path.join(args.bert_model, "vocab.txt")):
        raise FileNotFoundError(f"--bert_model {args.bert_model}: no vocab.txt in it")
    if args.epochs_to_generate < 1 or args.num_workers < 1:
        raise ValueError("--epochs_to_generate and --num_workers must be at least 1")
    config = PregenerationConfig(max_seq_len=args.max_seq_len, short_seq_prob=args.short_seq_prob,
                                 masked_lm_prob=args.masked_lm_prob,
                                 max_predictions_per_seq=args.max_predictions_per_seq,
                                 whole_word_mask=args.do_whole_word_mask, one_seq=args.one_seq, seed=args.seed)
    config.validate()
    output_dir = args.output_dir
    check_output_folder(output_dir, "--output_dir")
    if os.path.isdir(output_dir):
        remove_scratch(output_dir)  # what a killed run left is no reason to refuse the folder
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not args.overwrite:
        raise ValueError(f"--output_dir {output_dir} exists and is not empty; pass --overwrite to write into it")
    return config


def generate(args):
    config = check_args(args)
    tokenizer = BertTokenizer.from_pretrained(args.bert_model, do_lower_case=args.do_lower_case)
    with staged_output(args.output_dir, args.epochs_to_generate) as staging:
        log_file = logging.FileHandler(os.path.join(staging, LOG_NAME))
        log_file.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(log_file)
        try:
            return pregenerate(args.train_corpus, tokenizer, staging, args.epochs_to_generate, config,
                               num_workers=args.num_workers, reduce_memory=args.reduce_memory)
        finally:
            logging.getLogger().removeHandler(log_file)
            log_file.close()


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    stats = run_main(generate, args,
                     interrupted=f"interrupted: {args.output_dir} was left as it was; rerun the same command")
    print(f"{stats['documents']} documents, {stats['words']} words; instances per epoch: {stats['instances']}")


if __name__ == "__main__":
    main()

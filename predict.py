"""Run a trained spiking student on your own sentences: label, class probabilities, steps, spikes and energy.

    python predict.py --spiking_student_model STUDENT --task_name movie --input sentences.txt --output out.tsv
    echo "a gorgeous, witty film" | python predict.py --spiking_student_model STUDENT --task_name movie
    python predict.py ... --input pairs.tsv --text_column 0 --text_b_column 1 --skip_header --format jsonl
    python predict.py ... --adaptive_t_conv --plot_spikes 3 --plot_dir spikes/

Input: one sentence per line, or column --text_column of a tab-separated file (sentence pairs:
--text_b_column too); "-" reads stdin. Output ("-" is stdout): per sentence its input line number,
the predicted label, each class's probability (the score for regression), the steps simulated,
the spike count, the accumulates and energy per sentence (uJ, 45 nm arithmetic) and its ratio to
an ordinary BERT of the student's size (and to --teacher_model's shape, when given). Batches are
sorted by length as in evaluation, so each sentence gets the prediction --do_eval gives it.
"""
import argparse
import logging
import os
import sys

import torch

from distill.adaptive import StoppingRule
from distill.cli import add_adaptive_args, spiking_overrides
from distill.devices import Devices
from distill.prediction import open_input, predict, read_sentences, sentence_features, write_rows
from distill.preflight import (check_max_seq_length, check_vocab_size, read_model_config, read_student_config,
                               require_weights, vocab_path)
from distill.spike_plots import plot_sentence, spike_trace
from glue import get_processor
from models.snn_ide_bert_classi import SpikingBertForSequenceClassification
from modules.energy import BertSize
from transformer.file_utils import write_atomically
from transformer.tokenization import BertTokenizer

logger = logging.getLogger("predict")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--spiking_student_model", required=True, help="a trained student folder (prediction KD's)")
    parser.add_argument("--task_name", required=True, help="the task it was trained on (its labels): movie, SST-2, ...")
    parser.add_argument("--input", default="-", help="text file, one sentence per line or tab-separated ('-': stdin)")
    parser.add_argument("--text_column", type=int, default=0, help="column of the sentence (from 0)")
    parser.add_argument("--text_b_column", type=int, default=None, help="column of a pair's second sentence")
    parser.add_argument("--skip_header", action="store_true", help="the input's first line is a header")
    parser.add_argument("--output", default="-", help="where the predictions go ('-': stdout)")
    parser.add_argument("--format", choices=("tsv", "jsonl"), default="tsv")
    parser.add_argument("--teacher_model", default=None,
                        help="a teacher folder: its config.json's shape adds the energy ratio to the teacher")
    parser.add_argument("--max_seq_length", type=int, default=None,
                        help="longer sentences are truncated (default: the student's max_position_embeddings)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--do_lower_case", action="store_true",
                        help="lower-case text (also on when the student records do_lower_case)")
    parser.add_argument("--t_conv", type=int, default=None, help="time steps (default: the student config's)")
    parser.add_argument("--vth", type=float, default=None, help="firing threshold (default: the student config's)")
    add_adaptive_args(parser)
    parser.add_argument("--plot_spikes", type=int, default=0, metavar="N",
                        help="draw the spikes of the first N sentences (one PNG each, in --plot_dir)")
    parser.add_argument("--plot_dir", default="spike_plots", help="folder for the --plot_spikes figures")
    parser.add_argument("--no_cuda", action="store_true", help="run on the CPU even when a GPU is visible")
    return parser


def check_args(args):
    for name in ("max_seq_length", "batch_size", "t_conv"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be >= 1, got {value}")
    if args.vth is not None and not args.vth > 0:
        raise ValueError(f"--vth must be > 0, got {args.vth}")
    for name in ("text_column", "text_b_column", "plot_spikes"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ValueError(f"--{name} must be >= 0, got {value}")


def load_student(args, num_labels):
    config = read_student_config(args.spiking_student_model, spiking_overrides(args))
    require_weights(args.spiking_student_model, "--spiking_student_model")
    if config.num_labels != num_labels:
        raise ValueError(f"--spiking_student_model {args.spiking_student_model} has "
                         f"{config.num_labels} labels, task {args.task_name} has {num_labels}")
    student = SpikingBertForSequenceClassification.from_pretrained(args.spiking_student_model,
                                                                   flags=spiking_overrides(args))
    if student.classifier_initialized:
        raise ValueError(f"--spiking_student_model {args.spiking_student_model} has no trained classifier")
    return student.eval(), bool(config.do_lower_case)


def write_spike_plots(args, student, features, sentences, rows, tokenizer):
    os.makedirs(args.plot_dir, exist_ok=True)
    names = student.population_names()
    for feature, sentence, row in list(zip(features, sentences, rows))[:args.plot_spikes]:
        token_rates, cls_rates = spike_trace(student, feature, row["steps"])
        tokens = tokenizer.convert_ids_to_tokens(feature.input_ids[:feature.seq_length])
        label = row.get("label", row.get("score"))
        path = os.path.join(args.plot_dir, f"spikes_line{sentence.line_number}.png")
        plot_sentence(path, tokens, names, token_rates, cls_rates, row["steps"],
                      stopped_early=args.adaptive_t_conv, title=f"line {sentence.line_number}: predicted {label}")
        logger.info("wrote %s", path)


def run(args):
    check_args(args)
    processor = get_processor(args.task_name)
    if (args.text_b_column is not None) != (processor.text_b_column is not None):
        wanted = "sentence pairs: give" if processor.text_b_column is not None else "single sentences: drop"
        raise ValueError(f"task {args.task_name} takes {wanted} --text_b_column")
    rule = StoppingRule.from_args(args) if args.adaptive_t_conv else None
    label_list, output_mode = processor.get_labels(), processor.output_mode
    if rule is not None and output_mode == "regression":
        raise ValueError(f"--adaptive_t_conv needs a classification task; {args.task_name} is regression")
    student, recorded_lower_case = load_student(args, len(label_list))
    teacher = None
    if args.teacher_model is not None:
        teacher = BertSize.of(read_model_config(args.teacher_model, "--teacher_model"), len(label_list))
    vocab = vocab_path(args.spiking_student_model)
    if vocab is None:
        raise FileNotFoundError(f"--spiking_student_model {args.spiking_student_model}: no vocab.txt")
    check_vocab_size(vocab, {"--spiking_student_model": student.config})
    max_seq_length = args.max_seq_length or student.config.max_position_embeddings
    check_max_seq_length(max_seq_length, {"--spiking_student_model": student.config})
    tokenizer = BertTokenizer(vocab, do_lower_case=args.do_lower_case or recorded_lower_case)
    with open_input(args.input) as lines:
        sentences = read_sentences(lines, args.text_column, args.text_b_column, args.skip_header,
                                   "<stdin>" if args.input == "-" else args.input)
    features = sentence_features(sentences, label_list, output_mode, max_seq_length, tokenizer)
    use_cuda = torch.cuda.is_available() and not args.no_cuda  # one device: no DataParallel for prediction
    devices = Devices(torch.device("cuda" if use_cuda else "cpu"), n_gpu=int(use_cuda))
    student.to(devices.device)
    logger.info("%d sentences, t_conv %d, %s", len(sentences), student.config.spiking.t_conv,
                "adaptive: " + rule.describe() if rule else "fixed steps")
    rows = predict(student, features, label_list, output_mode, args.batch_size, devices, rule, teacher)
    if args.output == "-":
        write_rows(sys.stdout, sentences, rows, args.format)
    else:
        write_atomically(args.output, lambda f: write_rows(f, sentences, rows, args.format))
        logger.info("wrote %s", args.output)
    if args.plot_spikes:
        write_spike_plots(args, student.cpu(), features, sentences, rows, tokenizer)
    return rows


def main(argv=None):
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        stream=sys.stderr)
    try:
        return run(build_parser().parse_args(argv))
    except (ValueError, OSError) as e:  # OSError: FileNotFoundError, and WriteError naming the file
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()

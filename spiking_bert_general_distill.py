"""General knowledge distillation from a BERT teacher into a spiking student (SpikingBERT step 1).

    python spiking_bert_general_distill.py --pregenerated_data DATA --teacher_model BERT_DIR \
        --spiking_student_model STUDENT_CONFIG_DIR --do_lower_case --train_batch_size 128 \
        --t_conv 125 --vth 1.0 --output_dir OUT

Several GPUs: all visible ones are used through DataParallel (pick them with
CUDA_VISIBLE_DEVICES), or run under torchrun for DistributedDataParallel.
"""
import argparse
import sys

from distill.cli import add_shared_args
from distill.general import GeneralDistillation
from distill.script import run_script


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pregenerated_data", required=True, help="folder with epoch_{e}.json files")
    parser.add_argument("--teacher_model", required=True, help="BERT folder: config.json, weights, vocab.txt")
    parser.add_argument("--reduce_memory", action="store_true",
                        help="keep the pregenerated arrays in memory-mapped files under --output_dir")
    add_shared_args(parser, learning_rate=5e-5, eval_step=1000)
    return parser


def main(argv=None):
    run_script(GeneralDistillation, build_parser().parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])

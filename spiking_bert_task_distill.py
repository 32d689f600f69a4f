"""Task distillation of a spiking student on a GLUE task, and its evaluation (SpikingBERT steps 2-3).

    task IKD:        python spiking_bert_task_distill.py --teacher_model FT_BERT --spiking_student_model GKD_DIR \
                         --data_dir GLUE/SST-2 --task_name SST-2 --output_dir IKD_DIR --do_lower_case ...
    prediction KD:   ... --pred_distill --spiking_student_model IKD_DIR --output_dir FINAL_DIR
    true labels:     ... --pred_distill --train_true_labels (no teacher needed)
    evaluation:      ... --do_eval --spiking_student_model FINAL_DIR --output_dir EVAL_DIR
"""
import argparse
import sys

from distill.cli import add_adaptive_args, add_shared_args, non_negative
from distill.script import run_script
from distill.task import TaskDistillation


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher_model", default=None, help="fine-tuned BERT folder (not needed for --do_eval "
                        "or --train_true_labels)")
    parser.add_argument("--data_dir", required=True, help="the task's folder with train.tsv and dev.tsv")
    parser.add_argument("--task_name", required=True, help="GLUE task (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, "
                        "RTE, WNLI) or movie / movie-reg; any case")
    parser.add_argument("--aug_train", action="store_true", help="train on train_aug.tsv")
    parser.add_argument("--pred_distill", action="store_true", help="prediction-layer KD (default: task IKD)")
    parser.add_argument("--train_true_labels", action="store_true",
                        help="with --pred_distill: train on gold labels instead of the teacher's logits")
    parser.add_argument("--energy_penalty", type=non_negative, default=0.0, metavar="WEIGHT",
                        help="add WEIGHT x the accumulate part of the student's energy over a same-size ANN's "
                             "(spikes weighted by their fan-out, as the energy report counts them) to the loss")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of prediction KD")
    parser.add_argument("--do_eval", action="store_true", help="only evaluate --spiking_student_model on dev")
    parser.add_argument("--readout_steps", type=int, nargs="+", default=[], metavar="S",
                        help="with --do_eval: also read the same simulation out after each S steps (what --t_conv S "
                             "gives, without --adaptive_t_conv), each into OUTPUT_DIR/t<S>/: one simulation "
                             "serves every step count")
    parser.add_argument("--eval_batch_size", type=int, default=32)
    add_adaptive_args(parser)
    add_shared_args(parser, learning_rate=5e-5, eval_step=50)
    return parser


def print_results(results):
    for result in results:
        print(f"{result.set_name}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
              + f", eval_loss {result.eval_loss:.4f}, examples {result.num_examples}, "
              f"mean spike rate {result.rates['mean_over_populations']:.4f}")


def main(argv=None):
    results = run_script(TaskDistillation, build_parser().parse_args(argv))
    if results:
        print_results(results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

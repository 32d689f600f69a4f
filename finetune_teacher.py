"""Fine-tune a BERT folder on a GLUE task (or the packaged movie task) into a task teacher.

The output folder is a teacher that ``spiking_bert_task_distill.py --teacher_model`` loads:
config.json (with num_labels and classifier_head), model.safetensors and vocab.txt of the
best dev checkpoint, plus eval_results.txt, log.txt and resumable checkpoint-step* folders.
Training reuses the distillation scripts' loop (distill/), so data order, checkpoints,
--continue_train and devices behave the same way.

    python finetune_teacher.py --bert_model ${BERT_DIR} --data_dir glue_data/SST-2 \\
        --task_name SST-2 --output_dir ${FT_BERT_DIR} --do_lower_case
"""
import argparse
import logging
import math
import os
import sys
import tempfile

import torch

from distill.checkpointing import load_training_state, publish_student, resolve_resume
from distill.cli import add_run_args, check_positive_args
from distill.devices import cleanup, select_devices, unwrap, wrap_student
from distill.evaluation import RESULTS_NAME
from distill.losses import true_label_loss
from distill.preflight import check_max_seq_length, read_model_config, require_weights, vocab_path
from distill.runs import check_output_dir, logging_to, prepare_output_dir
from distill.task import TaskFeatures
from distill.training import (TrainingLoop, TrainState, build_optimizer, check_resume_settings, run_settings,
                              set_seed, steps_in_epoch)
from glue import compute_metrics, convert_examples_to_features, get_processor, main_metric, pad_batch
from transformer.modeling import CLASSIFIER_HEADS, BertForSequenceClassification
from transformer.tokenization import BertTokenizer

logger = logging.getLogger("finetune_teacher")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bert_model", required=True, help="BERT folder: config.json, weights, vocab.txt")
    parser.add_argument("--data_dir", required=True, help="task folder with train.tsv and the dev file(s)")
    parser.add_argument("--task_name", required=True, help="GLUE task (SST-2, MNLI, ...) or movie / movie-reg")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--do_lower_case", action="store_true", help="lower-case text before tokenizing")
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=2e-5)
    parser.add_argument("--num_train_epochs", type=int, default=3)
    parser.add_argument("--warmup_proportion", type=float, default=0.1)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--eval_step", type=int, default=None,
                        help="optimisation steps between dev evaluations (default: at the end of each epoch)")
    parser.add_argument("--classifier_head", choices=CLASSIFIER_HEADS, default="tinybert",
                        help="tinybert: classifier(relu(pooled)); hf: classifier(dropout(pooled))")
    add_run_args(parser, keep_checkpoints=1)
    return parser.parse_args(argv)


@torch.no_grad()
def evaluate(model, features, set_name, output_mode, batch_size, devices):
    """Metrics of ``model`` on ``features`` (plus eval_loss and num_examples)."""
    model.eval()
    logits_all, labels_all = [], []
    for start in range(0, len(features), batch_size):
        input_ids, input_mask, segment_ids, labels, _ = pad_batch(features[start:start + batch_size])
        with devices.autocast():
            logits = model(input_ids.to(devices.device), segment_ids.to(devices.device),
                           input_mask.to(devices.device))[0]
        logits_all.append(logits.float().cpu())
        labels_all.append(labels)
    logits, labels = torch.cat(logits_all), torch.cat(labels_all)
    predictions = logits[:, 0] if output_mode == "regression" else logits.argmax(dim=1)
    metrics = compute_metrics(set_name, predictions.numpy(), labels.numpy())
    metrics["eval_loss"] = true_label_loss(logits, labels, output_mode).item()
    metrics["num_examples"] = len(features)
    return metrics


def write_results(output_dir, results, step):
    """eval_results.txt as ``{dev set}.{metric} = value`` lines (the distillation scripts' format), atomically."""
    lines = [f"step = {step}"] + [f"{name}.{key} = {value}" for name, metrics in results.items()
                                  for key, value in metrics.items()]
    fd, tmp = tempfile.mkstemp(prefix=f".{RESULTS_NAME}.tmp-", dir=output_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, os.path.join(output_dir, RESULTS_NAME))


class TeacherFineTuning:
    """Everything checked up front (so a bad input writes nothing), then ``run()`` trains."""

    def __init__(self, args):
        check_positive_args(args, ["train_batch_size", "eval_batch_size", "num_train_epochs", "max_seq_length",
                                   "gradient_accumulation_steps", "eval_step", "logging_steps", "max_steps"])
        self.args = args
        self.processor = get_processor(args.task_name)
        self.config = read_model_config(args.bert_model, "--bert_model")
        require_weights(args.bert_model, "--bert_model")
        self.vocab_file = vocab_path(args.bert_model)
        if self.vocab_file is None:
            raise FileNotFoundError(f"--bert_model {args.bert_model}: no vocab.txt")
        check_max_seq_length(args.max_seq_length, {"--bert_model": self.config})
        self.train_examples = self.processor.get_train_examples(args.data_dir)
        self.dev_sets = self.processor.dev_sets(args.data_dir)
        if not self.train_examples:
            raise ValueError(f"--data_dir {args.data_dir}: train.tsv has no examples")
        check_output_dir(args.output_dir, args.overwrite, args.continue_train, inputs=(args.bert_model,))
        self.resume_from = resolve_resume(args.output_dir, args.continue_train)
        self.saved_state = load_training_state(self.resume_from) if self.resume_from else None
        self.run_settings = run_settings(args)
        if self.run_settings["world_size"] > 1:
            raise ValueError("finetune_teacher.py runs in one process; start it without torchrun")
        if self.saved_state is not None:
            check_resume_settings(self.saved_state["run"], self.run_settings, self.resume_from)

    def run(self):
        args = self.args
        devices = select_devices(args.no_cuda, args.bf16)
        try:
            prepare_output_dir(args.output_dir, args.overwrite, args.continue_train)
            with logging_to(args.output_dir):
                self._train(devices)
        finally:
            cleanup(devices)

    def _train(self, devices):
        args, processor = self.args, self.processor
        logger.info("teacher fine-tuning: %s", vars(args))
        set_seed(args.seed)
        label_list, output_mode = processor.get_labels(), processor.output_mode
        tokenizer = BertTokenizer(self.vocab_file, do_lower_case=args.do_lower_case)

        def features_of(examples):
            return convert_examples_to_features(examples, label_list, args.max_seq_length, tokenizer, output_mode,
                                                pad_to_max=False)

        train = TaskFeatures(features_of(self.train_examples))
        dev_sets = {name: features_of(examples) for name, examples in self.dev_sets.items()}
        logger.info("%d training examples; dev: %s", train.num_examples,
                    ", ".join(f"{name} {len(f)}" for name, f in dev_sets.items()))

        model_dir = self.resume_from or args.bert_model
        teacher = BertForSequenceClassification.from_pretrained(model_dir, num_labels=len(label_list),
                                                                classifier_head=args.classifier_head,
                                                                do_lower_case=args.do_lower_case)
        logger.info("model from %s: %d parameters, classifier head %s", model_dir,
                    sum(p.numel() for p in teacher.parameters()), teacher.config.classifier_head)
        model = wrap_student(teacher, devices)

        epochs = [train] * args.num_train_epochs
        total_steps = steps_in_epoch(train.num_examples, args.train_batch_size) * args.num_train_epochs
        optimizer = build_optimizer(teacher, args.learning_rate, args.warmup_proportion, total_steps,
                                    schedule="warmup_linear")
        state = TrainState(run=self.run_settings)
        resumed_rng = None
        if self.saved_state is not None:
            optimizer.load_state_dict(self.saved_state["optimizer"])
            state = TrainState.from_saved(self.saved_state, self.run_settings)
            resumed_rng = self.saved_state["rng"][devices.rank]
            logger.info("resuming from %s at step %d", self.resume_from, state.global_step)
        logger.info("%d optimisation steps over %d epochs", total_steps, args.num_train_epochs)

        def loss_fn(batch):
            input_ids, input_mask, segment_ids, labels = batch
            logits = model(input_ids, segment_ids, input_mask)[0]
            return {"loss": true_label_loss(logits, labels, output_mode)}

        def on_checkpoint(state):
            results = {name: evaluate(model, features, name, output_mode, args.eval_batch_size, devices)
                       for name, features in dev_sets.items()}
            score = main_metric(args.task_name, results[processor.name])
            if math.isnan(score):  # e.g. correlation of constant predictions
                score = -math.inf
            logger.info("step %d dev: %s", state.global_step, results)
            if state.best_metric is None or score > state.best_metric:
                state.best_metric, state.best_step = score, state.global_step
                publish_student(args.output_dir, unwrap(model), self.vocab_file)
                write_results(args.output_dir, results, state.global_step)
                logger.info("new best dev %s %.4f at step %d: teacher saved to %s", args.task_name, score,
                            state.global_step, args.output_dir)

        # Without --eval_step the loop still evaluates (and checkpoints) at every epoch end.
        loop_args = argparse.Namespace(**{**vars(args), "eval_step": args.eval_step or total_steps + 1})
        loop = TrainingLoop(model=model, bare_model=teacher, optimizer=optimizer, devices=devices, epochs=epochs,
                            loss_fn=loss_fn, on_checkpoint=on_checkpoint, args=loop_args,
                            vocab_file=self.vocab_file, state=state, resumed_rng=resumed_rng)
        if not loop.run():
            return
        logger.info("done: best dev %s %.4f at step %d; teacher in %s", args.task_name, state.best_metric,
                    state.best_step, args.output_dir)


def main(argv=None):
    args = parse_args(argv)
    try:
        TeacherFineTuning(args).run()
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()

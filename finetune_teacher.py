"""Fine-tune a BERT folder on a GLUE task (or the packaged movie task) into a task teacher.

The output folder is a teacher that ``spiking_bert_task_distill.py --teacher_model`` loads:
config.json (with num_labels and classifier_head), model.safetensors and vocab.txt of the
best dev checkpoint, plus eval_results.txt (dev, and test when the task folder has a labelled test.tsv,
scored for that checkpoint only), log.txt and resumable checkpoint-step* folders.
Training reuses the distillation scripts' loop (distill/), so data order, checkpoints,
--continue_train and devices behave the same way.

    python finetune_teacher.py --bert_model ${BERT_DIR} --data_dir glue_data/SST-2 \\
        --task_name SST-2 --output_dir ${FT_BERT_DIR} --do_lower_case
"""
import argparse
import logging

from distill.checkpointing import publish_student
from distill.cli import add_run_args, check_positive_args
from distill.devices import unwrap, wrap_student
from distill.evaluation import evaluate, log_test_results, write_eval_files
from distill.losses import true_label_loss
from distill.preflight import (check_max_seq_length, check_vocab_size, fetch_model_args, read_model_config,
                               require_weights, vocab_path)
from distill.script import TrainingScript, run_script
from distill.training import LoopSettings, set_seed, steps_in_epoch
from glue import TEST_SET, TaskFeatures, convert_examples_to_features, get_processor, main_metric
from transformer.modeling import CLASSIFIER_HEADS, BertForSequenceClassification
from transformer.tokenization import BertTokenizer

logger = logging.getLogger("finetune_teacher")

# A pre-trained BERT gets a new classifier, and a pooler when it has none; its encoder must fit its config.
FRESH_HEAD = ("classifier.", "bert.pooler.")


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


class TeacherFineTuning(TrainingScript):
    """Everything checked up front (so a bad input writes nothing), then ``run()`` trains."""

    resume_flags = TrainingScript.resume_flags + ("classifier_head",)

    def __init__(self, args):
        super().__init__(args)
        fetch_model_args(args, ("bert_model",))
        check_positive_args(args, ["train_batch_size", "eval_batch_size", "num_train_epochs", "max_seq_length",
                                   "gradient_accumulation_steps", "eval_step", "logging_steps", "max_steps"])
        self.processor = get_processor(args.task_name)
        self.config = read_model_config(args.bert_model, "--bert_model")
        require_weights(args.bert_model, "--bert_model")
        BertForSequenceClassification.check_weights(args.bert_model, fresh_allowed=FRESH_HEAD,
                                                    num_labels=len(self.processor.get_labels()))
        self.vocab_file = vocab_path(args.bert_model)
        if self.vocab_file is None:
            raise FileNotFoundError(f"--bert_model {args.bert_model}: no vocab.txt")
        check_vocab_size(self.vocab_file, {"--bert_model": self.config})
        check_max_seq_length(args.max_seq_length, {"--bert_model": self.config})
        self.train_examples = self.processor.get_train_examples(args.data_dir)
        self.eval_sets = self.processor.eval_sets(args.data_dir)
        if LoopSettings.from_args(args).resume_settings()["world_size"] > 1:
            raise ValueError("finetune_teacher.py runs in one process; start it without torchrun")
        self.check_output(inputs=(args.bert_model,))

    def run_record(self, settings=None):
        return {**super().run_record(settings), "task_name": self.processor.name}

    def main(self, devices):
        args, processor = self.args, self.processor
        logger.info("teacher fine-tuning: %s", vars(args))
        set_seed(args.seed)
        label_list, output_mode = processor.get_labels(), processor.output_mode
        tokenizer = BertTokenizer(self.vocab_file, do_lower_case=args.do_lower_case)

        def features_of(examples):
            return convert_examples_to_features(examples, label_list, args.max_seq_length, tokenizer, output_mode,
                                                pad_to_max=False)

        train = TaskFeatures(features_of(self.train_examples))
        eval_sets = {name: features_of(examples) for name, examples in self.eval_sets.items()}
        logger.info("%d training examples; evaluation: %s", train.num_examples,
                    ", ".join(f"{name} {len(f)}" for name, f in eval_sets.items()))

        model_dir = self.resume_from or args.bert_model
        teacher = BertForSequenceClassification.from_pretrained(model_dir, strict=True, fresh_allowed=FRESH_HEAD,
                                                                num_labels=len(label_list),
                                                                classifier_head=args.classifier_head,
                                                                do_lower_case=args.do_lower_case)
        logger.info("model from %s: %d parameters, classifier head %s", model_dir,
                    sum(p.numel() for p in teacher.parameters()), teacher.config.classifier_head)
        model = wrap_student(teacher, devices)

        def loss_fn(batch):
            return {"loss": true_label_loss(model(**batch.inputs()).logits, batch.labels, output_mode)}

        def evaluate_sets(names):
            return [evaluate(model, eval_sets[name], name, output_mode, args.eval_batch_size, devices,
                             metrics_task=processor.name) for name in names]

        def on_checkpoint(state):
            results = evaluate_sets([name for name in eval_sets if name != TEST_SET])
            score = main_metric(args.task_name, results[0].metrics)
            logger.info("step %d dev: %s", state.global_step,
                        "; ".join(f"{r.set_name} {r.metrics} eval_loss {r.eval_loss:.6g}" for r in results))
            if state.is_new_best(score):
                results += evaluate_sets([name for name in eval_sets if name == TEST_SET])  # for dev's choice only
                log_test_results(results)
                publish_student(args.output_dir, unwrap(model), self.vocab_file)
                write_eval_files(args.output_dir, results, label_list, output_mode, {"step": state.global_step})
                logger.info("new best dev %s %.4f at step %d: teacher saved to %s", args.task_name, score,
                            state.global_step, args.output_dir)

        epochs = [train] * args.num_train_epochs
        # Without --eval_step the loop still evaluates (and checkpoints) at every epoch end.
        total_steps = steps_in_epoch(train.num_examples, args.train_batch_size) * args.num_train_epochs
        settings = LoopSettings.from_args(args, eval_step=args.eval_step or total_steps + 1)
        finished, state = self.train(model=model, bare_model=teacher, devices=devices, epochs=epochs,
                                     loss_fn=loss_fn, on_checkpoint=on_checkpoint, schedule="warmup_linear",
                                     vocab_file=self.vocab_file, settings=settings)
        if finished:
            logger.info("done: best dev %s %.4f at step %d; teacher in %s", args.task_name, state.best_metric,
                        state.best_step, args.output_dir)


def main(argv=None):
    run_script(TeacherFineTuning, parse_args(argv))


if __name__ == "__main__":
    main()

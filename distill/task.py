"""Task distillation and evaluation of a spiking student on a GLUE task (SpikingBERT steps 2-3).

The flags resolve once into a TaskMode:
- task IKD (no mode flag): internal-layer loss against a fine-tuned teacher, constant
  learning rate (BertAdam schedule "none"); the student is saved every --eval_step.
- --pred_distill: prediction-layer KD (soft cross-entropy with --temperature, MSE to
  the gold score for regression), warmup-linear schedule, dev evaluation every
  --eval_step; the best student by the task's main metric is kept at the top level.
- --pred_distill --train_true_labels: gold-label cross-entropy (MSE for regression)
  instead of the teacher's logits; no teacher needed.
- --do_eval: dev metrics of a saved student; no teacher needed.
Evaluations score every labelled set of the task folder: the dev set(s) and, when the folder has a
test.tsv with labels, the test set (keys ``test.*``). Checkpoints are chosen on dev alone; the test set is
scored only for the checkpoint that dev chose, once, when training ends. --do_eval with --readout_steps reads
its one simulation out after several numbers of steps, each into its own folder.

Dynamic padding. Every batch is padded only to its longest member, not to
--max_seq_length. Predictions and the prediction losses (from the [CLS] position) are
unchanged by this. The internal-layer losses are not: as in the reference, their MSEs
are means over every position of the batch tensor, pad positions included. The
hidden-state MSE averages over B x L_batch x H entries, and the pad rows' errors (the
teacher and student states at pad tokens) count in it; the attention MSE averages
over B x A x L_batch x L_batch entries, where masked key columns (scores <= -100) are
zero in both models and add 0 to the sum but still count in the mean, while pad query
rows over real keys count like any row. With fewer pad positions per batch, pad
tokens weigh less in the IKD loss than with padding to --max_seq_length; nothing is
excluded explicitly.
"""
import logging
import os
from dataclasses import dataclass

import torch

from distill.adaptive import StoppingRule, rule_header
from distill.checkpointing import publish_student
from distill.cli import check_positive_args, spiking_overrides
from distill.devices import unwrap, wrap_frozen, wrap_student
from distill.energy_report import describe_size, set_report, shape_record, size_from_record
from distill.evaluation import (check_eval_outputs, evaluate, log_evaluation, log_test_results, readout_folder,
                                write_eval_files)
from distill.losses import (check_compatible, internal_layer_loss, prediction_loss, true_label_loss,
                            with_energy_penalty, with_rate_penalty)
from distill.preflight import (check_max_seq_length, check_same_vocab, check_vocab_size, fetch_model_args,
                               fit_size_override, read_model_config, read_student_config, require_weights,
                               spiking_differences, vocab_path)
from distill.script import TrainingScript
from distill.training import set_seed
from glue import TEST_SET, TaskFeatures, convert_examples_to_features, get_processor, main_metric
from models.pretrained import check_student_weights
from models.snn_ide_bert_classi import SpikingBertForSequenceClassification
from modules.energy import BertSize
from transformer.modeling import BertForSequenceClassification
from transformer.tokenization import BertTokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskMode:
    """What one run of the task script does, resolved once from its flags."""
    name: str
    loss: str  # "internal_layer", "prediction", "true_label" or None (evaluation only)
    uses_teacher: bool
    schedule: str = None
    # Checkpoint policy: keep the best student on dev (evaluating at every checkpoint), or publish every one.
    keeps_best: bool = False

    @property
    def trains(self):
        return self.loss is not None

    @property
    def evaluates_dev(self):
        """Dev (and test) sets are evaluated: the whole job (evaluation) or at checkpoints (keeps_best)."""
        return not self.trains or self.keeps_best


def resolve_mode(args, output_mode):
    """The TaskMode of the flags; impossible combinations raise a one-line ValueError."""
    if args.train_true_labels and not args.pred_distill:
        raise ValueError("--train_true_labels needs --pred_distill")
    if args.do_eval and args.pred_distill:
        raise ValueError("--do_eval only evaluates; drop --pred_distill/--train_true_labels")
    if args.do_eval:
        return TaskMode("evaluation", None, uses_teacher=False)
    if not args.pred_distill:
        return TaskMode("task IKD", "internal_layer", uses_teacher=True, schedule="none")
    if args.train_true_labels:
        return TaskMode("true-label training", "true_label", uses_teacher=False, schedule="warmup_linear",
                        keeps_best=True)
    # Regression prediction KD fits the gold score (MSE), as the reference does: no teacher needed.
    if output_mode == "regression":
        return TaskMode("prediction-layer KD", "true_label", uses_teacher=False, schedule="warmup_linear",
                        keeps_best=True)
    return TaskMode("prediction-layer KD", "prediction", uses_teacher=True, schedule="warmup_linear",
                    keeps_best=True)


class TaskDistillation(TrainingScript):
    """Everything checked up front (so bad input writes nothing), then ``run()`` trains or evaluates."""

    resume_flags = TrainingScript.resume_flags + ("kd_losses", "rate_penalty", "energy_penalty", "temperature",
                                                  "aug_train", "pred_distill", "train_true_labels", "adaptive_t_conv")

    def __init__(self, args):
        super().__init__(args)
        fetch_model_args(args, ("teacher_model", "spiking_student_model"))
        check_positive_args(args, ["train_batch_size", "eval_batch_size", "num_train_epochs", "eval_step",
                                   "logging_steps", "gradient_accumulation_steps", "max_seq_length", "max_steps",
                                   "readout_steps"])
        if not args.temperature > 0:
            raise ValueError(f"--temperature must be > 0, got {args.temperature}")
        processor = get_processor(args.task_name)
        self.task, self.output_mode = processor.name, processor.output_mode
        self.label_list = processor.get_labels()
        self.mode = resolve_mode(args, self.output_mode)
        if args.readout_steps and self.mode.trains:
            raise ValueError("--readout_steps applies to --do_eval only")
        self.readout_steps = sorted(set(args.readout_steps))
        rule = StoppingRule.from_args(args)  # checks the rule's flags even while --adaptive_t_conv is off
        self.stopping_rule = rule if args.adaptive_t_conv else None
        self._check_stopping_rule()

        student_config = read_student_config(args.spiking_student_model, spiking_overrides(args))
        self.student_overrides = {"num_labels": len(self.label_list), "do_lower_case": args.do_lower_case}
        self._check_student_head(student_config)
        if not self.mode.trains:
            require_weights(args.spiking_student_model, "--spiking_student_model")
        configs = {"--spiking_student_model": student_config}
        if self.mode.uses_teacher:
            configs["--teacher_model"] = self._check_teacher(student_config)
        elif args.teacher_model is not None:
            logger.info("--teacher_model: only its config.json is read (the teacher's shape, for energy)")
        if self.mode.evaluates_dev:
            self.energy_teacher, self.energy_teacher_from = self._energy_teacher(student_config)
        check_max_seq_length(args.max_seq_length, configs)
        if self.mode.trains:
            self.check_student_start(student_config, has_teacher=self.mode.uses_teacher)
        elif args.init_from_teacher or args.calibrate_vth is not None:
            raise ValueError("--init_from_teacher and --calibrate_vth start training; --do_eval only evaluates")

        tokenizer = self._tokenizer(student_config)
        check_vocab_size(self.vocab_file, configs)
        if self.mode.trains:
            self.train_features = self._features(processor.get_train_examples(args.data_dir, aug=args.aug_train),
                                                 tokenizer)
        self.eval_features = {}
        if self.mode.evaluates_dev:
            for name, examples in processor.eval_sets(args.data_dir).items():
                self.eval_features[name] = self._features(examples, tokenizer)
        if not (self.mode.trains and args.fresh_student):
            check_student_weights(SpikingBertForSequenceClassification, args.spiking_student_model,
                                  spiking_overrides(args), **self.student_overrides)
        if self.mode.trains:
            self.check_output(inputs=(args.teacher_model, args.spiking_student_model, args.data_dir))
        else:
            # Evaluation may write into any existing folder (a model folder too): it adds result
            # files only, and check_eval_outputs keeps earlier results.
            self.check_output(allow_existing=True)
            for folder in [args.output_dir] + [readout_folder(args.output_dir, steps) for steps in self.readout_steps]:
                check_eval_outputs(folder, list(self.eval_features), args.overwrite)

    def run_record(self, settings=None):
        """Also the task, and the stopping rule of the dev evaluations that choose the best checkpoint."""
        record = {**super().run_record(settings), "task_name": self.task}
        if self.stopping_rule is not None:
            record.update({f"adaptive_{key}": value for key, value in self.stopping_rule.settings().items()})
        return record

    def resume_differences(self, checkpoint):
        return spiking_differences(checkpoint, spiking_overrides(self.args))

    def interrupted(self):
        if not self.mode.trains:
            return "interrupted: the evaluation wrote no results; rerun the same command"
        return super().interrupted()

    def _check_teacher(self, student_config):
        """The teacher's config, after checking it fits the task and the student."""
        args = self.args
        if args.teacher_model is None:
            raise ValueError("--teacher_model is needed for task IKD and prediction-layer KD")
        teacher_config = read_model_config(args.teacher_model, "--teacher_model")
        require_weights(args.teacher_model, "--teacher_model")
        BertForSequenceClassification.check_weights(args.teacher_model)
        teacher_labels = teacher_config.num_labels
        if teacher_labels is None:
            raise ValueError(f"--teacher_model {args.teacher_model}: config has no num_labels (not a task teacher)")
        if teacher_labels != len(self.label_list):
            raise ValueError(f"--teacher_model has {teacher_labels} labels, task {self.task} has "
                             f"{len(self.label_list)}")
        check_same_vocab(args.teacher_model, args.spiking_student_model)
        self.student_overrides["teacher_size"] = shape_record(teacher_config)
        if self.mode.loss == "internal_layer":
            check_compatible(teacher_config, student_config, args.kd_losses)
            self.student_overrides.update(fit_size_override(student_config, teacher_config))
        return teacher_config

    def _check_stopping_rule(self):
        if self.stopping_rule is None:
            return
        if not self.mode.evaluates_dev:
            raise ValueError("--adaptive_t_conv applies to dev evaluations (--do_eval, --pred_distill); task IKD "
                             "has none")
        if self.output_mode == "regression":
            raise ValueError(f"--adaptive_t_conv needs a classification task (its rule watches the predicted "
                             f"class); {self.task} is regression")

    def _energy_teacher(self, student_config):
        """(BertSize of the teacher that energy is compared with, or None; where its shape comes from)."""
        args, num_labels = self.args, len(self.label_list)
        if args.teacher_model is not None:
            teacher_config = read_model_config(args.teacher_model, "--teacher_model")
            return BertSize.of(teacher_config, num_labels), f"--teacher_model {args.teacher_model}"
        record = student_config.teacher_size
        if record is not None:
            source = f"teacher_size in {args.spiking_student_model}/config.json"
            return size_from_record(record, num_labels, source), source
        logger.warning("no --teacher_model and no teacher_size in the student's config.json: energy is compared "
                       "with the same-size ANN only")
        return None, None

    def _tokenizer(self, student_config):
        """Tokenizer of the student's vocab (the teacher's when the student folder has none)."""
        args = self.args
        self.vocab_file = vocab_path(args.spiking_student_model) or (
            vocab_path(args.teacher_model) if self.mode.uses_teacher else None)
        if self.vocab_file is None:
            raise FileNotFoundError(f"--spiking_student_model {args.spiking_student_model}: no vocab.txt")
        recorded = student_config.do_lower_case
        if recorded is not None and recorded != args.do_lower_case:
            logger.warning("the student was trained with do_lower_case=%s, this run uses %s", recorded,
                           args.do_lower_case)
        return BertTokenizer(self.vocab_file, do_lower_case=args.do_lower_case)

    def _check_student_head(self, student_config):
        """A student that already has a classifier must have the task's label count (or lose it)."""
        args = self.args
        student_labels, task_labels = student_config.num_labels, len(self.label_list)
        if not self.mode.trains and student_labels is None:
            raise ValueError(f"--spiking_student_model {args.spiking_student_model}: config has no num_labels "
                             "(no trained classifier to evaluate)")
        if student_labels is None or student_labels == task_labels:
            return
        if self.mode.uses_teacher or not self.mode.trains:
            raise ValueError(f"--spiking_student_model has {student_labels} labels, task {self.task} has "
                             f"{task_labels}")
        logger.warning("the student has %d labels, task %s has %d: its classifier is re-initialised",
                       student_labels, self.task, task_labels)

    def _features(self, examples, tokenizer):
        return convert_examples_to_features(examples, self.label_list, self.args.max_seq_length, tokenizer,
                                            self.output_mode, pad_to_max=False)

    def run(self):
        """Train (returns None) or, in evaluation mode, evaluate (returns the list of EvalResult)."""
        return super().run(keep_output=not self.mode.trains)

    def main(self, devices):
        args = self.args
        logger.info("%s on %s: %s", self.mode.name, self.task, vars(args))
        logger.info(devices.describe())
        if not self.mode.trains:
            return self._evaluate_only(devices)
        self._train(devices)
        return None

    def _load_student(self, model_dir):
        if "fit_size" in self.student_overrides:
            logger.info("student fit_size set to the teacher's hidden size %d", self.student_overrides["fit_size"])
        student = SpikingBertForSequenceClassification.from_pretrained(
            model_dir, flags=spiking_overrides(self.args), fresh_weights=self.args.fresh_student and
            model_dir == self.args.spiking_student_model, **self.student_overrides)
        spiking = student.config.spiking
        logger.info("student from %s: t_conv %s, vth %s, %d labels, classifier initialised: %s", model_dir,
                    spiking.t_conv, spiking.vth, student.config.num_labels, student.classifier_initialized)
        return student

    def _evaluate(self, model, devices, set_names, readout_steps=()):
        """The EvalResult of each named set (``eval_features`` keys), with its energy report (and its readouts',
        for ``readout_steps``)."""
        student = unwrap(model)
        results = []
        for name in set_names:
            result = evaluate(model, self.eval_features[name], name, self.output_mode, self.args.eval_batch_size,
                              devices, stopping_rule=self.stopping_rule, metrics_task=self.task,
                              readout_steps=readout_steps)
            for evaluated in [result] + list((result.readouts or {}).values()):
                evaluated.energy = set_report(evaluated, student.population_names(), BertSize.of(student.config),
                                              self.energy_teacher, self.output_mode)
            results.append(result)
        return results

    def _write_results(self, results, student, readout_steps=None):
        """The evaluation files of ``results`` in --output_dir, or those of the readout after ``readout_steps``
        steps (fixed steps: no rule) in its folder."""
        spiking = student.config.spiking
        rule = self.stopping_rule if readout_steps is None else None
        teacher = ("none: compared with the same-size ANN only" if self.energy_teacher is None else
                   f"{describe_size(self.energy_teacher)}, from {self.energy_teacher_from}")
        header = {"t_conv": readout_steps or spiking.t_conv, "vth": spiking.vth, **rule_header(rule),
                  "energy.student": describe_size(BertSize.of(student.config)), "energy.teacher": teacher}
        folder = self.args.output_dir
        if readout_steps is not None:
            folder = readout_folder(folder, readout_steps)
            os.makedirs(folder, exist_ok=True)
        write_eval_files(folder, results, self.label_list, self.output_mode, header)

    def _evaluate_only(self, devices):
        student = self._load_student(self.args.spiking_student_model)
        if student.classifier_initialized:
            raise ValueError(f"--spiking_student_model {self.args.spiking_student_model} has no trained classifier")
        results = self._evaluate(wrap_frozen(student, devices), devices, list(self.eval_features), self.readout_steps)
        for steps in self.readout_steps:
            for result in results:
                log_evaluation(f"after {steps} steps, {result.set_name}", result.readouts[steps])
        for result in results:
            log_evaluation(result.set_name, result)
        if devices.is_main:
            for steps in self.readout_steps:
                self._write_results([result.readouts[steps] for result in results], student, readout_steps=steps)
            self._write_results(results, student)
        return results

    def _train(self, devices):
        args = self.args
        set_seed(args.seed)
        teacher = None
        if self.mode.uses_teacher:
            teacher = BertForSequenceClassification.from_pretrained(args.teacher_model, strict=True)
            teacher = wrap_frozen(teacher.eval(), devices)
        student = self._load_student(self.resume_from or args.spiking_student_model)
        train_data = TaskFeatures(self.train_features)
        self.start_student(student, train_data,
                           teacher=unwrap(teacher) if teacher is not None else None)
        student_model = wrap_student(student, devices)
        logger.info("%d training examples", len(train_data))

        dev_sets = [name for name in self.eval_features if name != TEST_SET]
        best_dev_results = []  # of the student kept, when this process evaluated it

        def on_checkpoint(state):
            if not devices.is_main:
                return
            if not self.mode.keeps_best:
                publish_student(args.output_dir, student, self.vocab_file)
                return
            results = self._evaluate(student, devices, dev_sets)
            metric = main_metric(self.task, results[0].metrics)
            logger.info("step %d dev: %s", state.global_step,
                        "; ".join(f"{r.set_name} {r.metrics} eval_loss {r.eval_loss:.6g}" for r in results))
            if state.is_new_best(metric):
                publish_student(args.output_dir, student, self.vocab_file)
                self._write_results(results, student)
                best_dev_results[:] = results
                logger.info("new best %s %.6g at step %d: student saved", self.task, metric, state.global_step)

        finished, state = self.train(model=student_model, bare_model=student, devices=devices,
                                     epochs=[train_data] * args.num_train_epochs,
                                     loss_fn=self._loss_fn(student_model, teacher, student.config),
                                     on_checkpoint=on_checkpoint,
                                     schedule=self.mode.schedule, vocab_file=self.vocab_file)
        if finished and self.mode.evaluates_dev:
            logger.info("best %s %.6g at step %s", self.task, state.best_metric, state.best_step)
            if devices.is_main and TEST_SET in self.eval_features:
                self._score_test(devices, best_dev_results)

    def _score_test(self, devices, dev_results):
        """Score the test set once, for the student dev chose (the one published in --output_dir), and add it to
        that student's evaluation files. Its dev results are evaluated again when an earlier process (before a
        resume) found it."""
        best = wrap_frozen(self._load_student(self.args.output_dir), devices)
        if not dev_results:
            dev_results = self._evaluate(best, devices, [name for name in self.eval_features if name != TEST_SET])
        results = dev_results + self._evaluate(best, devices, [TEST_SET])
        log_test_results(results)
        self._write_results(results, unwrap(best))

    def _loss_fn(self, student_model, teacher, student_config):
        """loss(batch) -> dict of losses of the mode ("loss" is optimised, the rest logged)."""
        output_mode, temperature, loss = self.output_mode, self.args.temperature, self.mode.loss
        kd_losses, rate_penalty, energy_penalty = self.args.kd_losses, self.args.rate_penalty, self.args.energy_penalty
        t_conv, size = student_config.spiking.t_conv, BertSize.of(student_config)
        output_values = loss == "internal_layer" and "minilm" in kd_losses

        def mode_losses(student, teacher_outputs, input_mask, labels):
            if loss == "true_label":
                return {"loss": true_label_loss(student.logits, labels, output_mode)}
            if loss == "internal_layer":
                return internal_layer_loss(student, teacher_outputs, input_mask, kd_losses)
            return {"loss": prediction_loss(student.logits, teacher_outputs.logits, labels, output_mode, temperature)}

        def loss_fn(batch):
            student = student_model(**batch.inputs())
            teacher_outputs = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_outputs = teacher(**batch.inputs(), output_values=output_values)
            losses = with_rate_penalty(mode_losses(student, teacher_outputs, batch.attention_mask, batch.labels),
                                       student, batch.attention_mask, rate_penalty)
            return with_energy_penalty(losses, student, batch.attention_mask, energy_penalty, t_conv, size)

        return loss_fn

"""Task distillation and evaluation on a GLUE task (SPEC 3, step 3).

Modes:
- task IKD (no mode flag): internal-layer loss against a fine-tuned teacher, constant
  learning rate (BertAdam schedule "none"); the student is saved every --eval_step.
- --pred_distill: prediction-layer KD (soft cross-entropy with --temperature, MSE to
  the gold score for regression), warmup-linear schedule, dev evaluation every
  --eval_step; the best student by the task's main metric is kept at the top level.
- --pred_distill --train_true_labels: gold-label cross-entropy (MSE for regression)
  instead of the teacher's logits; no teacher needed.
- --do_eval: dev metrics of a saved student; no teacher needed.

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
import math
import os

import torch

from distill.checkpointing import load_training_state, publish_student, resolve_resume
from distill.cli import check_positive_args
from distill.devices import cleanup, select_devices, wrap_frozen, wrap_student
from distill.evaluation import check_eval_outputs, evaluate, write_eval_files
from distill.losses import check_compatible, internal_layer_loss, prediction_loss, true_label_loss
from distill.preflight import (check_max_seq_length, check_same_vocab, fit_size_override, read_model_config,
                               require_weights, spiking_overrides, vocab_path)
from distill.runs import check_output_dir, logging_to, prepare_output_dir
from distill.training import (TrainingLoop, build_optimizer, check_resume_settings, initial_state, run_settings,
                              set_seed, steps_in_epoch)
from glue import convert_examples_to_features, get_processor, main_metric, pad_batch
from models.snn_ide_bert_classi import SpikingBertForSequenceClassification
from transformer.modeling import BertForSequenceClassification
from transformer.tokenization import BertTokenizer

logger = logging.getLogger(__name__)


class TaskFeatures:
    """Unpadded training features; one object serves every epoch."""

    def __init__(self, features):
        self.features = features
        self.num_examples = len(features)

    def load(self):
        return self

    def __len__(self):
        return self.num_examples

    def batch(self, indices):
        """(input_ids, input_mask, segment_ids, label_ids), padded to the longest member."""
        return pad_batch([self.features[i] for i in indices])[:4]

    def close(self):
        pass


class TaskDistillation:
    """Everything checked up front (so bad input writes nothing), then ``run()`` trains or evaluates."""

    def __init__(self, args):
        self.args = args
        self._check_flags()
        processor = get_processor(args.task_name)
        self.task = processor.name
        self.output_mode = processor.output_mode
        self.label_list = processor.get_labels()
        self.num_labels = len(self.label_list)
        self.uses_teacher = not args.do_eval and not (args.pred_distill and (
            args.train_true_labels or self.output_mode == "regression"))

        student_config = read_model_config(args.spiking_student_model, "--spiking_student_model")
        spiking = spiking_overrides(student_config, args.t_conv, args.vth, args.spiking_student_model)
        self.student_overrides = {**spiking, "num_labels": self.num_labels, "do_lower_case": args.do_lower_case}
        self._check_student_head(student_config)
        if args.do_eval:
            require_weights(args.spiking_student_model, "--spiking_student_model")
        configs = {"--spiking_student_model": student_config}
        if self.uses_teacher:
            configs["--teacher_model"] = self._check_teacher(student_config)
        elif args.teacher_model is not None:
            logger.warning("--teacher_model is not used in this mode")
        check_max_seq_length(args.max_seq_length, configs)

        tokenizer = self._tokenizer(student_config)
        if not args.do_eval:
            examples = processor.get_train_examples(args.data_dir, aug=args.aug_train)
            self.train_features = self._features(examples, tokenizer)
        self.dev_features = {}
        if args.do_eval or args.pred_distill:
            for name, examples in processor.dev_sets(args.data_dir).items():
                self.dev_features[name] = self._features(examples, tokenizer)
        self._check_output_dir()

    def _check_flags(self):
        args = self.args
        check_positive_args(args, ["train_batch_size", "eval_batch_size", "num_train_epochs", "eval_step",
                                   "logging_steps", "gradient_accumulation_steps", "max_seq_length", "max_steps"])
        if args.train_true_labels and not args.pred_distill:
            raise ValueError("--train_true_labels needs --pred_distill")
        if args.do_eval and args.pred_distill:
            raise ValueError("--do_eval only evaluates; drop --pred_distill/--train_true_labels")
        if not args.temperature > 0:
            raise ValueError(f"--temperature must be > 0, got {args.temperature}")

    def _check_teacher(self, student_config):
        """The teacher's config, after checking it fits the task and the student."""
        args = self.args
        if args.teacher_model is None:
            raise ValueError("--teacher_model is needed for task IKD and prediction-layer KD")
        teacher_config = read_model_config(args.teacher_model, "--teacher_model")
        require_weights(args.teacher_model, "--teacher_model")
        teacher_labels = getattr(teacher_config, "num_labels", None)
        if teacher_labels is None:
            raise ValueError(f"--teacher_model {args.teacher_model}: config has no num_labels (not a task teacher)")
        if teacher_labels != self.num_labels:
            raise ValueError(f"--teacher_model has {teacher_labels} labels, task {self.task} has {self.num_labels}")
        check_same_vocab(args.teacher_model, args.spiking_student_model)
        if not args.pred_distill:
            check_compatible(teacher_config, student_config)
            self.student_overrides.update(fit_size_override(student_config, teacher_config))
        return teacher_config

    def _tokenizer(self, student_config):
        """Tokenizer of the student's vocab (the teacher's when the student folder has none)."""
        args = self.args
        self.vocab_file = vocab_path(args.spiking_student_model) or (
            vocab_path(args.teacher_model) if self.uses_teacher else None)
        if self.vocab_file is None:
            raise FileNotFoundError(f"--spiking_student_model {args.spiking_student_model}: no vocab.txt")
        recorded = getattr(student_config, "do_lower_case", None)
        if recorded is not None and recorded != args.do_lower_case:
            logger.warning("the student was trained with do_lower_case=%s, this run uses %s", recorded,
                           args.do_lower_case)
        return BertTokenizer(self.vocab_file, do_lower_case=args.do_lower_case)

    def _check_output_dir(self):
        args = self.args
        self.resume_from = self.saved_state = None
        if args.do_eval:
            # Evaluation may write into any existing folder (a model folder too): it adds result
            # files only, and check_eval_outputs keeps earlier results.
            check_output_dir(args.output_dir, overwrite=True)
            check_eval_outputs(args.output_dir, list(self.dev_features), args.overwrite)
            return
        check_output_dir(args.output_dir, args.overwrite, args.continue_train,
                         inputs=(args.teacher_model, args.spiking_student_model, args.data_dir))
        self.resume_from = resolve_resume(args.output_dir, args.continue_train)
        if self.resume_from is not None:
            self.saved_state = load_training_state(self.resume_from)
            check_resume_settings(self.saved_state["run"], run_settings(args), self.resume_from)

    def _check_student_head(self, student_config):
        """A student that already has a classifier must have the task's label count (or lose it)."""
        args = self.args
        student_labels = getattr(student_config, "num_labels", None)
        if args.do_eval and student_labels is None:
            raise ValueError(f"--spiking_student_model {args.spiking_student_model}: config has no num_labels "
                             "(no trained classifier to evaluate)")
        if student_labels is None or student_labels == self.num_labels:
            return
        if self.uses_teacher or args.do_eval:
            raise ValueError(f"--spiking_student_model has {student_labels} labels, task {self.task} has "
                             f"{self.num_labels}")
        logger.warning("the student has %d labels, task %s has %d: its classifier is re-initialised",
                       student_labels, self.task, self.num_labels)

    def _features(self, examples, tokenizer):
        if not examples:
            raise ValueError(f"--data_dir {self.args.data_dir}: no examples for task {self.task}")
        return convert_examples_to_features(examples, self.label_list, self.args.max_seq_length, tokenizer,
                                            self.output_mode, pad_to_max=False)

    def run(self):
        """Train (returns None) or, with --do_eval, evaluate (returns the list of EvalResult)."""
        args = self.args
        devices = select_devices(args.no_cuda, args.bf16)
        try:
            if args.do_eval:
                if devices.is_main:
                    os.makedirs(args.output_dir, exist_ok=True)
                with logging_to(args.output_dir, devices.is_main):
                    return self._evaluate_only(devices)
            if devices.is_main:
                prepare_output_dir(args.output_dir, args.overwrite, args.continue_train)
            devices.barrier()
            with logging_to(args.output_dir, devices.is_main):
                self._train(devices)
            return None
        finally:
            cleanup(devices)

    def _load_student(self, model_dir):
        if "fit_size" in self.student_overrides:
            logger.info("student fit_size set to the teacher's hidden size %d", self.student_overrides["fit_size"])
        student = SpikingBertForSequenceClassification.from_pretrained(model_dir, **self.student_overrides)
        logger.info("student from %s: t_conv %s, vth %s, %d labels, classifier initialised: %s", model_dir,
                    student.config.t_conv, student.config.vth, self.num_labels, student.classifier_initialized)
        return student

    def _evaluate_all(self, model, devices):
        return [evaluate(model, features, name, self.output_mode, self.args.eval_batch_size, devices)
                for name, features in self.dev_features.items()]

    def _evaluate_only(self, devices):
        args = self.args
        logger.info("evaluation of %s on %s: %s", args.spiking_student_model, self.task, vars(args))
        logger.info(devices.describe())
        student = self._load_student(args.spiking_student_model)
        if student.classifier_initialized:
            raise ValueError(f"--spiking_student_model {args.spiking_student_model} has no trained classifier")
        model = wrap_frozen(student, devices)
        results = self._evaluate_all(model, devices)
        for result in results:
            logger.info("%s: %s, eval_loss %.6g, mean spike rate %.4f", result.set_name, result.metrics,
                        result.eval_loss, result.rates["mean_over_populations"])
        if devices.is_main:
            write_eval_files(args.output_dir, results, self.label_list, self.output_mode, student.config.t_conv,
                             student.config.vth)
        return results

    def _train(self, devices):
        args = self.args
        mode = "task IKD" if not args.pred_distill else (
            "true-label training" if args.train_true_labels else "prediction-layer KD")
        logger.info("%s on %s: %s", mode, self.task, vars(args))
        logger.info(devices.describe())
        set_seed(args.seed)
        teacher = None
        if self.uses_teacher:
            teacher = BertForSequenceClassification.from_pretrained(args.teacher_model)
            teacher.eval()
            teacher = wrap_frozen(teacher, devices)
        student = self._load_student(self.resume_from or args.spiking_student_model)
        student_model = wrap_student(student, devices)

        train_data = TaskFeatures(self.train_features)
        epochs = [train_data] * args.num_train_epochs
        total_steps = steps_in_epoch(len(train_data), args.train_batch_size) * args.num_train_epochs
        schedule = "warmup_linear" if args.pred_distill else "none"
        optimizer = build_optimizer(student, args.learning_rate, args.warmup_proportion, total_steps, schedule)
        state, resumed_rng = initial_state(args, optimizer, self.resume_from, self.saved_state, devices.rank)
        logger.info("%d examples, %d optimisation steps, schedule %s", len(train_data), total_steps, schedule)

        loss_fn = self._loss_fn(student_model, teacher)

        def on_checkpoint(state):
            if not devices.is_main:
                return
            if not args.pred_distill:
                publish_student(args.output_dir, student, self.vocab_file)
                return
            results = self._evaluate_all(student, devices)
            metric = main_metric(self.task, results[0].metrics)
            logger.info("step %d dev: %s", state.global_step,
                        "; ".join(f"{r.set_name} {r.metrics} eval_loss {r.eval_loss:.6g}" for r in results))
            if state.best_metric is None or math.isnan(state.best_metric) or metric > state.best_metric:
                state.best_metric, state.best_step = metric, state.global_step
                publish_student(args.output_dir, student, self.vocab_file)
                write_eval_files(args.output_dir, results, self.label_list, self.output_mode,
                                 student.config.t_conv, student.config.vth)
                logger.info("new best %s %.6g at step %d: student saved", self.task, metric, state.global_step)

        loop = TrainingLoop(model=student_model, bare_model=student, optimizer=optimizer, devices=devices,
                            epochs=epochs, loss_fn=loss_fn, on_checkpoint=on_checkpoint, args=args,
                            vocab_file=self.vocab_file, state=state, resumed_rng=resumed_rng)
        if loop.run() and args.pred_distill:
            logger.info("best %s %.6g at step %s", self.task, state.best_metric, state.best_step)

    def _loss_fn(self, student_model, teacher):
        args, output_mode = self.args, self.output_mode

        def internal_layer(batch):
            input_ids, input_mask, segment_ids, _ = batch
            with torch.no_grad():
                _, teacher_attentions, teacher_hiddens = teacher(input_ids, segment_ids, input_mask)
            _, student_attentions, student_reps = student_model(input_ids, segment_ids, input_mask)
            loss, attention_loss, hidden_loss = internal_layer_loss(student_attentions, student_reps,
                                                                    teacher_attentions, teacher_hiddens)
            return {"loss": loss, "att_loss": attention_loss, "rep_loss": hidden_loss}

        def prediction(batch):
            input_ids, input_mask, segment_ids, labels = batch
            student_logits, _, _ = student_model(input_ids, segment_ids, input_mask)
            if teacher is None:
                return {"loss": true_label_loss(student_logits, labels, output_mode)}
            with torch.no_grad():
                teacher_logits, _, _ = teacher(input_ids, segment_ids, input_mask)
            return {"loss": prediction_loss(student_logits, teacher_logits, labels, output_mode, args.temperature)}

        return prediction if args.pred_distill else internal_layer

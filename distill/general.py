"""General distillation: a plain BERT teacher's hidden states and attention scores on
pregenerated unlabelled text, distilled into a spiking student (SPEC 3, step 2)."""
import logging

import torch

from distill.checkpointing import load_training_state, publish_student, resolve_resume
from distill.cli import check_positive_args
from distill.devices import cleanup, select_devices, unwrap, wrap_frozen, wrap_student
from distill.losses import check_compatible, internal_layer_loss
from distill.preflight import (check_max_seq_length, fit_size_override, read_model_config, require_weights,
                               spiking_overrides, vocab_path)
from distill.pregenerated import epoch_sources, find_epoch_files, read_epoch_metrics
from distill.runs import check_output_dir, logging_to, prepare_output_dir
from distill.training import (TrainingLoop, build_optimizer, check_resume_settings, initial_state, run_settings,
                              set_seed, steps_in_epoch)
from models.snn_ide_bert import SpikingBertForGeneralKD
from transformer.modeling import BertModel
from transformer.tokenization import load_vocab

logger = logging.getLogger(__name__)


class GeneralDistillation:
    """Everything checked up front (so a bad input writes nothing), then ``run()`` trains."""

    def __init__(self, args):
        check_positive_args(args, ["train_batch_size", "num_train_epochs", "gradient_accumulation_steps",
                                   "eval_step", "logging_steps", "max_seq_length", "max_steps"])
        self.args = args
        self.epoch_files = find_epoch_files(args.pregenerated_data)
        for _, metrics_path in self.epoch_files:
            read_epoch_metrics(metrics_path, args.max_seq_length)
        self.teacher_config = read_model_config(args.teacher_model, "--teacher_model")
        require_weights(args.teacher_model, "--teacher_model")
        self.vocab_file = vocab_path(args.teacher_model)
        if self.vocab_file is None:
            raise FileNotFoundError(f"--teacher_model {args.teacher_model}: no vocab.txt")
        student_config = read_model_config(args.spiking_student_model, "--spiking_student_model")
        check_compatible(self.teacher_config, student_config)
        check_max_seq_length(args.max_seq_length, {"--teacher_model": self.teacher_config,
                                                   "--spiking_student_model": student_config})
        spiking = spiking_overrides(student_config, args.t_conv, args.vth, args.spiking_student_model)
        self.student_overrides = {**spiking, **fit_size_override(student_config, self.teacher_config),
                                  "do_lower_case": args.do_lower_case}
        check_output_dir(args.output_dir, args.overwrite, args.continue_train,
                         inputs=(args.teacher_model, args.spiking_student_model, args.pregenerated_data))
        self.resume_from = resolve_resume(args.output_dir, args.continue_train)
        self.saved_state = load_training_state(self.resume_from) if self.resume_from else None
        if self.saved_state is not None:
            check_resume_settings(self.saved_state["run"], run_settings(args), self.resume_from)

    def run(self):
        args = self.args
        devices = select_devices(args.no_cuda, args.bf16)
        try:
            if devices.is_main:
                prepare_output_dir(args.output_dir, args.overwrite, args.continue_train)
            devices.barrier()
            with logging_to(args.output_dir, devices.is_main):
                self._train(devices)
        finally:
            cleanup(devices)

    def _train(self, devices):
        args = self.args
        logger.info("general distillation: %s", vars(args))
        logger.info(devices.describe())
        set_seed(args.seed)
        teacher = BertModel.from_pretrained(args.teacher_model)
        teacher.eval()
        student_dir = self.resume_from or args.spiking_student_model
        if "fit_size" in self.student_overrides:
            logger.info("student fit_size set to the teacher's hidden size %d", self.student_overrides["fit_size"])
        student = SpikingBertForGeneralKD.from_pretrained(student_dir, **self.student_overrides)
        logger.info("student from %s: t_conv %s, vth %s, fit_size %s", student_dir, student.config.t_conv,
                    student.config.vth, student.config.fit_size)
        teacher_model, student_model = wrap_frozen(teacher, devices), wrap_student(student, devices)

        vocab = load_vocab(self.vocab_file)
        memmap_parent = args.output_dir if args.reduce_memory else None
        epochs = epoch_sources(self.epoch_files, args.num_train_epochs, vocab, args.max_seq_length, memmap_parent)
        total_steps = sum(steps_in_epoch(e.num_examples, args.train_batch_size) for e in epochs)
        optimizer = build_optimizer(student, args.learning_rate, args.warmup_proportion, total_steps,
                                    schedule="warmup_linear")
        state, resumed_rng = initial_state(args, optimizer, self.resume_from, self.saved_state, devices.rank)
        logger.info("%d optimisation steps over %d epochs", total_steps, len(epochs))

        def loss_fn(batch):
            input_ids, segment_ids, input_mask = batch
            with torch.no_grad():
                teacher_hiddens, teacher_attentions, _ = teacher_model(input_ids, segment_ids, input_mask)
            student_attentions, student_reps = student_model(input_ids, segment_ids, input_mask)
            loss, attention_loss, hidden_loss = internal_layer_loss(student_attentions, student_reps,
                                                                    teacher_attentions, teacher_hiddens)
            return {"loss": loss, "att_loss": attention_loss, "rep_loss": hidden_loss}

        def on_checkpoint(_state):
            if devices.is_main:
                publish_student(args.output_dir, unwrap(student_model), self.vocab_file)

        loop = TrainingLoop(model=student_model, bare_model=student, optimizer=optimizer, devices=devices,
                            epochs=epochs, loss_fn=loss_fn, on_checkpoint=on_checkpoint, args=args,
                            vocab_file=self.vocab_file, state=state, resumed_rng=resumed_rng)
        if loop.run():
            logger.info("done: student in %s", args.output_dir)


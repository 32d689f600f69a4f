"""General distillation: a plain BERT teacher's hidden states and attention scores on
pregenerated unlabelled text, distilled into a spiking student (SpikingBERT step 1)."""
import logging

import torch

from distill.checkpointing import publish_student
from distill.cli import check_positive_args, spiking_overrides
from distill.devices import unwrap, wrap_frozen, wrap_student
from distill.energy_report import shape_record
from distill.losses import check_compatible, internal_layer_loss, with_rate_penalty
from distill.preflight import (check_max_seq_length, check_vocab_size, fetch_model_args, fit_size_override,
                               read_model_config, read_student_config, require_weights, spiking_differences,
                               vocab_path)
from distill.pregenerated import epoch_sources, find_epoch_files, read_epoch_metrics
from distill.script import TrainingScript
from distill.training import set_seed
from models.pretrained import check_student_weights
from models.snn_ide_bert import SpikingBertForGeneralKD
from transformer.modeling import BertModel
from transformer.tokenization import load_vocab

logger = logging.getLogger(__name__)

# General KD reads the teacher's hidden states and attention scores: its pooler may be missing.
TEACHER_FRESH = ("pooler.",)


class GeneralDistillation(TrainingScript):
    """Everything checked up front (so a bad input writes nothing), then ``run()`` trains."""

    resume_flags = TrainingScript.resume_flags + ("kd_losses", "rate_penalty")

    def __init__(self, args):
        super().__init__(args)
        fetch_model_args(args, ("teacher_model", "spiking_student_model"))
        check_positive_args(args, ["train_batch_size", "num_train_epochs", "gradient_accumulation_steps",
                                   "eval_step", "logging_steps", "max_seq_length", "max_steps"])
        self.epoch_files = find_epoch_files(args.pregenerated_data)
        for _, metrics_path in self.epoch_files:
            read_epoch_metrics(metrics_path, args.max_seq_length)
        self.teacher_config = read_model_config(args.teacher_model, "--teacher_model")
        require_weights(args.teacher_model, "--teacher_model")
        BertModel.check_weights(args.teacher_model, fresh_allowed=TEACHER_FRESH)
        self.vocab_file = vocab_path(args.teacher_model)
        if self.vocab_file is None:
            raise FileNotFoundError(f"--teacher_model {args.teacher_model}: no vocab.txt")
        student_config = read_student_config(args.spiking_student_model, spiking_overrides(args))
        check_vocab_size(self.vocab_file, {"--teacher_model": self.teacher_config,
                                           "--spiking_student_model": student_config})
        check_compatible(self.teacher_config, student_config, self.args.kd_losses)
        self.check_student_start(student_config, has_teacher=True)
        check_max_seq_length(args.max_seq_length, {"--teacher_model": self.teacher_config,
                                                   "--spiking_student_model": student_config})
        self.student_overrides = {**fit_size_override(student_config, self.teacher_config),
                                  "teacher_size": shape_record(self.teacher_config),
                                  "do_lower_case": args.do_lower_case}
        if not args.fresh_student:
            check_student_weights(SpikingBertForGeneralKD, args.spiking_student_model, spiking_overrides(args),
                                  **self.student_overrides)
        self.check_output(inputs=(args.teacher_model, args.spiking_student_model, args.pregenerated_data))

    def resume_differences(self, checkpoint):
        return spiking_differences(checkpoint, spiking_overrides(self.args))

    def main(self, devices):
        args = self.args
        logger.info("general distillation: %s", vars(args))
        logger.info(devices.describe())
        set_seed(args.seed)
        teacher = BertModel.from_pretrained(args.teacher_model, strict=True, fresh_allowed=TEACHER_FRESH)
        teacher.eval()
        student_dir = self.resume_from or args.spiking_student_model
        if "fit_size" in self.student_overrides:
            logger.info("student fit_size set to the teacher's hidden size %d", self.student_overrides["fit_size"])
        student = SpikingBertForGeneralKD.from_pretrained(
            student_dir, flags=spiking_overrides(args), fresh_weights=args.fresh_student and not self.resume_from,
            **self.student_overrides)
        spiking = student.config.spiking
        logger.info("student from %s: t_conv %s, vth %s, fit_size %s", student_dir, spiking.t_conv, spiking.vth,
                    student.config.fit_size)
        vocab = load_vocab(self.vocab_file)
        memmap_parent = args.output_dir if args.reduce_memory else None
        epochs = epoch_sources(self.epoch_files, args.num_train_epochs, vocab, args.max_seq_length, memmap_parent)
        if self.resume_from is None and (args.init_from_teacher or args.calibrate_vth is not None):
            first_epoch = epochs[0].load()
            try:
                self.start_student(student, first_epoch, teacher)
            finally:
                first_epoch.close()
        teacher_model, student_model = wrap_frozen(teacher, devices), wrap_student(student, devices)

        output_values = "minilm" in args.kd_losses

        def loss_fn(batch):
            with torch.no_grad():
                teacher_outputs = teacher_model(**batch.inputs(), output_values=output_values)
            student = student_model(**batch.inputs())
            return with_rate_penalty(internal_layer_loss(student, teacher_outputs, batch.attention_mask,
                                                         args.kd_losses), student, batch.attention_mask,
                                     args.rate_penalty)

        def on_checkpoint(_state):
            if devices.is_main:
                publish_student(args.output_dir, unwrap(student_model), self.vocab_file)

        finished, _ = self.train(model=student_model, bare_model=student, devices=devices, epochs=epochs,
                                 loss_fn=loss_fn, on_checkpoint=on_checkpoint, schedule="warmup_linear",
                                 vocab_file=self.vocab_file)
        if finished:
            logger.info("done: student in %s", args.output_dir)

"""The skeleton the training scripts share (general KD, task KD and evaluation, teacher fine-tuning).

A script object does every check in its constructor, so bad input writes nothing, then
``run()`` picks the devices, claims the output folder, logs into it and calls the
subclass's ``main(devices)``. ``train(...)`` builds the optimizer, resumes and runs the
TrainingLoop for a subclass.
"""
import logging
import sys

from distill.checkpointing import load_training_state, resolve_resume
from distill.devices import cleanup, configure_cpu_allocator, select_devices
from distill.runs import check_output_dir, claimed_output_dir, logging_to
from distill.training import (LoopSettings, TrainingLoop, build_optimizer, check_resume_settings, epoch_order,
                              initial_state, steps_in_epoch)
from models.initialisation import calibrate_thresholds, init_from_teacher

logger = logging.getLogger(__name__)

# Errors of bad input: main() turns them into one "error: ..." line and exit code 1.
INPUT_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


class TrainingScript:
    """Base of a training script configured by its parsed ``args``.

    Subclasses check their inputs in ``__init__`` and call ``check_output`` last, then
    implement ``main(devices)``. ``args`` must have output_dir, overwrite, continue_train,
    no_cuda, bf16 and the LoopSettings flags.
    """

    def __init__(self, args):
        self.args = args
        self.resume_from = self.saved_state = None

    def check_output(self, inputs=(), allow_existing=False):
        """Refuse an output folder that may not be used, and find the checkpoint to resume from.

        ``allow_existing``: any existing folder is fine (evaluation only adds result files).
        """
        args = self.args
        if allow_existing:
            check_output_dir(args.output_dir, overwrite=True)
            return
        check_output_dir(args.output_dir, args.overwrite, args.continue_train, inputs=inputs)
        self.resume_from = resolve_resume(args.output_dir, args.continue_train)
        if self.resume_from is not None:
            self.saved_state = load_training_state(self.resume_from)
            check_resume_settings(self.saved_state["run"], LoopSettings.from_args(args).resume_settings(),
                                  self.resume_from)

    def run(self, keep_output=False):
        """main(devices) with the output folder claimed and log.txt written into it; returns its result.

        ``keep_output``: the folder's existing contents stay (evaluation into a model folder).
        """
        args = self.args
        devices = select_devices(args.no_cuda, args.bf16)
        try:
            overwrite = args.overwrite and not keep_output
            with claimed_output_dir(args.output_dir, overwrite, args.continue_train, devices.is_main):
                devices.barrier()
                with logging_to(args.output_dir, devices.is_main):
                    if devices.device.type == "cpu":
                        configure_cpu_allocator(args.cpu_allocator)
                    return self.main(devices)
        finally:
            cleanup(devices)

    def main(self, devices):
        raise NotImplementedError

    def check_student_start(self, student_config, has_teacher):
        """--init_from_teacher needs a teacher, --calibrate_vth thresholds of the student's own."""
        args = self.args
        if getattr(args, "init_from_teacher", False) and not has_teacher:
            raise ValueError("--init_from_teacher needs a teacher (--teacher_model) in this mode")
        if getattr(args, "calibrate_vth", None) is not None and not student_config.spiking.per_population_thresholds:
            raise ValueError("--calibrate_vth needs --threshold_scope population or neuron")

    def start_student(self, student, data, batch_inputs, teacher=None):
        """--init_from_teacher, then --calibrate_vth on the first training examples (epoch 0's order, four
        batches); nothing for a resumed run. ``batch_inputs(batch)`` -> (input_ids, token_type_ids, mask)."""
        args = self.args
        if self.resume_from is not None:
            return
        if args.init_from_teacher:
            init_from_teacher(student, teacher.state_dict(), teacher.config)
        if args.calibrate_vth is not None:
            order = epoch_order(len(data), args.seed, 0)[:4 * args.train_batch_size]
            calibrate_thresholds(student, *batch_inputs(data.batch(order)), args.calibrate_vth)

    def train(self, *, model, bare_model, devices, epochs, loss_fn, on_checkpoint, schedule, vocab_file,
              settings=None):
        """Optimise ``bare_model`` (wrapped as ``model``) over ``epochs`` with BertAdam and ``schedule``,
        resuming from the checkpoint found by check_output; returns (finished, TrainState)."""
        args = self.args
        settings = settings or LoopSettings.from_args(args)
        total_steps = sum(steps_in_epoch(epoch.num_examples, settings.train_batch_size) for epoch in epochs)
        optimizer = build_optimizer(bare_model, args.learning_rate, args.warmup_proportion, total_steps, schedule)
        state, resumed_rng = initial_state(settings, optimizer, self.resume_from, self.saved_state, devices.rank)
        logger.info("%d optimisation steps over %d epochs, schedule %s", total_steps, len(epochs), schedule)
        loop = TrainingLoop(model=model, bare_model=bare_model, optimizer=optimizer, devices=devices, epochs=epochs,
                            loss_fn=loss_fn, on_checkpoint=on_checkpoint, settings=settings,
                            vocab_file=vocab_file, state=state, resumed_rng=resumed_rng)
        return loop.run(), state


def run_script(script_class, args):
    """Build and run a script; bad input ends the process with one ``error: ...`` line."""
    try:
        return script_class(args).run()
    except INPUT_ERRORS as e:
        sys.exit(f"error: {e}")

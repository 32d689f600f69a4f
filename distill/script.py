"""The skeleton the training scripts share (general KD, task KD and evaluation, teacher fine-tuning).

A script object does every check in its constructor, so bad input writes nothing, then
``run()`` picks the devices, claims the output folder, logs into it and calls the
subclass's ``main(devices)``. ``train(...)`` builds the optimizer, resumes and runs the
TrainingLoop for a subclass.
"""
import logging
import sys

from distill.checkpointing import list_checkpoints, resume_point
from distill.cli import check_run_args
from distill.curves import write_curves
from distill.devices import cleanup, configure_cpu_allocator, select_devices
from distill.runs import check_output_dir, claimed_output_dir, logging_to
from distill.training import (LoopSettings, TrainingLoop, build_optimizer, check_resume_settings, epoch_order,
                              initial_state, steps_in_epoch)
from models.initialisation import calibrate_thresholds, init_from_teacher
from transformer.file_utils import error_line

logger = logging.getLogger(__name__)

# Errors of bad input and of the disk (not found, not writable, full): main() turns them into one
# "error: ..." line and exit code 1.
INPUT_ERRORS = (ValueError, OSError)
# The exit code of a run stopped by Ctrl-C (128 + SIGINT), as a shell reports it.
INTERRUPTED_EXIT_CODE = 130


class TrainingScript:
    """Base of a training script configured by its parsed ``args``.

    Subclasses check their inputs in ``__init__`` and call ``check_output`` last, then
    implement ``main(devices)``. ``args`` must have output_dir, overwrite, continue_train,
    no_cuda, bf16, learning_rate, warmup_proportion, the LoopSettings flags and those of
    ``resume_flags``.
    """

    # Flags besides the data order's (distill.training.RESUME_KEYS) whose change would change the result:
    # a resumed run must have the values its checkpoint was written with (docs/reliability.md lists the
    # flags that may change).
    resume_flags = ("learning_rate", "warmup_proportion", "max_seq_length", "do_lower_case", "eval_step")

    def __init__(self, args):
        self.args = args
        self.resume_from = self.saved_state = None
        self.state = self.replacement = None
        check_run_args(args)

    def run_record(self, settings=None):
        """The settings a checkpoint records and a resumed run must share: the loop's RESUME_KEYS and the
        ``resume_flags``."""
        settings = settings or LoopSettings.from_args(self.args)
        return {**settings.resume_settings(), **{name: normalised(getattr(self.args, name))
                                                 for name in self.resume_flags}}

    def resume_differences(self, checkpoint):
        """(flag, the checkpoint's value, this run's) of settings checked against the checkpoint's own files."""
        return []

    def check_output(self, inputs=(), allow_existing=False):
        """Refuse an output folder that may not be used, and find the checkpoint to resume from.

        ``allow_existing``: any existing folder is fine (evaluation only adds result files).
        """
        args = self.args
        if allow_existing:
            check_output_dir(args.output_dir, add_files=True)
            return
        check_output_dir(args.output_dir, args.overwrite, args.continue_train, inputs=inputs)
        self.resume_from, self.saved_state = resume_point(args.output_dir, args.continue_train)
        if self.resume_from is not None:
            check_resume_settings(self.saved_state.get("run", {}), self.run_record(), self.resume_from,
                                  self.resume_differences(self.resume_from))

    def run(self, keep_output=False):
        """main(devices) with the output folder claimed and log.txt written into it; returns its result.

        ``keep_output``: the folder's existing contents stay (evaluation into a model folder).
        """
        args = self.args
        devices = select_devices(args.no_cuda, args.bf16)
        try:
            overwrite = args.overwrite and not keep_output
            with claimed_output_dir(args.output_dir, overwrite, args.continue_train, devices.is_main) as replaced:
                self.replacement = replaced
                devices.barrier()
                with logging_to(args.output_dir, devices.is_main):
                    if devices.device.type == "cpu":
                        configure_cpu_allocator(args.cpu_allocator)
                    return self.main(devices)
        finally:
            cleanup(devices)

    def main(self, devices):
        raise NotImplementedError

    def interrupted(self):
        """Where a run stopped by Ctrl-C stands and how to go on, in one line."""
        args = self.args
        where = "before training started" if self.state is None else f"at step {self.state.global_step}"
        checkpoints = list_checkpoints(args.output_dir)
        if checkpoints:
            return f"interrupted {where}; the last checkpoint is {checkpoints[-1]}: rerun with --continue_train to " \
                   "resume from it"
        if self.replacement is not None:
            return f"interrupted {where}, before the first checkpoint; {args.output_dir} holds the previous run " \
                   "again: rerun the same command to start again"
        return f"interrupted {where}, before the first checkpoint: rerun the same command to start again"

    def check_student_start(self, student_config, has_teacher):
        """--init_from_teacher needs a teacher, --calibrate_vth thresholds of the student's own."""
        args = self.args
        if getattr(args, "init_from_teacher", False) and not has_teacher:
            raise ValueError("--init_from_teacher needs a teacher (--teacher_model) in this mode")
        if getattr(args, "calibrate_vth", None) is not None and not student_config.spiking.per_population_thresholds:
            raise ValueError("--calibrate_vth needs --threshold_scope population or neuron")

    def start_student(self, student, data, teacher=None):
        """--init_from_teacher, then --calibrate_vth on the first training examples (epoch 0's order, four
        batches); nothing for a resumed run."""
        args = self.args
        if self.resume_from is not None:
            return
        if args.init_from_teacher:
            init_from_teacher(student, teacher.state_dict(), teacher.config)
        if args.calibrate_vth is not None:
            order = epoch_order(len(data), args.seed, 0)[:4 * args.train_batch_size]
            calibrate_thresholds(student, data.batch(order), args.calibrate_vth)

    def train(self, *, model, bare_model, devices, epochs, loss_fn, on_checkpoint, schedule, vocab_file,
              settings=None):
        """Optimise ``bare_model`` (wrapped as ``model``) over ``epochs`` with BertAdam and ``schedule``,
        resuming from the checkpoint found by check_output; returns (finished, TrainState)."""
        args = self.args
        settings = settings or LoopSettings.from_args(args)
        total_steps = sum(steps_in_epoch(epoch.num_examples, settings.train_batch_size) for epoch in epochs)
        optimizer = build_optimizer(bare_model, args.learning_rate, args.warmup_proportion, total_steps, schedule)
        self.state, resumed_rng = initial_state(settings, optimizer, self.resume_from, self.saved_state,
                                                devices.rank, run=self.run_record(settings))
        logger.info("%d optimisation steps over %d epochs, schedule %s", total_steps, len(epochs), schedule)
        # The folder --overwrite moved aside is deleted once this run has a checkpoint of its own.
        after_save = self.replacement.commit if self.replacement is not None else None
        loop = TrainingLoop(model=model, bare_model=bare_model, optimizer=optimizer, devices=devices, epochs=epochs,
                            loss_fn=loss_fn, on_checkpoint=on_checkpoint, settings=settings,
                            vocab_file=vocab_file, state=self.state, resumed_rng=resumed_rng, after_save=after_save)
        finished = loop.run()
        if finished and devices.is_main:
            try:
                curves = write_curves(args.output_dir, f"{type(self).__name__}: {args.output_dir}")
            except (OSError, ValueError, SyntaxError) as e:  # a figure is an extra: the finished run stands
                logger.warning("curves.png not drawn: %s", e)
            else:
                if curves is not None:
                    logger.info("losses, spike rate and dev scores against the steps: %s", curves)
        return finished, self.state


def normalised(value):
    """A flag's value as a checkpoint records it (plain data; lists of choices sorted)."""
    return sorted(value) if isinstance(value, (list, tuple)) else value


def run_script(script_class, args):
    """Build and run a script; bad input ends the process with one ``error: ...`` line, Ctrl-C with one line
    saying where the run stopped and how to go on (exit code 130)."""
    script = None
    try:
        script = script_class(args)
        return script.run()
    except KeyboardInterrupt:
        print(script.interrupted() if script is not None else "interrupted before anything was written",
              file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
    except INPUT_ERRORS as e:
        sys.exit(f"error: {error_line(e)}")


def run_main(main, *args, interrupted="interrupted"):
    """Run a command-line ``main`` (the benchmarks', preprocessing's, augmentation's): bad input or a disk error
    ends the process with one ``error: ...`` line, Ctrl-C with the line ``interrupted`` (exit code 130)."""
    try:
        return main(*args)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
    except INPUT_ERRORS as e:
        sys.exit(f"error: {error_line(e)}")

"""The optimisation loop shared by general and task distillation.

Data order is a pure function of (seed, epoch): every epoch is a seeded permutation cut
into optimisation batches of --train_batch_size (the last, partial one kept), each cut
into --gradient_accumulation_steps micro-batches, each micro-batch split across DDP
ranks. With --bucket_by_length the permutation is rearranged so that each batch holds
sentences of similar lengths (bucketed_order); it is still a function of (seed, epoch) and
the lengths. A resumed run therefore needs only (epoch, steps done in that epoch) plus the
optimizer and RNG states to continue exactly where an uninterrupted run would be.

Every micro-batch loss is a mean over its rows; it is scaled by
rows_here * world_size / rows_in_the_optimisation_batch, so that after DDP averages
gradients over ranks and accumulation sums them over micro-batches the gradient is that
of the mean loss over the whole optimisation batch, partial batches included.
"""
import logging
import math
import os
import random
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from distill.checkpointing import capture_rng, list_checkpoints, prune_checkpoints, restore_rng, save_checkpoint
from distill.devices import no_sync
from transformer.optimization import BertAdam, grouped_parameters

logger = logging.getLogger(__name__)

# Settings a resumed run must share with the run that wrote the checkpoint: they fix the data
# order and the meaning of the stored data position.
RESUME_KEYS = ("train_batch_size", "gradient_accumulation_steps", "seed", "num_train_epochs", "world_size",
               "bucket_by_length")
# The value of a resume key for checkpoints written before the key existed.
RESUME_DEFAULTS = {"bucket_by_length": False}

# --bucket_by_length sorts pools of this many batches by length. Bigger pools pad less; smaller
# pools keep the company a sentence meets in its batch more random.
BUCKET_POOL_BATCHES = 50


@dataclass
class LoopSettings:
    """How TrainingLoop runs: batches, seed, when to log, checkpoint and stop, where to write."""
    output_dir: str
    train_batch_size: int
    gradient_accumulation_steps: int
    num_train_epochs: int
    seed: int
    eval_step: int
    logging_steps: int = 50
    keep_checkpoints: int = 2
    continue_train: object = False  # False, True (the newest checkpoint) or a checkpoint path
    max_steps: int = None  # testing aid: stop with a resumable checkpoint after this many steps
    bucket_by_length: bool = False

    @classmethod
    def from_args(cls, args, **overrides):
        """The settings of a script's parsed flags (same names); ``overrides`` replace some."""
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        return cls(**{**values, **overrides})

    def resume_settings(self):
        """The settings in RESUME_KEYS of this run (world size from torchrun's environment)."""
        settings = {key: getattr(self, key) for key in RESUME_KEYS if key != "world_size"}
        settings["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
        return settings


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def epoch_order(num_examples, seed, epoch):
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def bucketed_order(lengths, batch_size, seed, epoch):
    """The epoch's permutation rearranged so that its consecutive cuts of ``batch_size`` are batches of similar
    lengths: the shuffled examples are cut into pools of BUCKET_POOL_BATCHES batches, each pool is sorted by
    length (stably) and cut into batches, and the full batches are shuffled over the whole epoch (the partial
    batch, if any, stays last). A function of (lengths, batch_size, seed, epoch) only."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    pool = batch_size * BUCKET_POOL_BATCHES
    for start in range(0, len(order), pool):
        members = order[start:start + pool]
        order[start:start + pool] = members[np.argsort(lengths[members], kind="stable")]
    full = len(order) // batch_size
    batches = order[:full * batch_size].reshape(full, batch_size)[rng.permutation(full)]
    return np.concatenate([batches.reshape(-1), order[full * batch_size:]])


def plan_epoch(num_examples, batch_size, accumulation, seed, epoch, lengths=None):
    """Optimisation steps of one epoch, each a list of micro-batches of example indices; with ``lengths``
    (per example) bucketed by length."""
    if lengths is None:
        order = epoch_order(num_examples, seed, epoch)
    else:
        order = bucketed_order(lengths, batch_size, seed, epoch)
    steps = []
    for start in range(0, num_examples, batch_size):
        rows = order[start:start + batch_size]
        steps.append([micro for micro in np.array_split(rows, accumulation) if len(micro)])
    return steps


def steps_in_epoch(num_examples, batch_size):
    return math.ceil(num_examples / batch_size)


def shard(batch, rank, world_size):
    """This rank's rows of a micro-batch (a glue.Batch) and how many real rows it holds.

    A rank left without rows (a tiny last batch) runs the first row with weight 0, so
    that every rank still takes part in the gradient all-reduce.
    """
    if world_size == 1:
        return batch, batch.size
    rows = np.array_split(np.arange(batch.size), world_size)[rank]
    if len(rows) == 0:
        return batch.map(lambda t: t[:1]), 0
    rows = torch.from_numpy(rows)
    return batch.map(lambda t: t[rows]), len(rows)


@dataclass
class TrainState:
    """Where training stands; stored in every checkpoint's training_state.pt."""
    global_step: int = 0
    epoch: int = 0
    steps_done_in_epoch: int = 0
    best_metric: float = None
    best_step: int = None
    hooked_step: int = None  # last step whose scheduled checkpoint hook (evaluation, publishing) ran
    run: dict = field(default_factory=dict)

    def is_new_best(self, score):
        """The training scripts' one best-checkpoint rule: a dev score becomes the best (returns True, with this
        step) when there is none yet or it beats the best. A NaN score (e.g. the correlation of constant
        predictions) counts as -inf: it never beats a number, and any number beats it."""
        score = -math.inf if math.isnan(score) else score
        best = self.best_metric
        if best is not None and not math.isnan(best) and score <= best:  # a NaN best: from older checkpoints
            return False
        self.best_metric, self.best_step = score, self.global_step
        return True

    @classmethod
    def from_saved(cls, saved, run):
        return cls(global_step=saved["global_step"], epoch=saved["epoch"],
                   steps_done_in_epoch=saved["steps_done_in_epoch"], best_metric=saved["best_metric"],
                   best_step=saved["best_step"], hooked_step=saved["hooked_step"], run=run)


def build_optimizer(model, learning_rate, warmup_proportion, total_steps, schedule):
    """BertAdam over the student; no weight decay for biases and LayerNorm weights."""
    return BertAdam(grouped_parameters(model), lr=learning_rate, warmup=warmup_proportion, t_total=total_steps,
                    schedule=schedule)


def initial_state(settings, optimizer, resume_from, saved_state, rank, run=None):
    """(TrainState, RNG state to restore or None): fresh, or taken from a checkpoint's training state.
    ``run``: the settings the checkpoints record (default: the loop's RESUME_KEYS)."""
    run = run if run is not None else settings.resume_settings()
    if saved_state is None:
        if settings.continue_train:
            logger.warning("--continue_train: no checkpoint in %s; training from the start", settings.output_dir)
        return TrainState(run=run), None
    optimizer.load_state_dict(saved_state["optimizer"])
    state = TrainState.from_saved(saved_state, run)
    logger.info("resuming from %s at step %d (epoch %d, %d steps into it)", resume_from, state.global_step,
                state.epoch, state.steps_done_in_epoch)
    return state, saved_state["rng"][rank]


def check_resume_settings(saved_run, current_run, checkpoint, differences=()):
    """Refuse to resume ``checkpoint`` with settings other than those it was written with (``saved_run``):
    one line naming every differing flag. ``differences``: (flag, saved, current) found by the caller.
    A setting the checkpoint did not record yet (written by an older version) is not checked."""
    differences = list(differences)
    for key, current in current_run.items():
        if key not in saved_run and key not in RESUME_DEFAULTS:
            continue
        saved = saved_run.get(key, RESUME_DEFAULTS.get(key))
        if saved != current:
            differences.append((key, saved, current))
    if differences:
        named = ", ".join(f"{flag_name(key)} {shown(saved)} (this run: {shown(current)})"
                          for key, saved, current in differences)
        raise ValueError(f"{checkpoint} was written with other settings: {named}; resume with the checkpoint's "
                         "settings, or start a new run")


def flag_name(key):
    return "world size" if key == "world_size" else f"--{key}"


def shown(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "not given"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


class NonFiniteLoss(ValueError):
    """The loss became NaN or infinite; the message names the step and the last checkpoint."""


class TrainingLoop:
    """Runs the optimisation steps, logs, checkpoints and resumes.

    ``loss_fn(batch)`` gets this rank's rows of a micro-batch (a glue.Batch on the
    device) and returns a dict of scalar tensors whose "loss" entry is optimised; the
    other entries are logged. ``on_checkpoint(state)`` runs (on every rank, before the
    resumable checkpoint is written) at every --eval_step and at each epoch end: it may
    evaluate, publish the student and update ``state.best_metric``.
    """

    def __init__(self, *, model, bare_model, optimizer, devices, epochs, loss_fn, on_checkpoint, settings,
                 vocab_file, state, resumed_rng=None, after_save=None):
        self.model = model
        self.bare_model = bare_model
        self.optimizer = optimizer
        self.devices = devices
        self.epochs = epochs
        self.loss_fn = loss_fn
        self.on_checkpoint = on_checkpoint
        self.output_dir = settings.output_dir
        self.vocab_file = vocab_file
        self.state = state
        self.batch_size = settings.train_batch_size
        self.accumulation = settings.gradient_accumulation_steps
        self.seed = settings.seed
        self.eval_step = settings.eval_step
        self.logging_steps = settings.logging_steps
        self.max_steps = settings.max_steps
        self.bucket_by_length = settings.bucket_by_length
        self.keep_checkpoints = settings.keep_checkpoints
        # A run resumed from an older checkpoint may replace the newer ones it recomputes.
        self.overwrite_checkpoints = bool(settings.continue_train)
        self.resumed_rng = resumed_rng
        self.after_save = after_save
        self.last_saved_step = state.global_step if resumed_rng is not None else None
        self.logged_sums = {}
        self.logged_steps = 0
        self.last_lr = None

    @property
    def total_steps(self):
        return sum(steps_in_epoch(epoch.num_examples, self.batch_size) for epoch in self.epochs)

    def run(self):
        """Train to the end (True) or until --max_steps (False)."""
        state, devices = self.state, self.devices
        if self.resumed_rng is not None:
            restore_rng(self.resumed_rng)
        self.model.train()
        progress = tqdm(total=self.total_steps, initial=state.global_step, disable=not devices.is_main,
                        desc="train", dynamic_ncols=True)
        with logging_redirect_tqdm(), progress:
            return self._run_epochs(progress)

    def _run_epochs(self, progress):
        state = self.state
        for epoch_index in range(state.epoch, len(self.epochs)):
            data = self.epochs[epoch_index].load()
            try:
                lengths = data.lengths() if self.bucket_by_length else None
                steps = plan_epoch(len(data), self.batch_size, self.accumulation, self.seed, epoch_index, lengths)
                for step_index in range(state.steps_done_in_epoch, len(steps)):
                    losses = self._optimisation_step(data, steps[step_index])
                    state.global_step += 1
                    state.steps_done_in_epoch = step_index + 1
                    progress.update(1)
                    progress.set_postfix(loss=f"{losses['loss']:.4g}")
                    if state.global_step % self.logging_steps == 0:
                        self._log_losses()
                    if state.global_step % self.eval_step == 0:
                        self._checkpoint()
                    if self.max_steps is not None and state.global_step >= self.max_steps:
                        self._checkpoint(scheduled=False)
                        logger.info("stopping after --max_steps %d", self.max_steps)
                        return False
            finally:
                data.close()
            state.epoch = epoch_index + 1
            state.steps_done_in_epoch = 0
            self._checkpoint()
            logger.info("epoch %d done", epoch_index)
        return True

    def _optimisation_step(self, data, micro_batches):
        devices = self.devices
        rows_in_step = sum(len(micro) for micro in micro_batches)
        sums = {}
        for i, micro in enumerate(micro_batches):
            batch, rows_here = shard(data.batch(micro), devices.rank, devices.world_size)
            batch = batch.map(lambda t: t.to(devices.device))
            weight = rows_here * devices.world_size / rows_in_step
            with no_sync(self.model, skip_sync=i < len(micro_batches) - 1):
                with devices.autocast():
                    losses = self.loss_fn(batch)
                (losses["loss"] * weight).backward()
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * rows_here / rows_in_step
        names = sorted(sums)
        totals = devices.sum_across_ranks(torch.tensor([sums[n] for n in names], dtype=torch.float64))
        step_losses = dict(zip(names, totals.tolist()))
        self._check_finite(step_losses)
        self.last_lr = self.optimizer.get_lr()[0]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        for name, value in step_losses.items():
            self.logged_sums[name] = self.logged_sums.get(name, 0.0) + value
        self.logged_steps += 1
        return step_losses

    def _check_finite(self, step_losses):
        """Stop before a NaN or infinite loss reaches the weights (every rank sees the same summed losses)."""
        if math.isfinite(step_losses["loss"]):
            return
        terms = ", ".join(f"{name} {value:.6g}" for name, value in step_losses.items())
        checkpoints = list_checkpoints(self.output_dir)
        kept = (f"the last checkpoint, {checkpoints[-1]}, is kept" if checkpoints else
                "no checkpoint had been written")
        raise NonFiniteLoss(f"step {self.state.global_step + 1}: the loss is not finite ({terms}); training stopped "
                            f"before this step changed the weights and {kept} (a smaller --learning_rate may help; "
                            "it needs a new run)")

    def _log_losses(self):
        if not self.logged_steps:
            return
        means = " ".join(f"{name}={value / self.logged_steps:.6g}" for name, value in sorted(self.logged_sums.items()))
        logger.info("step %d lr %.6g %s", self.state.global_step, self.last_lr, means)
        self.logged_sums, self.logged_steps = {}, 0

    def _checkpoint(self, scheduled=True):
        """Run ``on_checkpoint`` (once per step, at scheduled points only) and write the resumable checkpoint.

        A --max_steps stop between scheduled points writes the checkpoint without the hook,
        so that a stopped-and-resumed run evaluates at exactly the steps an uninterrupted run does.
        """
        state = self.state
        self._log_losses()
        hook_ran = scheduled and state.hooked_step != state.global_step
        if hook_ran:
            with torch.random.fork_rng(devices=self._cuda_devices()):
                was_training = self.model.training
                self.on_checkpoint(state)
                self.model.train(was_training)
            state.hooked_step = state.global_step
        if state.global_step == self.last_saved_step and not hook_ran:
            return
        rng_states = self.devices.gather_objects(capture_rng())
        if self.devices.is_main:
            training_state = {**asdict(state), "optimizer": self.optimizer.state_dict(), "rng": rng_states}
            overwrite = self.overwrite_checkpoints or state.global_step == self.last_saved_step
            path = save_checkpoint(self.output_dir, state.global_step, self.bare_model, self.vocab_file,
                                   training_state, overwrite=overwrite)
            logger.info("checkpoint %s", path)
            prune_checkpoints(self.output_dir, self.keep_checkpoints)
            if self.after_save is not None:
                self.after_save()
        self.devices.barrier()
        self.last_saved_step = state.global_step

    def _cuda_devices(self):
        return list(range(torch.cuda.device_count())) if self.devices.device.type == "cuda" else []

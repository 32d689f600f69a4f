"""BertAdam: the original BERT optimiser, with pytorch-pretrained-bert 0.6's learning-rate schedules.

Learning rate at a step = lr * schedule(progress, warmup) with progress = step / t_total,
where ``step`` counts the updates already made (so the first update uses progress 0,
as in the original). With t_total < 0 the schedule is off (factor 1). Schedules:

    none             1
    warmup_constant  progress / warmup while progress < warmup, then 1
    warmup_linear    progress / warmup while progress < warmup, then
                     max((progress - 1) / (warmup - 1), 0): linear from 1 at the end of
                     warm-up down to 0 at t_total, 0 afterwards
    warmup_cosine    progress / warmup while progress < warmup, then
                     0.5 * (1 + cos(pi * (progress - warmup) / (1 - warmup))): half a
                     cosine from 1 to 0 at t_total (it rises again after t_total)

warmup is a fraction of t_total; -1 means no warm-up.
"""
import logging
import math

import torch
from torch import nn
from torch.optim import Optimizer

logger = logging.getLogger(__name__)


def schedule_none(progress, warmup):
    return 1.0


def schedule_warmup_constant(progress, warmup):
    if progress < warmup:
        return progress / warmup
    return 1.0


def schedule_warmup_linear(progress, warmup):
    if progress < warmup:
        return progress / warmup
    return max((progress - 1.0) / (warmup - 1.0), 0.0)


def schedule_warmup_cosine(progress, warmup):
    if progress < warmup:
        return progress / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / (1.0 - warmup)))


SCHEDULES = {
    "none": schedule_none,
    "warmup_constant": schedule_warmup_constant,
    "warmup_linear": schedule_warmup_linear,
    "warmup_cosine": schedule_warmup_cosine,
}


def schedule_factor(schedule, step, warmup, t_total):
    """Multiplier of the base learning rate after ``step`` updates."""
    if t_total < 0:
        return 1.0
    return SCHEDULES[schedule](step / t_total, max(warmup, 0.0))


def grouped_parameters(model, weight_decay=0.01):
    """Parameter groups for BertAdam: weight decay on every trainable parameter except biases and LayerNorm."""
    layer_norm_params = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith("bias") or id(param) in layer_norm_params:
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


class BertAdam(Optimizer):
    """Adam without bias correction, with BERT's weight decay and per-parameter gradient clipping.

    Per parameter p with gradient g (clipped to norm ``max_grad_norm`` when > 0):
        m <- b1 * m + (1 - b1) * g
        v <- b2 * v + (1 - b2) * g * g
        p <- p - lr_t * (m / (sqrt(v) + e) + weight_decay * p)
    The decay is added to the update rather than the gradient, so Adam's scaling does
    not touch it. The update count lives in each parameter's state (``step``), so
    ``state_dict`` / ``load_state_dict`` resume the schedule where it stopped.
    """

    def __init__(self, params, lr, warmup=-1, t_total=-1, schedule="warmup_linear", b1=0.9, b2=0.999,
                 e=1e-6, weight_decay=0.01, max_grad_norm=1.0):
        if lr < 0.0:
            raise ValueError(f"invalid learning rate {lr} (must be >= 0)")
        if schedule not in SCHEDULES:
            raise ValueError(f"invalid schedule {schedule!r} (choose from {', '.join(SCHEDULES)})")
        if not 0.0 <= warmup < 1.0 and warmup != -1:
            raise ValueError(f"invalid warmup {warmup} (a fraction in [0, 1) of t_total, or -1)")
        if not 0.0 <= b1 < 1.0:
            raise ValueError(f"invalid b1 {b1} (must be in [0, 1))")
        if not 0.0 <= b2 < 1.0:
            raise ValueError(f"invalid b2 {b2} (must be in [0, 1))")
        if e < 0.0:
            raise ValueError(f"invalid epsilon {e} (must be >= 0)")
        if schedule != "none" and t_total < 0:
            logger.info("t_total is %s: schedule %s is not applied, the learning rate stays %s", t_total, schedule, lr)
        defaults = dict(lr=lr, schedule=schedule, warmup=warmup, t_total=t_total, b1=b1, b2=b2, e=e,
                        weight_decay=weight_decay, max_grad_norm=max_grad_norm)
        super().__init__(params, defaults)
        self.warned_beyond_t_total = False

    def _group_step(self, group):
        """Updates made so far by a parameter group (all its parameters step together)."""
        for p in group["params"]:
            if self.state[p]:
                return self.state[p]["step"]
        return 0

    def _scheduled_lr(self, group, step):
        return group["lr"] * schedule_factor(group["schedule"], step, group["warmup"], group["t_total"])

    def get_lr(self):
        """Learning rate of each parameter group for its next update."""
        return [self._scheduled_lr(group, self._group_step(group)) for group in self.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("BertAdam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["next_m"] = torch.zeros_like(p)
                    state["next_v"] = torch.zeros_like(p)
                if group["max_grad_norm"] > 0:
                    nn.utils.clip_grad_norm_(p, group["max_grad_norm"])
                grad = p.grad
                next_m, next_v = state["next_m"], state["next_v"]
                next_m.mul_(group["b1"]).add_(grad, alpha=1 - group["b1"])
                next_v.mul_(group["b2"]).addcmul_(grad, grad, value=1 - group["b2"])
                update = next_m / (next_v.sqrt() + group["e"])
                if group["weight_decay"] > 0.0:
                    update.add_(p, alpha=group["weight_decay"])
                t_total = group["t_total"]
                if t_total > 0 and state["step"] >= t_total and not self.warned_beyond_t_total:
                    logger.warning("training beyond t_total=%d steps: the scheduled learning rate is %g",
                                   t_total, self._scheduled_lr(group, state["step"]))
                    self.warned_beyond_t_total = True
                p.add_(update, alpha=-self._scheduled_lr(group, state["step"]))
                state["step"] += 1
        return loss

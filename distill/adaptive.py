"""Adaptive time steps in evaluation: each sentence's simulation stops once its answer has settled.

After t steps the last layer's running [CLS] rate (its spike count / t) already gives logits,
classifier(relu(rate)), the function the model applies after t_conv steps. Every
``check_every`` steps, and at t_conv, each sentence still running is checked; it stops when

    at least ``min_steps`` steps have run,
    its predicted class (argmax of the logits) has not changed for ``patience`` consecutive
    checks (it is the class of the ``patience`` checks before), and
    its margin, top-1 minus top-2 softmax probability, is at least ``margin``,

and at t_conv at the latest. A stopped sentence's outputs are those of a simulation of it for
the steps it ran (logits, rates = spike counts / its steps); it then leaves the batch
(Simulation.keep), so later steps run smaller matrix products, and the other sentences'
states are untouched. Classification only: the rule watches the predicted class.

The same simulation can also be read out after chosen numbers of steps for every sentence
(simulate_with_readouts): a simulation's first S steps are a simulation of S steps, so one run gives
the evaluations at several t_conv values and the adaptive one together.
"""
import logging
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch

from models.snn_ide_bert import population_statistics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoppingRule:
    """When a sentence's simulation stops (module docstring); the defaults are the flags'.

    Chosen on the default quick start's student at t_conv 32 (README, Evaluation speed): patience 2 kept
    its accuracy with 45% of the steps, patience 1 with 34%; checking every 2 steps from step 4 or 6 lost
    0.9-1.3 points.
    """
    check_every: int = 4
    patience: int = 1
    margin: float = 0.2
    min_steps: int = 8

    def __post_init__(self):
        if self.check_every < 1:
            raise ValueError(f"--adaptive_check_every must be >= 1, got {self.check_every}")
        if self.patience < 0:
            raise ValueError(f"--adaptive_patience must be >= 0, got {self.patience}")
        if not 0 <= self.margin <= 1:
            raise ValueError(f"--adaptive_margin must be in [0, 1], got {self.margin}")
        if self.min_steps < 1:
            raise ValueError(f"--adaptive_min_steps must be >= 1, got {self.min_steps}")

    @classmethod
    def from_args(cls, args):
        """The rule of the --adaptive_check_every, --adaptive_patience, --adaptive_margin and
        --adaptive_min_steps flags (distill/cli.py)."""
        return cls(args.adaptive_check_every, args.adaptive_patience, args.adaptive_margin, args.adaptive_min_steps)

    def settings(self):
        return asdict(self)

    def describe(self):
        return (f"check every {self.check_every} steps and at t_conv; stop a sentence once at least "
                f"{self.min_steps} steps have run, its predicted class has not changed for {self.patience} "
                f"consecutive checks and its softmax margin (top-1 minus top-2) is >= {self.margin}; "
                "at t_conv at the latest")


def rule_header(rule):
    """The ``key = value`` header items of eval_results.txt that state the rule (or that there is none)."""
    if rule is None:
        return {"adaptive_t_conv": "off"}
    return {"adaptive_t_conv": "on", "adaptive.rule": rule.describe(),
            **{f"adaptive.{name}": value for name, value in rule.settings().items()}}


class SettledOutput(NamedTuple):
    """Per sentence, after the steps it ran: the fields evaluation reads from SpikingBertOutput, and the steps."""
    logits: torch.Tensor  # [B, num_labels]
    population_rates: torch.Tensor  # [B, P] mean rate over real tokens and neurons
    population_spikes: torch.Tensor  # [B, P] float64 spike counts over real tokens, neurons and steps
    steps: torch.Tensor  # [B] steps simulated


class Settling:
    """How long each running sentence's prediction has not changed, check after check."""

    def __init__(self, rule):
        self.rule = rule
        self.predicted = None
        self.unchanged = None

    def settled(self, logits, steps_done):
        """[b] bool: the sentences whose answer has settled at this check (logits [b, C])."""
        predicted = logits.argmax(-1)
        if self.predicted is None:
            self.unchanged = torch.zeros_like(predicted)
        else:
            self.unchanged = torch.where(predicted == self.predicted, self.unchanged + 1, 0)
        self.predicted = predicted
        top2 = logits.float().softmax(-1).topk(2, dim=-1).values
        confident = top2[:, 0] - top2[:, 1] >= self.rule.margin
        return (self.unchanged >= self.rule.patience) & confident & (steps_done >= self.rule.min_steps)

    def keep(self, rows):
        self.predicted, self.unchanged = self.predicted[rows], self.unchanged[rows]


@torch.no_grad()
def simulate_until_settled(model, input_ids, token_type_ids, attention_mask, rule):
    """SettledOutput of a SpikingBertForSequenceClassification (eval mode) on one batch under ``rule``,
    every sentence for at most the model's t_conv steps."""
    return simulate_with_readouts(model, input_ids, token_type_ids, attention_mask, rule)[0]


@torch.no_grad()
def simulate_with_readouts(model, input_ids, token_type_ids, attention_mask, rule=None, readout_steps=()):
    """(SettledOutput after the model's t_conv steps, or under ``rule`` after each sentence's own steps;
    {S: SettledOutput of every sentence after S steps} for each S of ``readout_steps``) of a
    SpikingBertForSequenceClassification (eval mode) on one batch.

    One simulation serves every readout, since its first S steps are a simulation of S steps: the readout
    after S steps is what an evaluation at t_conv S gives. Settled sentences leave the batch once the last
    readout is taken.
    """
    if rule is not None and model.config.num_labels < 2:
        raise ValueError("adaptive time steps need a classification task (the rule watches the predicted class)")
    t_conv = model.config.spiking.t_conv
    readout_steps = sorted(set(readout_steps))
    last_readout = readout_steps[-1] if readout_steps else 0
    checks = set(range(rule.check_every, t_conv, rule.check_every)) | {t_conv} if rule is not None else set()
    simulation = model.start_simulation(input_ids, token_type_ids, attention_mask)
    batch, device = input_ids.shape[0], input_ids.device
    final = SettledOutput(torch.zeros(batch, model.config.num_labels, device=device),
                          torch.zeros(batch, len(model.population_names()), device=device),
                          torch.zeros(batch, len(model.population_names()), dtype=torch.float64, device=device),
                          torch.zeros(batch, dtype=torch.long, device=device))
    readouts = {}
    finished = torch.zeros(batch, dtype=torch.bool, device=device)  # final outputs taken
    running = torch.arange(batch, device=device)  # batch rows of the sentences still simulated
    settling = Settling(rule) if rule is not None else None
    for steps in sorted(checks | set(readout_steps) | {t_conv}):
        simulation.run(steps - simulation.steps_done)
        logits = model.logits_of(simulation.output_rates(tokens=1)).float()  # only [CLS] is read
        if steps in readout_steps:  # every sentence is still simulated
            rates, spikes = population_statistics(simulation.event_counts(), attention_mask, steps)
            readouts[steps] = SettledOutput(logits, rates, spikes, torch.full_like(final.steps, steps))
        if steps in checks or steps == t_conv:
            stop = torch.full_like(running, steps >= t_conv, dtype=torch.bool)
            if steps in checks:
                stop |= settling.settled(logits, steps)
            stop &= ~finished[running]
            if stop.any():
                stopped = stop.nonzero().squeeze(1)
                rows = running[stopped]
                counts = simulation.event_counts().map(lambda count: count[stopped])
                final.population_rates[rows], final.population_spikes[rows] = population_statistics(
                    counts, attention_mask[rows], steps)
                final.logits[rows], final.steps[rows], finished[rows] = logits[stopped], steps, True
        if steps >= last_readout:
            going_on = (~finished[running]).nonzero().squeeze(1)
            if len(going_on) < len(running):
                simulation.keep(going_on)
                if settling is not None:
                    settling.keep(going_on)
                running = running[going_on]
            if not len(running):
                break
    return final, readouts

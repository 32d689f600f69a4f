"""Spiking neuron populations: the multi-step rule and the surrogate rate, side by side.

A neuron object holds its parameters (threshold, leak, starting membrane) and offers:

- ``scan``: the time-step rule, run in place over a chunk of steps by the simulation;
- ``equilibrium_rate``: the rate the population converges to under a constant input
  current, the smooth function whose gradient trains the network;
- ``constant_current_rate``: the rate T steps of ``scan`` reach under a constant current
  (a multiple of 1 / T), the value of the "grid" surrogate.

A new neuron rule is a subclass that overrides ``fire_step`` (and, for training, the
two rates). ``make_neuron`` picks the class from the spiking config.

A population's output is ``rate_of`` its spike count: count / T for the paper's binary
spikes; signed spikes (``TernaryIFNeuron``) also carry a sign and a learned amplitude, so
their count of spikes of either sign (``NeuronState.event_count``, what energy counts) is
kept apart from the signed count.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def reset_by_subtraction(membrane, spikes, threshold):
    """membrane <- membrane - threshold x spikes, in place (``threshold`` a number or a broadcasting tensor)."""
    if isinstance(threshold, float):
        membrane.sub_(spikes, alpha=threshold)
    else:
        membrane.addcmul_(spikes, threshold, value=-1)


class NeuronState:
    """Membrane potential and spike counts of one population during one simulation: ``spike_count`` sums the
    spikes as emitted (signed for signed spikes), ``event_count`` counts spikes of either sign (the same tensor
    for binary spikes)."""

    def __init__(self, membrane, signed=False):
        self.membrane = membrane
        self.spike_count = torch.zeros_like(membrane)
        self.event_count = torch.zeros_like(membrane) if signed else self.spike_count

    def keep(self, rows):
        """Keep only these batch rows (sentences leaving a simulation early)."""
        signed = self.event_count is not self.spike_count
        self.membrane = self.membrane[rows]
        self.spike_count = self.spike_count[rows]
        self.event_count = self.event_count[rows] if signed else self.spike_count


class StraightThrough(torch.autograd.Function):
    """Forward value ``value``, gradient into ``path``: path + (value - path).detach() without
    allocating a new tensor (the output is a view of ``value``)."""

    @staticmethod
    def forward(ctx, path, value):
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class IFNeuron(nn.Module):
    """Integrate-and-fire population with reset by subtraction (the paper's neuron).

    Every step, for input current I(t):

        u <- u + I(t);   s(t) = [u >= vth];   u <- u - vth s(t)

    with u = membrane_init * vth before the first step (0 in the paper). Under a constant
    current c a neuron then fires clamp(floor(T c / vth + membrane_init), 0, T) times in T
    steps, and its rate converges to clamp(c / vth, 0, 1).

    The threshold is the Python number ``vth`` shared by every neuron (the paper), or, with
    ``threshold_shape`` given ([] per population, [width] per neuron), exp(log_threshold):
    a buffer (set by calibration) or, with ``learn_threshold``, a parameter; both are in the
    state dict, and exp keeps them positive.
    """

    def __init__(self, vth=1.0, membrane_init=0.0, surrogate="clamp", threshold_shape=None,
                 learn_threshold=False):
        super().__init__()
        self.vth = float(vth)
        self.membrane_init = float(membrane_init)
        self.surrogate = surrogate
        if threshold_shape is None:
            self.log_threshold = None
        else:
            log_threshold = torch.full(tuple(threshold_shape), math.log(vth))
            if learn_threshold:
                self.log_threshold = nn.Parameter(log_threshold)
            else:
                self.register_buffer("log_threshold", log_threshold)

    def threshold(self):
        """The firing threshold: a number, or a tensor broadcasting over the last (neuron) dimension."""
        return self.vth if self.log_threshold is None else self.log_threshold.exp()

    @torch.no_grad()
    def calibrate(self, current, percentile):
        """Set the threshold(s) to the ``percentile``-th percentile of the positive input currents
        (per population, or per neuron over tokens), so that about (100 - percentile)% of the
        positive currents saturate the rate; a threshold with no positive current stays as it is."""
        if self.log_threshold is None:
            raise ValueError("threshold calibration needs threshold_scope 'population' or 'neuron'")
        positive = current.detach().float().reshape(-1, current.shape[-1]).clamp(min=0)
        if self.log_threshold.dim() == 0:
            values = positive[positive > 0]
            if values.numel():
                rank = min(values.numel(), max(1, math.ceil(percentile / 100 * values.numel())))
                self.log_threshold.fill_(math.log(values.kthvalue(rank).values.item()))
            return
        # Per neuron: zero currents stand for "no input" and would pull the percentile to 0.
        masked = torch.where(positive > 0, positive, torch.full_like(positive, float("nan")))
        thresholds = torch.nanquantile(masked, percentile / 100, dim=0)
        found = ~torch.isnan(thresholds)
        self.log_threshold[found] = thresholds[found].log().to(self.log_threshold.dtype)

    def extra_repr(self):
        scope = "shared" if self.log_threshold is None else f"own {tuple(self.log_threshold.shape)}"
        return f"vth={self.vth}, membrane_init={self.membrane_init}, surrogate={self.surrogate}, threshold={scope}"

    # ------------------------------------------------------------------ simulation

    signed = False

    def start(self, like):
        """The state before the first step, for currents shaped like ``like`` ([B, ...])."""
        if self.membrane_init == 0:
            return NeuronState(torch.zeros_like(like), self.signed)
        return NeuronState(torch.ones_like(like).mul_(self.threshold() * self.membrane_init), self.signed)

    def rate_of(self, spike_count, steps):
        """The population's output after ``steps`` steps with these spike counts: the average spike rate."""
        return spike_count / steps

    def event_rate(self, rate):
        """Spikes per neuron and step of a population output ``rate``: the rate itself for binary spikes."""
        return rate

    @torch.no_grad()
    def scan(self, current, state, steps):
        """Run ``steps`` steps over ``current`` ([steps * B, ...], step-major), in place: the
        current tensor is overwritten by the spikes and returned; ``state`` is advanced."""
        per_step = current.view(steps, -1, *current.shape[1:])
        threshold = self.threshold()
        # In-place ops only: a reduction over the chunk would allocate a fresh buffer each
        # time and costs two to six times as much as these adds.
        for step in per_step.unbind(0):
            self.fire_step(state.membrane, step, threshold)
            self.count(state, step)
        return current

    def count(self, state, spikes):
        """Add one step's ``spikes`` to the state's counts."""
        state.spike_count.add_(spikes)

    def fire_step(self, membrane, current, threshold):
        """One step in place: integrate ``current``, write the spikes into it, reset by subtraction."""
        membrane.add_(current)
        torch.ge(membrane, threshold, out=current)
        reset_by_subtraction(membrane, current, threshold)

    # ------------------------------------------------------------------ training surrogate

    def equilibrium_rate(self, current):
        """clamp(c / vth, 0, 1): the rate an IF population converges to under a constant current c.

        hardtanh_ runs in place on the fresh quotient, so autograd saves the rate (which the
        next block saves anyway) rather than the current: its backward uses its result.
        """
        return F.hardtanh_(current / self.threshold(), 0.0, 1.0)

    @torch.no_grad()
    def constant_current_rate(self, current, steps):
        """clamp(floor(T c / vth + membrane_init), 0, T) / T: the spike count of T steps of ``scan``
        under the constant current c, divided by T."""
        counts = torch.floor(current * steps / self.threshold() + self.membrane_init)
        return counts.clamp_(0, steps).div_(steps)

    def surrogate_rate(self, current, steps):
        """The surrogate's output for a population with input ``current`` at ``steps`` time steps.

        "clamp": the equilibrium rate. "grid": the value of ``constant_current_rate`` (what the
        simulation gives a single population under that current) with the equilibrium rate's
        gradient (straight-through), so training sees the 1 / T rate quantisation.
        """
        rate = self.equilibrium_rate(current)
        if self.surrogate == "clamp":
            return rate
        return StraightThrough.apply(rate, self.constant_current_rate(current.detach(), steps))


class LeakyIFNeuron(IFNeuron):
    """Leaky integrate-and-fire: as IFNeuron, then u <- leaky * u at the end of every step.

    Under a constant current c the membrane between spikes follows u_n = c (1 - leaky^n) /
    (1 - leaky), which never reaches vth when c <= vth (1 - leaky). Taking the interval
    between spikes as the n at which u_n = vth (the neuron restarting from 0 after a spike)
    gives the equilibrium rate

        r(c) = ln(leaky) / ln(1 - vth (1 - leaky) / c)   for c > vth (1 - leaky), else 0,

    clamped to [0, 1]; it tends to clamp(c / vth, 0, 1) as leaky -> 1. Reset by subtraction
    carries the overshoot into the next interval, so the simulated rate of the discrete
    neuron lies somewhat below r(c) (by up to 0.04 at leaky 0.9; see the tests). The grid
    value is counted by running the rule itself for T steps.
    """

    def __init__(self, leaky, **kwargs):
        super().__init__(**kwargs)
        self.leaky = float(leaky)

    def extra_repr(self):
        return f"leaky={self.leaky}, " + super().extra_repr()

    def fire_step(self, membrane, current, threshold):
        super().fire_step(membrane, current, threshold)
        membrane.mul_(self.leaky)

    def equilibrium_rate(self, current):
        drive = current / self.threshold()
        cutoff = 1.0 - self.leaky
        firing = drive > cutoff
        # Evaluate the logarithm only where it is defined, so that no NaN reaches the gradient.
        safe_drive = torch.where(firing, drive, torch.ones_like(drive))
        rate = math.log(self.leaky) / torch.log1p(-cutoff / safe_drive)
        return torch.where(firing, rate, torch.zeros_like(rate)).clamp(max=1.0)

    @torch.no_grad()
    def constant_current_rate(self, current, steps):
        state = self.start(current)
        threshold = self.threshold()
        for _ in range(steps):
            spikes = current.clone()
            self.fire_step(state.membrane, spikes, threshold)
            self.count(state, spikes)
        return state.spike_count.div_(steps)


class TernaryIFNeuron(IFNeuron):
    """Integrate-and-fire with signed (ternary) spikes and a learned amplitude a, as in SpikeLM:

        u <- u + I(t);   s(t) = [u >= theta] - [u <= -theta];   u <- u - vth s(t),   theta = (1 - m) vth

    and the population emits a s(t) in {-a, 0, a}; its output after T steps is a x (signed count) / T.
    A binary neuron starts m vth (m = membrane_init) on its way to its threshold; a signed neuron has two
    thresholds, and starting at +m vth would take it that much further from the negative one (a -1 would need
    (1 + m) vth of drive, a +1 only (1 - m) vth). So its membrane starts at 0 with both thresholds m vth nearer
    (theta above), and each sign is the binary neuron's rule: under a constant current c it fires
    sign(c) clamp(floor(T |c| / vth + m), 0, T) spikes in T steps, and its rate converges to clamp(c / vth, -1, 1).
    With m = 0 this is SpikeLM's neuron. A spike of either sign is one event: one accumulate for each target.
    The amplitude is exp(log_amplitude), a parameter per population starting at 1.
    """
    signed = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.log_amplitude = nn.Parameter(torch.zeros(()))

    def amplitude(self):
        return self.log_amplitude.exp()

    def extra_repr(self):
        return "ternary, " + super().extra_repr()

    def rate_of(self, spike_count, steps):
        return spike_count / steps * self.amplitude().detach()

    @torch.no_grad()
    def calibrate(self, current, percentile):
        """As IFNeuron's, on the currents' magnitudes: either sign reaches a threshold."""
        super().calibrate(current.abs(), percentile)

    @torch.no_grad()
    def scan(self, current, state, steps):
        """IFNeuron's scan; the population emits its spikes times the amplitude."""
        return super().scan(current, state, steps).mul_(self.amplitude())

    def count(self, state, spikes):
        state.spike_count.add_(spikes)
        state.event_count.add_(spikes.abs())

    def start(self, like):
        """The membrane at 0, half-way between the two thresholds."""
        return NeuronState(torch.zeros_like(like), self.signed)

    def fire_step(self, membrane, current, threshold):
        """One step in place: integrate ``current``, write the signed spikes into it, reset by subtraction."""
        margin = threshold * (1 - self.membrane_init)
        membrane.add_(current)
        negative = membrane <= -margin
        torch.ge(membrane, margin, out=current)
        current.sub_(negative.to(current.dtype))
        reset_by_subtraction(membrane, current, threshold)

    def equilibrium_rate(self, current):
        return F.hardtanh(current / self.threshold(), -1.0, 1.0) * self.amplitude()

    @torch.no_grad()
    def constant_current_rate(self, current, steps):
        drive = current * steps / self.threshold()
        positive = torch.floor(drive + self.membrane_init).clamp_(0, steps)
        negative = torch.floor(-drive + self.membrane_init).clamp_(0, steps)
        return positive.sub_(negative).div_(steps).mul_(self.amplitude())

    def event_rate(self, rate):
        """Spikes of either sign per neuron and step of a population output ``rate`` (a x signed rate): |rate| / a,
        with the rate's gradient (none reaches the amplitude)."""
        return rate.abs() / self.amplitude()


def make_neuron(spiking, width):
    """The neuron population of a spiking config (models.config.SpikingConfig) with ``width`` neurons."""
    shape = {"shared": None, "population": (), "neuron": (width,)}[spiking.threshold_scope]
    kwargs = dict(vth=spiking.vth, membrane_init=spiking.membrane_init, surrogate=spiking.surrogate,
                  threshold_shape=shape, learn_threshold=spiking.learn_threshold)
    if spiking.ternary_spikes:
        return TernaryIFNeuron(**kwargs)
    if spiking.leaky == 1.0:
        return IFNeuron(**kwargs)
    return LeakyIFNeuron(spiking.leaky, **kwargs)

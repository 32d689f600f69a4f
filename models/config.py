"""The spiking student's configuration: BERT's shape plus every spiking and simulation setting.

``SpikingConfig`` holds each spiking setting with its default and its check, in one place.
``SpikingBertConfig`` is a BertConfig that carries one; in ``config.json`` the spiking
settings are flat top-level keys (``t_conv``, ``vth``, ...), as in every student this
project has written, so older student folders load unchanged and new keys take their
defaults. Command-line flags override settings through ``with_overrides`` only.
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional

from transformer.modeling import BertConfig, shape_problem

SURROGATES = ("clamp", "grid")
DROPOUT_MASKS = ("pcg64_16bit", "torch")
THRESHOLD_SCOPES = ("shared", "population", "neuron")


@dataclass(frozen=True)
class SpikingConfig:
    """Spiking and simulation settings; the defaults are the paper's method."""
    # Time steps simulated.
    t_conv: int = 125
    # Firing threshold (the starting value of per-population or per-neuron thresholds).
    vth: float = 1.0
    # Membrane factor applied after every step (1 = integrate-and-fire).
    leaky: float = 1.0
    # Every membrane starts at membrane_init * vth (paper 0; 0.5 rounds T c / vth instead of flooring it).
    membrane_init: float = 0.0
    # Training surrogate's value: "clamp", the equilibrium rate clamp(c / vth, 0, 1) (the paper's), or
    # "grid", the rate T steps reach under a constant current c (a multiple of 1 / T), clamp's gradient.
    surrogate: str = "clamp"
    # One threshold for all neurons ("shared", the paper's), one per population, or one per neuron.
    threshold_scope: str = "shared"
    # Train the per-population or per-neuron thresholds (kept positive as exp of a parameter).
    learn_threshold: bool = False
    # Signed spikes: a neuron also fires -1 when its membrane falls to -vth, and each population's spikes are
    # scaled by a learned amplitude (SpikeLM's ternary spikes; modules/snn_modules.py TernaryIFNeuron).
    ternary_spikes: bool = False
    # A Linear H -> H from the last output population back into the embedding population.
    feedback: bool = False
    # Training forward values from a T-step simulation (the paper) or from the surrogate alone.
    train_simulation: bool = True
    # Time steps folded into one GEMM: a count, or a memory budget (the device's default when both are None).
    sim_chunk_steps: Optional[int] = None
    sim_chunk_budget_mb: Optional[float] = None
    # The implicit backward solve with feedback: Broyden iterations and relative tolerance.
    broyden_threshold: int = 30
    broyden_tol: float = 1e-6
    # Training dropout masks on CPU: "pcg64_16bit" (StepDropout, p rounded to a multiple of 2^-16,
    # faster; see the README's speed section) or "torch".
    dropout_masks: str = "pcg64_16bit"

    def __post_init__(self):
        for field in dataclasses.fields(self):
            problem = check_setting(field.name, getattr(self, field.name))
            if problem:
                raise ValueError(f"{field.name} {problem}, got {getattr(self, field.name)!r}")
        if self.learn_threshold and self.threshold_scope == "shared":
            raise ValueError("learn_threshold needs threshold_scope 'population' or 'neuron'")
        if self.ternary_spikes and self.leaky != 1.0:
            raise ValueError("ternary_spikes needs leaky 1 (integrate-and-fire)")
        object.__setattr__(self, "t_conv", int(self.t_conv))

    @property
    def per_population_thresholds(self):
        return self.threshold_scope != "shared"

    def to_dict(self):
        return dataclasses.asdict(self)


SETTINGS = tuple(field.name for field in dataclasses.fields(SpikingConfig))


def _integer(value, low):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and int(value) == value and value >= low


def _number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float))


# setting -> (is the value possible?, what it must be)
CHECKS = {
    "t_conv": (lambda v: _integer(v, 1), "must be an integer >= 1"),
    "vth": (lambda v: _number(v) and v > 0, "must be > 0"),
    "leaky": (lambda v: _number(v) and 0 < v <= 1, "must be in (0, 1]"),
    "membrane_init": (lambda v: _number(v) and 0 <= v < 1, "must be in [0, 1)"),
    "surrogate": (lambda v: v in SURROGATES, f"must be one of {', '.join(SURROGATES)}"),
    "threshold_scope": (lambda v: v in THRESHOLD_SCOPES, f"must be one of {', '.join(THRESHOLD_SCOPES)}"),
    "learn_threshold": (lambda v: isinstance(v, bool), "must be true or false"),
    "ternary_spikes": (lambda v: isinstance(v, bool), "must be true or false"),
    "feedback": (lambda v: isinstance(v, bool), "must be true or false"),
    "train_simulation": (lambda v: isinstance(v, bool), "must be true or false"),
    "sim_chunk_steps": (lambda v: v is None or _integer(v, 1), "must be an integer >= 1"),
    "sim_chunk_budget_mb": (lambda v: v is None or _number(v) and v >= 0, "must be >= 0"),
    "broyden_threshold": (lambda v: _integer(v, 1), "must be an integer >= 1"),
    "broyden_tol": (lambda v: _number(v) and v > 0, "must be > 0"),
    "dropout_masks": (lambda v: v in DROPOUT_MASKS, f"must be one of {', '.join(DROPOUT_MASKS)}"),
}


def check_setting(name, value):
    """Why ``value`` is impossible for setting ``name`` ("must be ..."), or None when it is fine."""
    is_possible, requirement = CHECKS.get(name, (lambda v: True, ""))
    return None if is_possible(value) else requirement


class SpikingBertConfig(BertConfig):
    """A BertConfig (the student's shape) with a SpikingConfig in ``spiking``.

    ``fit_size`` is the teacher's hidden size that ``fit_dense`` maps the student's rates
    to; absent (None), the student is built with its own hidden size until a teacher sets it.
    """

    def __init__(self, **values):
        spiking = {name: values.pop(name) for name in SETTINGS if name in values}
        spiking = {name: value for name, value in spiking.items() if value is not None}
        values.pop("spiking", None)
        values.pop("force_implicit", None)  # a test-only key of earlier versions
        super().__init__(**values)
        problem = shape_problem(self)
        if problem:
            raise ValueError(problem)
        self.model_type = "spiking_bert"
        self.spiking = SpikingConfig(**spiking)

    @classmethod
    def from_bert_config(cls, config, source="config"):
        """The student config of a BertConfig (or a SpikingBertConfig) holding flat spiking keys."""
        try:
            return cls(**config.to_dict())
        except (ValueError, TypeError) as e:
            raise ValueError(f"{source}: {e}") from None

    def to_dict(self):
        values = {key: value for key, value in self.__dict__.items() if key != "spiking"}
        return {**BertConfig(**values).to_dict(), **self.spiking.to_dict()}

    def with_overrides(self, source="config", blame=None, **overrides):
        """A copy with settings replaced; None means "not given". Each value is checked on its own; a
        bad one is blamed on ``blame[key]`` (e.g. "--t_conv") or else on ``source`` (the config file)."""
        blame = blame or {}
        given = {key: value for key, value in overrides.items() if value is not None}
        for key, value in given.items():
            problem = check_setting(key, value)
            if problem:
                raise ValueError(f"{blame.get(key, source)}: {key} {problem}, got {value!r}")
        try:
            return SpikingBertConfig(**{**self.to_dict(), **given})
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

"""Command-line flags shared by the training scripts."""
import argparse
import math

from distill.adaptive import StoppingRule
from distill.devices import CPU_ALLOCATORS
from distill.losses import LOSSES, PAPER_LOSSES
from models.config import SURROGATES, THRESHOLD_SCOPES


def add_shared_args(parser, learning_rate, eval_step):
    """Flags both distillation scripts accept, with the same meaning."""
    parser.add_argument("--spiking_student_model", required=True,
                        help="student folder: a spiking config.json, with weights to start from them")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--do_lower_case", action="store_true",
                        help="lower-case text before tokenizing; recorded in the saved student's config "
                             "(pregenerated data is already tokenized)")
    parser.add_argument("--max_seq_length", type=int, default=128,
                        help="longest input in tokens; batches are padded only to their longest member")
    add_spiking_args(parser)
    parser.add_argument("--train_batch_size", type=int, default=32,
                        help="examples per optimisation step, summed over accumulation steps and processes")
    parser.add_argument("--learning_rate", type=float, default=learning_rate)
    parser.add_argument("--num_train_epochs", type=int, default=3)
    parser.add_argument("--warmup_proportion", type=float, default=0.1)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--eval_step", type=int, default=eval_step,
                        help="optimisation steps between checkpoints (and dev evaluations)")
    parser.add_argument("--kd_losses", nargs="+", choices=list(LOSSES), default=list(PAPER_LOSSES), metavar="LOSS",
                        help=f"internal-layer KD terms, summed (choices: {', '.join(LOSSES)}; default: the "
                             "paper's attention_mse hidden_mse)")
    parser.add_argument("--rate_penalty", type=non_negative, default=0.0, metavar="WEIGHT",
                        help="add WEIGHT x the student's mean spike rate to the loss (fewer spikes, less energy)")
    parser.add_argument("--bucket_by_length", action="store_true",
                        help="training batches of similar lengths (shuffled pools sorted by length, batches "
                             "in random order): less padding; the data order stays a function of seed and epoch")
    add_run_args(parser, keep_checkpoints=2)


def non_negative(value):
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def on_off(value):
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")
    return value == "on"


def add_spiking_args(parser):
    """Flags that override the student config's spiking settings (models/config.py SpikingConfig) and
    choose how a fresh student starts."""
    spiking = parser.add_argument_group("spiking settings (default: the student config's)")
    spiking.add_argument("--t_conv", type=int, default=None, help="time steps")
    spiking.add_argument("--vth", type=float, default=None, help="firing threshold")
    spiking.add_argument("--membrane_init", type=float, default=None,
                         help="membranes start at this fraction of vth (paper 0; 0.5 rounds instead of flooring)")
    spiking.add_argument("--surrogate", choices=SURROGATES, default=None,
                         help="training surrogate value: clamp (paper) or grid (the T-step rate grid)")
    spiking.add_argument("--threshold_scope", choices=THRESHOLD_SCOPES, default=None,
                         help="one threshold for all neurons (shared, paper), per population or per neuron")
    spiking.add_argument("--learn_threshold", type=on_off, default=None, metavar="{on,off}",
                         help="train the per-population or per-neuron thresholds")
    spiking.add_argument("--ternary_spikes", type=on_off, default=None, metavar="{on,off}",
                         help="signed spikes (-1, 0, +1) scaled by a learned amplitude per population (SpikeLM's "
                              "ternary spikes; paper: off)")
    spiking.add_argument("--train_simulation", type=on_off, default=None, metavar="{on,off}",
                         help="off: training uses the surrogate's values alone (no simulation; about one BERT "
                              "training step); evaluation always simulates")
    start = parser.add_argument_group("how a fresh student starts")
    start.add_argument("--fresh_student", action="store_true",
                       help="start from the student config's random initialisation even if its folder has weights")
    start.add_argument("--init_from_teacher", action="store_true",
                       help="copy the teacher's embeddings and layers j*M/N into the student first "
                            "(projected onto leading singular directions where the student is narrower)")
    start.add_argument("--calibrate_vth", type=float, default=None, metavar="PERCENTILE",
                       help="set per-population/per-neuron thresholds to this percentile of the positive input "
                            "currents on the first training batch (needs --threshold_scope population or neuron)")


def add_adaptive_args(parser):
    """Adaptive time steps in evaluation: the switch and its rule."""
    parser.add_argument("--adaptive_t_conv", action="store_true",
                        help="evaluation: stop each sentence's simulation once its predicted class has settled "
                             "(classification tasks)")
    add_stopping_rule_args(parser)


def add_stopping_rule_args(parser):
    """The adaptive stopping rule's settings (distill/adaptive.py StoppingRule, with its defaults)."""
    rule = StoppingRule()
    parser.add_argument("--adaptive_check_every", type=int, default=rule.check_every,
                        help="steps between checks of the running prediction (and a check at t_conv)")
    parser.add_argument("--adaptive_patience", type=int, default=rule.patience,
                        help="consecutive checks the predicted class must not change before a sentence stops")
    parser.add_argument("--adaptive_margin", type=float, default=rule.margin,
                        help="smallest top-1 minus top-2 softmax probability at which a sentence stops")
    parser.add_argument("--adaptive_min_steps", type=int, default=rule.min_steps,
                        help="no sentence stops before this many steps")


# Flags that override SpikingConfig settings of the same name.
SPIKING_FLAGS = ("t_conv", "vth", "membrane_init", "surrogate", "threshold_scope", "learn_threshold",
                 "ternary_spikes", "train_simulation")


def spiking_overrides(args):
    """The spiking settings given on the command line (setting -> value); the one place flags meet the config."""
    return {name: getattr(args, name) for name in SPIKING_FLAGS if getattr(args, name, None) is not None}


def add_run_args(parser, keep_checkpoints):
    """Flags of every training script: logging, seed, devices, resume and output-folder rules."""
    parser.add_argument("--logging_steps", type=int, default=50,
                        help="optimisation steps between mean-loss lines in log.txt")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_cuda", action="store_true", help="train on the CPU even when a GPU is visible")
    parser.add_argument("--bf16", action="store_true", help="run forward passes under bfloat16 autocast")
    parser.add_argument("--cpu_allocator", choices=CPU_ALLOCATORS, default="keep_freed",
                        help="on CPU: keep_freed = glibc keeps freed memory for reuse (faster, keeps the peak "
                             "resident memory), glibc = its default")
    parser.add_argument("--continue_train", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="resume from the latest checkpoint in --output_dir, or from CHECKPOINT")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing non-empty --output_dir (kept aside until the new run's first "
                             "checkpoint, and put back if the run fails before it)")
    parser.add_argument("--keep_checkpoints", type=int, default=keep_checkpoints,
                        help="newest checkpoint-step* folders kept (0 keeps all)")
    # Testing aid: stop (with a resumable checkpoint) after this many optimisation steps.
    parser.add_argument("--max_steps", type=int, default=None, help=argparse.SUPPRESS)


def check_positive_args(args, names):
    """Each named flag (an int, a list of ints for nargs="+", or None: not given) must be >= 1."""
    for name in names:
        value = getattr(args, name)
        for number in value if isinstance(value, list) else [value]:
            if number is not None and number < 1:
                raise ValueError(f"--{name} must be >= 1, got {number}")


# numpy's seeds are 32-bit.
MAX_SEED = 2 ** 32 - 1


def check_run_args(args):
    """The optimiser's and the seed's flags of every training script, before anything is written."""
    if not (math.isfinite(args.learning_rate) and args.learning_rate >= 0):
        raise ValueError(f"--learning_rate must be a finite number >= 0, got {args.learning_rate}")
    warmup = args.warmup_proportion
    if not (0 <= warmup < 1 or warmup == -1):
        raise ValueError(f"--warmup_proportion must be in [0, 1) (or -1: no warm-up), got {warmup}")
    if not 0 <= args.seed <= MAX_SEED:
        raise ValueError(f"--seed must be in [0, {MAX_SEED}], got {args.seed}")

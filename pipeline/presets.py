"""The quick start's presets, as plain data.

A preset gives the data slices, the teacher's fine-tuning, the corpus (presets with general KD), and the
distillation stages in order: each is (name, flags), run by spiking_bert_general_distill.py
(general_kd) or spiking_bert_task_distill.py (the others), each starting from the
previous stage's student (the first from the student config). ``spiking`` flags go to
every distillation stage. The last stage's student is evaluated at every ``eval_t_conv``
and (unless ``adaptive_eval`` is False) once more with --adaptive_t_conv at its training t_conv. Every distillation and
evaluation stage runs once per seed in ``seeds``; data, teacher and corpus are shared.
None means "all of it". ``data`` may give ``distill_sentences``: the distillation stages' own training
sentences, a superset (or, when fewer, a subset) of the teacher's ``train_sentences`` (without it, the teacher's).
``student_config`` names the first stage's student config folder (without it, STUDENT_CONFIG_DIR).
"""
import copy

STUDENT_CONFIG_DIR = "spiking_student_model/minilm"
TASK = "movie"
SEED = 42  # data slices, teacher and corpus; distillation seeds are the preset's

PAPER_SPIKING = {"vth": 1.0}
# data_augmentation.py with the substitute candidates (the packaged teacher has no masked-LM head and GloVe
# is offline), 4 tries per sentence: about 5 sentences per training sentence.
AUGMENTATION = {"candidates": "embedding", "N": 4}

def paper_method(t_conv, epochs, learning_rates, batch, eval_step):
    """The paper's three distillation stages: general KD, task IKD, prediction KD; each argument but
    ``batch`` and ``eval_step`` (prediction KD's) is a triple, one per stage."""
    return [(stage, {**({"pred_distill": True} if stage == "pred_kd" else {}), "t_conv": steps,
                     "num_train_epochs": epoch_count, "train_batch_size": batch, "learning_rate": rate,
                     **({"eval_step": eval_step} if stage == "pred_kd" else {})})
            for stage, steps, epoch_count, rate in zip(("general_kd", "task_ikd", "pred_kd"), t_conv, epochs,
                                                       learning_rates)]


def slices(train, dev=None, test=None, corpus=None):
    """The data slices: movie training, dev and test sentences and corpus sentences (None: all of them)."""
    return {"train_sentences": train, "dev_sentences": dev, "test_sentences": test, "corpus_sentences": corpus}


PRESETS = {
    "smoke": {
        "data": slices(160, 64, 64, 200), "max_seq_length": 32, "eval_t_conv": [2, 4, 8, 16], "eval_batch_size": 64,
        "seeds": [42], "teacher": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 1e-4},
        "corpus": {"epochs_to_generate": 1, "max_seq_len": 32}, "spiking": PAPER_SPIKING,
        "distillation": paper_method((4, 4, 4), (1, 1, 1), (3e-4, 3e-4, 1e-4), batch=16, eval_step=5),
    },
    # The paper's method at the CPU budget: general KD and IKD at 8 steps, prediction KD at 32 (after IKD at
    # 8, prediction KD at 8 steps stayed at the majority class: the [CLS] rates, quantised to 1/8, hardly
    # differed between sentences).
    "paper": {
        "data": slices(4000, corpus=5000), "max_seq_length": 64, "eval_t_conv": [4, 8, 16, 32], "eval_batch_size": 64,
        "seeds": [42], "teacher": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 5e-5},
        "corpus": {"epochs_to_generate": 1, "max_seq_len": 32}, "spiking": PAPER_SPIKING,
        "distillation": paper_method((8, 8, 32), (1, 3, 1), (3e-4, 3e-4, 1e-4), batch=16, eval_step=125),
    },
    "full": {
        "data": slices(None), "max_seq_length": 128, "eval_t_conv": [25, 50, 125, 250], "eval_batch_size": 32,
        "seeds": [42], "teacher": {"num_train_epochs": 3, "train_batch_size": 32, "learning_rate": 2e-5},
        "corpus": {"epochs_to_generate": 3, "max_seq_len": 128}, "spiking": PAPER_SPIKING,
        "distillation": paper_method((125, 125, 125), (3, 10, 3), (5e-5, 5e-5, 3e-5), batch=32, eval_step=100),
    },
}

# The few-step recipe with binary spikes (the default preset until the signed-spike recipe below): the student starts
# from the task teacher's layers instead of general KD, trains through the grid surrogate alone (no simulation, so
# training at 32 steps costs what 8 cost) with membranes starting at vth / 2 and one shared threshold, and pays a rate
# penalty (weight x its mean spike rate) in its task-IKD loss: the optimiser, not a threshold percentile, decides
# where spikes are cut. Task IKD: 1 epoch on the training sentences and about 3 augmented versions of each, penalty
# 0.75; prediction KD: 2 epochs on the same rows, no penalty, evaluated at each epoch's end (the better student is
# kept). Measured on two seeds (docs/few-time-steps.md, "How the default was chosen"): the same steps split 2 / 1 gave
# 0.8 points less at 16 steps; a prediction-KD penalty of 0.15 gave 0.2 less at 16 steps for 7% less energy (rate
# 0.112 instead of 0.155). Distilling on 8,000 sentences ("distill_sentences", the teacher's 4,000 and 4,000 more)
# with one augmented version each instead (15,718 rows) gave the same at 8 and 16 steps over four seeds, 0.3 less at
# 32.
FEW_STEP_SPIKING = {**PAPER_SPIKING, "membrane_init": 0.5, "surrogate": "grid", "train_simulation": "off"}
PRESETS["binary"] = {
    "data": slices(4000, corpus=0),
    "max_seq_length": 64, "eval_t_conv": [4, 8, 16, 32], "eval_batch_size": 64, "seeds": [42, 7],
    "teacher": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 5e-5},
    "augment": {**AUGMENTATION, "N": 3},  # about 4 sentences per training sentence: the run fits in 45 minutes
    "spiking": FEW_STEP_SPIKING,
    "distillation": [
        ("task_ikd", {"t_conv": 32, "init_from_teacher": True, "aug_train": True, "rate_penalty": 0.75,
                      "num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 1e-4,
                      "bucket_by_length": True}),
        ("pred_kd", {"pred_distill": True, "t_conv": 32, "aug_train": True, "num_train_epochs": 2,
                     "train_batch_size": 16, "learning_rate": 1e-4, "eval_step": 10000, "bucket_by_length": True}),
    ],
}
# The full-data reference run: the binary few-step recipe on every training sentence (8,454, the held-out test set
# excluded) with about 3 augmented versions each, a teacher trained for 4 epochs with its best dev epoch kept,
# prediction KD for 3 epochs (the best dev epoch kept), evaluated from 1 to 32 steps; about 2.5 hours on the
# 2-core CPU with the two seeds side by side.
PRESETS["reference"] = {
    "data": slices(None, corpus=0),
    "max_seq_length": 64, "eval_t_conv": [1, 2, 4, 8, 16, 32], "eval_batch_size": 64, "seeds": [42, 7],
    "teacher": {"num_train_epochs": 4, "train_batch_size": 32, "learning_rate": 5e-5},
    "augment": {**AUGMENTATION, "N": 3},
    "spiking": FEW_STEP_SPIKING,
    "distillation": [
        ("task_ikd", {**PRESETS["binary"]["distillation"][0][1]}),
        ("pred_kd", {**PRESETS["binary"]["distillation"][1][1], "num_train_epochs": 3}),
    ],
}
# The binary few-step recipe with a student as deep as its teacher: 6 layers, every one copied exactly from the
# teacher's by --init_from_teacher (the default student takes layers 2, 4 and 6): what depth buys in accuracy
# against what it costs in energy (twice the populations per step). Measured on two seeds (docs/few-time-steps.md):
# worse at every step count for twice the energy, 73.2% test at 8 steps against the 3-layer student's 78.7%.
PRESETS["deep"] = {**copy.deepcopy(PRESETS["binary"]), "student_config": "spiking_student_model/minilm6",
                   "eval_t_conv": [2, 4, 8, 16, 32]}
# The binary few-step recipe with signed spikes (SpikeLM's ternary spikes: -1, 0 or +1 times a learned amplitude per
# population): a neuron can say "less" as well as "more" with one spike; evaluated from 1 step.
PRESETS["ternary"] = {**copy.deepcopy(PRESETS["binary"]), "spiking": {**FEW_STEP_SPIKING, "ternary_spikes": "on"},
                      "eval_t_conv": [1, 2, 4, 8, 16, 32]}
# The binary few-step recipe paying for energy instead of spikes: task IKD's rate penalty replaced by an energy penalty
# (W x the accumulate part of the energy ratio to a same-size ANN, each population's spikes weighed by their
# fan-out) of the same total pull: at 32 steps the ratio's derivatives by the populations' mean rates sum to 6.2
# for the default student whatever the sentence's length, and 0.12 x 6.2 is the rate penalty's 0.75.
PRESETS["energy"] = {**copy.deepcopy(PRESETS["binary"]), "distillation": [
    ("task_ikd", {**{key: value for key, value in PRESETS["binary"]["distillation"][0][1].items()
                     if key != "rate_penalty"}, "energy_penalty": 0.12}),
    copy.deepcopy(PRESETS["binary"]["distillation"][1])]}
# The default: both levers at once, signed spikes paying for energy (the energy preset's task IKD on the ternary
# preset). Over four seeds 79.3 / 80.1% test at 4 / 8 steps for 0.251 / 0.542 of the same-size ANN's energy, +1.5 /
# +1.3 points over the binary recipe at the same steps for 1.7 / 1.9 times its energy, on the accuracy/energy front
# from 1 step up (docs/few-time-steps.md); its main job took 45 minutes on a 2-core CPU (AVX2). It was measured
# first as the lever run "ternary_energy", which stays a name for it.
PRESETS["default"] = {**copy.deepcopy(PRESETS["ternary"]),
                      "distillation": copy.deepcopy(PRESETS["energy"]["distillation"])}
PRESETS["ternary_energy"] = PRESETS["default"]
# The default paying more for energy: four times the task-IKD penalty (0.5), and a penalty in prediction KD too (0.12),
# where the default's rates climb back (mean rate 0.35 at the end of task IKD, 0.39 after prediction KD): fewer events
# per signed neuron, at what cost in accuracy. Measured on two seeds (docs/few-time-steps.md): 0.72 of the default's
# energy at 32 steps for 0.6 points, but 77.7 / 62.7% at 8 / 4 steps: trained at 32 steps, it needs them.
PRESETS["frugal"] = copy.deepcopy(PRESETS["default"])
PRESETS["frugal"]["distillation"][0][1]["energy_penalty"] = 0.5
PRESETS["frugal"]["distillation"][1][1]["energy_penalty"] = 0.12
# The default read where it is trained: prediction KD at 8 steps (the grid surrogate quantised to 1 / 8, dev evaluated
# and the student kept at 8 steps) paying 0.5 x the energy ratio at 8 steps. The frugal run's lesson: a penalty on
# events taught at 32 steps makes the student spread its evidence over all 32, so the penalty acts at the step count
# the student is read at. Measured on two seeds (docs/few-time-steps.md): 79.3% test at 8 steps for 0.383 of the
# same-size ANN's energy (the default 80.1% for 0.542), but 74.5% at 4 steps: a point between the default's 4 and 8
# steps, not a better front.
PRESETS["eight_steps"] = copy.deepcopy(PRESETS["default"])
PRESETS["eight_steps"]["distillation"][1][1].update({"t_conv": 8, "energy_penalty": 0.5})
# The default with a wider band of currents that emit nothing, trained where it is read: every signed neuron's
# thresholds at +-0.65 vth (membrane_init 0.35) instead of +-0.5 vth, and prediction KD at 8 steps (its grid
# surrogate, dev evaluation and kept student at 8), no extra penalty. Evaluated on the default's students alone, the
# band cost 0.6 points at 8 steps for a fifth less energy (docs/few-time-steps.md, the read-out probe). Trained with
# it, measured on four seeds (docs/few-time-steps.md): 79.4% test at 8 steps for 0.438 of the same-size ANN's energy
# (the default 80.1% for 0.542), 75.1% at 4 steps (seeds 70.2-79.8%): a point along the front, not a better front.
PRESETS["wide_band"] = copy.deepcopy(PRESETS["default"])
PRESETS["wide_band"]["spiking"]["membrane_init"] = 0.35
PRESETS["wide_band"]["distillation"][1][1]["t_conv"] = 8
# The default with one threshold per population, learned: the optimiser, under the energy penalty, sets how strong a
# current must be to emit a spike in each population (the band of silent currents is (1 - membrane_init) x its
# threshold), instead of one constant for all; each starts at vth, as the default's.
# Measured on two seeds (docs/few-time-steps.md): the default's accuracy from 4 steps up (79.2 / 80.0% test at 4 / 8
# steps) for 0.94-0.95 of its energy, 66.7% at 1 step; the thresholds moved only to 0.99-1.16 vth.
PRESETS["learned_band"] = copy.deepcopy(PRESETS["default"])
PRESETS["learned_band"]["spiking"].update({"threshold_scope": "population", "learn_threshold": "on"})
DEFAULT_PRESET = "default"


def final_stage(preset):
    """(name, flags) of the last distillation stage: the student that is evaluated."""
    return preset["distillation"][-1]


def final_t_conv(preset):
    return final_stage(preset)[1]["t_conv"]


def with_augmentation(preset, aug):
    """``preset`` with task IKD on augmented sentences on ("on") or off ("off"); None keeps the preset's."""
    preset = copy.deepcopy(preset)
    if aug == "off":
        preset.pop("augment", None)
        for _, flags in preset["distillation"]:
            flags.pop("aug_train", None)
    elif aug == "on" and not preset.get("augment"):
        preset["augment"] = copy.deepcopy(AUGMENTATION)
        for stage, flags in preset["distillation"]:
            if stage == "task_ikd":
                flags["aug_train"] = True
    return preset


# The ablation's variants (benchmarks/ablate_low_latency.py, which runs them side by side and tabulates them;
# `quickstart.py --preset ablation_<variant>` runs one alone): the paper's method, the combination of every
# few-step option, and that combination with options taken out, under one budget smaller than the default's.
ABLATION_TRAIN_T_CONV = 8
ABLATION_BUDGET = {
    "data": slices(2000, 500, corpus=3000),
    "max_seq_length": 64, "eval_t_conv": [4, 8, 16, 32], "eval_batch_size": 64, "seeds": [42, 7],
    "teacher": {"num_train_epochs": 1, "train_batch_size": 16, "learning_rate": 5e-5},
    "corpus": {"epochs_to_generate": 1, "max_seq_len": 32},
    "spiking": PAPER_SPIKING, "adaptive_eval": False,
}
ABLATION_STAGE = {"t_conv": ABLATION_TRAIN_T_CONV, "num_train_epochs": 1, "train_batch_size": 16}
ABLATION_GENERAL_KD = ("general_kd", {**ABLATION_STAGE, "learning_rate": 3e-4})
# Task stages batch sentences of similar lengths (--bucket_by_length), as the default preset does: less padding.
ABLATION_TASK_IKD = {**ABLATION_STAGE, "learning_rate": 3e-4, "bucket_by_length": True}
ABLATION_PRED_KD = {"pred_distill": True, **ABLATION_STAGE, "learning_rate": 1e-4, "eval_step": 1000,
                    "bucket_by_length": True}
# Each option: flags added to both task stages, flags added to task IKD only (how the student starts), and
# whether it replaces general KD. Starting from the teacher's weights IKD takes a smaller learning rate.
ABLATION_OPTIONS = {
    "m05": ({"membrane_init": 0.5}, {}, False),
    "grid": ({"surrogate": "grid"}, {}, False),
    "thresholds": ({"threshold_scope": "population", "learn_threshold": "on"}, {"calibrate_vth": 99}, False),
    "teacher": ({}, {"init_from_teacher": True, "learning_rate": 1e-4}, True),
    "nosim": ({"train_simulation": "off"}, {}, False),
    "t32": ({"t_conv": 32}, {}, False),
    "aug": ({}, {"aug_train": True}, False),
    "minilm": ({"kd_losses": ["hidden_mse", "minilm"]}, {}, False),
}
ABLATION_BEST = ("m05", "grid", "thresholds", "teacher", "nosim", "t32", "aug")


def without(*options):
    """The combination without augmentation (a third of best's training time) and without ``options``."""
    return tuple(option for option in ABLATION_BEST if option not in options + ("aug",))


# In the order the ablation runs them: the most telling first.
ABLATION_VARIANTS = {"paper": (), "best": ABLATION_BEST, "no_aug": without(), "no_grid": without("grid"),
                     "no_m05": without("m05"), "no_thresholds": without("thresholds"),
                     "no_teacher": without("teacher"), "minilm": without() + ("minilm",), "no_t32": without("t32"),
                     "no_nosim": without("nosim", "t32")}


def ablation_preset(options):
    """The budget's preset with ``options`` added to the task stages (first task stage: starting flags)."""
    preset = copy.deepcopy(ABLATION_BUDGET)
    spiking = {key: value for option in options for key, value in ABLATION_OPTIONS[option][0].items()}
    starting = {key: value for option in options for key, value in ABLATION_OPTIONS[option][1].items()}
    from_teacher = any(ABLATION_OPTIONS[option][2] for option in options)
    preset["distillation"] = ([] if from_teacher else [copy.deepcopy(ABLATION_GENERAL_KD)]) + [
        ("task_ikd", {**ABLATION_TASK_IKD, **spiking, **starting}), ("pred_kd", {**ABLATION_PRED_KD, **spiking})]
    if "aug" in options:
        preset["augment"] = copy.deepcopy(AUGMENTATION)
    return preset


PRESETS.update({f"ablation_{name}": ablation_preset(options) for name, options in ABLATION_VARIANTS.items()})

"""Evaluation of a student or a teacher on the dev set(s) and a labelled test set: metrics, loss,
predictions, spike rates; result files.

Sentences are batched longest first (ties in file order) and each batch is padded only to
its longest member (glue.pad_batch), so padding nearly vanishes; results are returned and
written in file order. Padded positions are masked out of attention (-10000 before
softmax) and the logits come from the [CLS] position, so predictions do not depend on the
padding or on which sentences share a batch; spike rates are averaged over real tokens only.
With a StoppingRule (distill/adaptive.py) each sentence of a spiking student stops when its
answer has settled.
"""
import json
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from distill.adaptive import simulate_with_readouts
from distill.devices import unwrap
from distill.energy_report import ENERGY_NAME, flat_items
from glue import TEST_SET, compute_metrics, pad_batch
from models.snn_ide_bert import SpikingBertPreTrainedModel
from transformer.file_utils import write_atomically

logger = logging.getLogger(__name__)

RESULTS_NAME = "eval_results.txt"
PREDICTIONS_SUFFIX = "_predictions.tsv"


def readout_folder(output_dir, steps):
    """Where --do_eval --readout_steps writes the readout after ``steps`` steps."""
    return os.path.join(output_dir, f"t{steps}")


def predictions_name(set_name):
    """A dev set's predictions (named by its task) go to ``<task>_dev_predictions.tsv``, the test set's to
    ``test_predictions.tsv``."""
    return f"{set_name}{PREDICTIONS_SUFFIX}" if set_name == TEST_SET else f"{set_name}_dev{PREDICTIONS_SUFFIX}"


@dataclass
class EvalResult:
    set_name: str
    metrics: dict
    eval_loss: float
    predictions: np.ndarray
    labels: np.ndarray
    num_examples: int
    # Spiking students: mean rate of every population over the set (name -> rate, plus
    # "mean_over_populations"), and per example its real length and each population's spikes.
    rates: dict = None
    lengths: np.ndarray = None
    population_spikes: np.ndarray = None
    # Spiking students: the steps simulated for each example (t_conv, or fewer under a StoppingRule).
    steps: np.ndarray = None
    # Set by the caller that knows the model sizes: operation counts and energy (distill/energy_report.py).
    energy: dict = None
    # With readout steps: {S: EvalResult of the same simulation after S steps}.
    readouts: dict = None


def example_loss_sum(logits, labels, output_mode):
    """Summed per-example loss: squared error (regression) or cross-entropy."""
    if output_mode == "regression":
        return F.mse_loss(logits.view(-1), labels.view(-1), reduction="sum").item()
    return F.cross_entropy(logits, labels, reduction="sum").item()


def eval_batches(features, batch_size, sort_by_length=True):
    """The evaluation batches as arrays of feature indices: longest first, ties in file order (each batch
    holds sentences of nearly one length), or with ``sort_by_length=False`` in file order."""
    order = np.arange(len(features))
    if sort_by_length:
        order = np.argsort([-f.seq_length for f in features], kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(features), batch_size)]


@dataclass
class ModelOutputs:
    """What a model gave for each example, in file order (the spiking fields are None for a teacher)."""
    logits: torch.Tensor  # [N, num_labels]
    labels: torch.Tensor  # [N] the features' labels
    lengths: torch.Tensor  # [N] real tokens
    population_rates: torch.Tensor = None  # [N, P] mean rate over real tokens and neurons
    population_spikes: torch.Tensor = None  # [N, P] spike counts over real tokens, neurons and steps
    steps: torch.Tensor = None  # [N] steps simulated
    readouts: dict = None  # {S: ModelOutputs after S steps} of the same simulation (readout_steps)


class OutputParts:
    """One set's outputs batch by batch, gathered into ModelOutputs in file order."""

    def __init__(self):
        self.parts = {name: [] for name in ("logits", "labels", "lengths", "population_rates", "population_spikes",
                                            "steps")}

    def add(self, batch, logits, rates=None, spikes=None, steps=None):
        for name, value in (("logits", logits), ("labels", batch.labels), ("lengths", batch.lengths),
                            ("population_rates", rates), ("population_spikes", spikes), ("steps", steps)):
            if value is not None:
                self.parts[name].append(value.float().cpu() if name in ("logits", "population_rates") else value.cpu())

    def gathered(self, file_order):
        return ModelOutputs(**{name: torch.cat(parts)[file_order] if parts else None
                               for name, parts in self.parts.items()})


@torch.no_grad()
def run_model(model, features, batch_size, devices, sort_by_length=True, stopping_rule=None, readout_steps=()):
    """Run ``model`` (eval mode) over ``features`` in length-sorted batches; ModelOutputs in file order.

    ``stopping_rule``: a spiking classification student's adaptive time steps (distill/adaptive.py);
    ``readout_steps``: a spiking student's simulation also read out after each of these steps (``readouts``).
    """
    model.eval()
    spiking = isinstance(unwrap(model), SpikingBertPreTrainedModel)
    if (stopping_rule is not None or readout_steps) and not spiking:
        raise ValueError("adaptive time steps and readouts need a spiking student")
    batches = eval_batches(features, batch_size, sort_by_length)
    simulated = stopping_rule is not None or bool(readout_steps)
    outputs_parts, readout_parts = OutputParts(), {steps: OutputParts() for steps in readout_steps}
    for rows in batches:
        batch = pad_batch([features[i] for i in rows])
        inputs = batch.map(lambda t: t.to(devices.device)).inputs()
        with devices.autocast():
            if simulated:
                # drives the simulation itself: on one device, without DataParallel
                outputs, readouts = simulate_with_readouts(unwrap(model), rule=stopping_rule,
                                                           readout_steps=readout_steps, **inputs)
            else:
                outputs, readouts = model(**inputs, output_rates=True) if spiking else model(**inputs), {}
        if not spiking:
            outputs_parts.add(batch, outputs.logits)
            continue
        steps = outputs.steps if simulated else torch.full_like(batch.lengths, unwrap(model).config.spiking.t_conv)
        outputs_parts.add(batch, outputs.logits, outputs.population_rates, outputs.population_spikes, steps)
        for readout_step, readout in readouts.items():
            readout_parts[readout_step].add(batch, readout.logits, readout.population_rates,
                                            readout.population_spikes, readout.steps)
    file_order = torch.from_numpy(np.argsort(np.concatenate(batches)))
    result = outputs_parts.gathered(file_order)
    if readout_steps:
        result.readouts = {steps: parts.gathered(file_order) for steps, parts in readout_parts.items()}
    return result


def predictions_of(logits, output_mode):
    """The predicted score (regression) or class id of each row of ``logits``."""
    return logits[:, 0].numpy() if output_mode == "regression" else logits.argmax(dim=1).numpy()


def evaluate(model, features, set_name, output_mode, batch_size, devices, sort_by_length=True,
             stopping_rule=None, metrics_task=None, readout_steps=()):
    """Run ``model`` (eval mode) over ``features`` (run_model); return an EvalResult in file order, with
    ``readouts`` {S: EvalResult after S steps} for ``readout_steps``.

    ``metrics_task``: the task whose metrics apply; by default ``set_name``, as a dev set is named by its task.
    """
    outputs = run_model(model, features, batch_size, devices, sort_by_length, stopping_rule, readout_steps)
    result = result_of(outputs, unwrap(model), set_name, output_mode, metrics_task or set_name)
    if outputs.readouts is not None:
        result.readouts = {steps: result_of(readout, unwrap(model), set_name, output_mode, metrics_task or set_name)
                           for steps, readout in outputs.readouts.items()}
    return result


def result_of(outputs, model, set_name, output_mode, metrics_task):
    """The EvalResult of one set's ModelOutputs."""
    logits, labels = outputs.logits, outputs.labels
    predictions = predictions_of(logits, output_mode)
    count = len(labels)
    result = EvalResult(set_name, compute_metrics(metrics_task, predictions, labels.numpy()),
                        example_loss_sum(logits, labels, output_mode) / count, predictions, labels.numpy(), count)
    if outputs.population_rates is not None:
        mean_rates = (outputs.population_rates.sum(dim=0) / count).tolist()
        result.rates = dict(zip(model.population_names(), mean_rates))
        result.rates["mean_over_populations"] = float(np.mean(mean_rates))
        result.lengths = outputs.lengths.numpy()
        result.population_spikes = outputs.population_spikes.numpy()
        result.steps = outputs.steps.numpy()
    return result


def log_evaluation(name, result):
    """One line of a spiking student's evaluation: metrics, loss, spike rate, steps and energy."""
    energy = result.energy["energy"]
    logger.info("%s: %s, eval_loss %.6g, mean spike rate %.4f, mean steps %.4g, energy per sentence %.4g uJ (%.3g x "
                "the teacher's, %.3g x a same-size ANN's)", name, result.metrics, result.eval_loss,
                result.rates["mean_over_populations"], result.energy["distribution"]["steps"]["mean"],
                energy["energy_uj"], energy.get("energy_ratio_to_teacher", float("nan")), energy["energy_ratio_to_ann"])


def log_test_results(results):
    """Log the test set's metrics, scored for a checkpoint that dev chose."""
    for result in results:
        if result.set_name == TEST_SET:
            logger.info("test (scored for the checkpoint dev chose): %s eval_loss %.6g", result.metrics,
                        result.eval_loss)


def results_lines(results, header):
    """``key = value`` lines: ``header`` items first (e.g. t_conv, vth, step), then per set its metrics,
    eval loss, size and spike rates, keys prefixed by the set (``mnli.acc``, ``mnli-mm.acc``, ``test.acc``)."""
    lines = [f"{key} = {value}" for key, value in header.items()]
    for result in results:
        prefix = result.set_name
        lines += [f"{prefix}.{name} = {value}" for name, value in result.metrics.items()]
        lines += [f"{prefix}.eval_loss = {result.eval_loss}", f"{prefix}.num_examples = {result.num_examples}"]
        lines += [f"{prefix}.rate.{name} = {value}" for name, value in (result.rates or {}).items()]
        lines += [f"{key} = {value}" for key, value in flat_items(result.energy or {}, prefix)]
    return lines


def check_eval_outputs(output_dir, set_names, overwrite):
    """--do_eval may use an existing folder, but replaces earlier results only with --overwrite."""
    if overwrite or not os.path.isdir(output_dir):
        return
    for name in [RESULTS_NAME, ENERGY_NAME] + [predictions_name(set_name) for set_name in set_names]:
        if os.path.exists(os.path.join(output_dir, name)):
            raise ValueError(f"{os.path.join(output_dir, name)} exists; pass --overwrite to replace it")


def write_eval_files(output_dir, results, label_list, output_mode, header):
    """eval_results.txt, one predictions TSV per set (index, prediction, label) and, when the results
    carry energy reports, energy.json (``header`` and each set's report); each atomic."""
    lines = results_lines(results, header)
    write_atomically(os.path.join(output_dir, RESULTS_NAME), lambda f: f.write("\n".join(lines) + "\n"))
    if any(result.energy for result in results):
        energy = {"header": header, "sets": {result.set_name: result.energy for result in results}}
        write_atomically(os.path.join(output_dir, ENERGY_NAME),
                         lambda f: f.write(json.dumps(energy, indent=2) + "\n"))
    for result in results:
        rows = ["index\tprediction\tlabel"]
        for index, (prediction, label) in enumerate(zip(result.predictions, result.labels)):
            if output_mode == "regression":
                rows.append(f"{index}\t{float(prediction)!r}\t{float(label)!r}")
            else:
                rows.append(f"{index}\t{label_list[int(prediction)]}\t{label_list[int(label)]}")
        write_atomically(os.path.join(output_dir, predictions_name(result.set_name)),
                         lambda f, rows=rows: f.write("\n".join(rows) + "\n"))

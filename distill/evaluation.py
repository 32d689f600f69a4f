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

from distill.adaptive import simulate_until_settled
from distill.devices import unwrap
from distill.energy_report import ENERGY_NAME, flat_items
from glue import TEST_SET, compute_metrics, pad_batch
from models.snn_ide_bert import SpikingBertPreTrainedModel
from transformer.file_utils import write_atomically

logger = logging.getLogger(__name__)

RESULTS_NAME = "eval_results.txt"
PREDICTIONS_SUFFIX = "_predictions.tsv"


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


@torch.no_grad()
def run_model(model, features, batch_size, devices, sort_by_length=True, stopping_rule=None):
    """Run ``model`` (eval mode) over ``features`` in length-sorted batches; ModelOutputs in file order.

    ``stopping_rule``: a spiking classification student's adaptive time steps (distill/adaptive.py).
    """
    model.eval()
    spiking = isinstance(unwrap(model), SpikingBertPreTrainedModel)
    if stopping_rule is not None and not spiking:
        raise ValueError("adaptive time steps need a spiking student")
    batches = eval_batches(features, batch_size, sort_by_length)
    logits_all, labels_all, lengths_all, rates_all, spikes_all, steps_all = [], [], [], [], [], []
    for rows in batches:
        batch = pad_batch([features[i] for i in rows])
        inputs = batch.map(lambda t: t.to(devices.device)).inputs()
        with devices.autocast():
            if stopping_rule is not None:  # drives the simulation itself: on one device, without DataParallel
                outputs = simulate_until_settled(unwrap(model), rule=stopping_rule, **inputs)
            else:
                outputs = model(**inputs, output_rates=True) if spiking else model(**inputs)
        logits_all.append(outputs.logits.float().cpu())
        labels_all.append(batch.labels)
        lengths_all.append(batch.lengths)
        if spiking:
            rates_all.append(outputs.population_rates.float().cpu())
            spikes_all.append(outputs.population_spikes.cpu())
            steps_all.append(outputs.steps.cpu() if stopping_rule is not None else
                             torch.full_like(batch.lengths, unwrap(model).config.spiking.t_conv))
    file_order = torch.from_numpy(np.argsort(np.concatenate(batches)))

    def gathered(parts):
        return torch.cat(parts)[file_order] if parts else None

    return ModelOutputs(gathered(logits_all), gathered(labels_all), gathered(lengths_all), gathered(rates_all),
                        gathered(spikes_all), gathered(steps_all))


def predictions_of(logits, output_mode):
    """The predicted score (regression) or class id of each row of ``logits``."""
    return logits[:, 0].numpy() if output_mode == "regression" else logits.argmax(dim=1).numpy()


def evaluate(model, features, set_name, output_mode, batch_size, devices, sort_by_length=True,
             stopping_rule=None, metrics_task=None):
    """Run ``model`` (eval mode) over ``features`` (run_model); return an EvalResult in file order.

    ``metrics_task``: the task whose metrics apply; by default ``set_name``, as a dev set is named by its task.
    """
    outputs = run_model(model, features, batch_size, devices, sort_by_length, stopping_rule)
    logits, labels = outputs.logits, outputs.labels
    predictions = predictions_of(logits, output_mode)
    result = EvalResult(set_name, compute_metrics(metrics_task or set_name, predictions, labels.numpy()),
                        example_loss_sum(logits, labels, output_mode) / len(features), predictions,
                        labels.numpy(), len(features))
    if outputs.population_rates is not None:
        mean_rates = (outputs.population_rates.sum(dim=0) / len(features)).tolist()
        result.rates = dict(zip(unwrap(model).population_names(), mean_rates))
        result.rates["mean_over_populations"] = float(np.mean(mean_rates))
        result.lengths = outputs.lengths.numpy()
        result.population_spikes = outputs.population_spikes.numpy()
        result.steps = outputs.steps.numpy()
    return result


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

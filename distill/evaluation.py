"""Dev-set evaluation of a student or a teacher: metrics, loss, predictions, spike rates; result files.

Batches are padded only to their longest member (glue.pad_batch). Padded positions are
masked out of attention (-10000 before softmax) and the logits come from the [CLS]
position, so predictions do not depend on the padding; spike rates are averaged over
real tokens only.
"""
import logging
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from distill.devices import unwrap
from glue import compute_metrics, pad_batch
from models.spiking_bert import SpikingBertPreTrainedModel

logger = logging.getLogger(__name__)

RESULTS_NAME = "eval_results.txt"


def predictions_name(set_name):
    return f"{set_name}_dev_predictions.tsv"


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


def example_loss_sum(logits, labels, output_mode):
    """Summed per-example loss: squared error (regression) or cross-entropy."""
    if output_mode == "regression":
        return F.mse_loss(logits.view(-1), labels.view(-1), reduction="sum").item()
    return F.cross_entropy(logits, labels, reduction="sum").item()


@torch.no_grad()
def evaluate(model, features, set_name, output_mode, batch_size, devices):
    """Run ``model`` (eval mode) over ``features`` in order; return an EvalResult."""
    model.eval()
    spiking = isinstance(unwrap(model), SpikingBertPreTrainedModel)
    logits_all, labels_all, lengths_all, rates_all, spikes_all, loss_sum = [], [], [], [], [], 0.0
    for start in range(0, len(features), batch_size):
        input_ids, input_mask, segment_ids, labels, lengths = pad_batch(features[start:start + batch_size])
        inputs = [t.to(devices.device) for t in (input_ids, segment_ids, input_mask)]
        with devices.autocast():
            outputs = model(*inputs, output_rates=True) if spiking else model(*inputs)
        logits = outputs.logits.float().cpu()
        loss_sum += example_loss_sum(logits, labels, output_mode)
        logits_all.append(logits)
        labels_all.append(labels)
        lengths_all.append(lengths)
        if spiking:
            rates_all.append(outputs.population_rates.float().cpu())
            spikes_all.append(outputs.population_spikes.cpu())
    logits, labels = torch.cat(logits_all), torch.cat(labels_all).numpy()
    predictions = logits[:, 0].numpy() if output_mode == "regression" else logits.argmax(dim=1).numpy()
    result = EvalResult(set_name, compute_metrics(set_name, predictions, labels), loss_sum / len(features),
                        predictions, labels, len(features))
    if spiking:
        mean_rates = (torch.cat(rates_all).sum(dim=0) / len(features)).tolist()
        result.rates = dict(zip(unwrap(model).population_names(), mean_rates))
        result.rates["mean_over_populations"] = float(np.mean(mean_rates))
        result.lengths = torch.cat(lengths_all).numpy()
        result.population_spikes = torch.cat(spikes_all).numpy()
    return result


def results_lines(results, header):
    """``key = value`` lines: ``header`` items first (e.g. t_conv, vth, step), then per dev set its metrics,
    eval loss, size and spike rates, keys prefixed by the set (``mnli.acc``, ``mnli-mm.acc``)."""
    lines = [f"{key} = {value}" for key, value in header.items()]
    for result in results:
        prefix = result.set_name
        lines += [f"{prefix}.{name} = {value}" for name, value in result.metrics.items()]
        lines += [f"{prefix}.eval_loss = {result.eval_loss}", f"{prefix}.num_examples = {result.num_examples}"]
        lines += [f"{prefix}.rate.{name} = {value}" for name, value in (result.rates or {}).items()]
    return lines


def check_eval_outputs(output_dir, set_names, overwrite):
    """--do_eval may use an existing folder, but replaces earlier results only with --overwrite."""
    if overwrite or not os.path.isdir(output_dir):
        return
    for name in [RESULTS_NAME] + [predictions_name(set_name) for set_name in set_names]:
        if os.path.exists(os.path.join(output_dir, name)):
            raise ValueError(f"{os.path.join(output_dir, name)} exists; pass --overwrite to replace it")


def write_eval_files(output_dir, results, label_list, output_mode, header):
    """eval_results.txt and one predictions TSV per dev set (index, prediction, label), each atomic."""
    write_text_atomic(os.path.join(output_dir, RESULTS_NAME), "\n".join(results_lines(results, header)) + "\n")
    for result in results:
        rows = ["index\tprediction\tlabel"]
        for index, (prediction, label) in enumerate(zip(result.predictions, result.labels)):
            if output_mode == "regression":
                rows.append(f"{index}\t{float(prediction)!r}\t{float(label)!r}")
            else:
                rows.append(f"{index}\t{label_list[int(prediction)]}\t{label_list[int(label)]}")
        write_text_atomic(os.path.join(output_dir, predictions_name(result.set_name)), "\n".join(rows) + "\n")


def write_text_atomic(path, text):
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=directory or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

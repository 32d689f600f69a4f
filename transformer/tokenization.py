"""BERT WordPiece tokenizer: basic splitting (whitespace, punctuation, CJK) then greedy WordPiece.

Same algorithm as the original BERT ``tokenization.py``: clean the text (drop control
characters, map whitespace to spaces), put spaces around CJK characters, split on
whitespace, lower-case and strip accents when asked, split off punctuation, then cut
each word into the longest vocabulary pieces from the left (``##`` marks a
continuation); a word with no split or longer than 100 characters becomes ``[UNK]``.
"""
import collections
import os
import unicodedata

from transformer.checkpoint import VOCAB_NAME


def load_vocab(vocab_file):
    """OrderedDict token -> id, one token per line, id = line number."""
    if not os.path.isfile(vocab_file):
        raise FileNotFoundError(f"{vocab_file}: vocabulary file not found")
    vocab = collections.OrderedDict()
    try:
        with open(vocab_file, encoding="utf-8") as f:
            for index, line in enumerate(f):
                vocab[line.rstrip("\r\n")] = index
    except UnicodeDecodeError as e:
        raise ValueError(f"{vocab_file}: not valid UTF-8 ({e.reason})") from None
    return vocab


def whitespace_tokenize(text):
    return text.strip().split()


def _is_whitespace(char):
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char):
    # \t \n \r are control characters for Unicode but whitespace for us.
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char).startswith("C")


def _is_punctuation(char):
    # ASCII symbols such as "$" and "^" are not Unicode punctuation but BERT splits them too.
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp):
    """CJK Unified Ideographs blocks (not Japanese kana or Korean hangul, which are spaced)."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class BasicTokenizer:
    """Clean text, split CJK characters, lower-case and strip accents, split punctuation."""

    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text):
        text = self._clean_text(text)
        text = self._tokenize_chinese_chars(text)
        tokens = []
        for token in whitespace_tokenize(text):
            if self.do_lower_case:
                token = self._strip_accents(token.lower())
            tokens.extend(self._split_on_punctuation(token))
        return whitespace_tokenize(" ".join(tokens))

    @staticmethod
    def _clean_text(text):
        out = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            out.append(" " if _is_whitespace(char) else char)
        return "".join(out)

    @staticmethod
    def _tokenize_chinese_chars(text):
        return "".join(f" {c} " if _is_chinese_char(ord(c)) else c for c in text)

    @staticmethod
    def _strip_accents(text):
        return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")

    @staticmethod
    def _split_on_punctuation(text):
        pieces = []
        start_new_word = True
        for char in text:
            if _is_punctuation(char):
                pieces.append(char)
                start_new_word = True
            else:
                if start_new_word:
                    pieces.append("")
                start_new_word = False
                pieces[-1] += char
        return pieces


class WordpieceTokenizer:
    """Greedy longest-match-first split of one word into vocabulary pieces."""

    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text):
        output = []
        for word in whitespace_tokenize(text):
            output.extend(self._split_word(word))
        return output

    def _split_word(self, word):
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            piece = None
            while start < end:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                if candidate in self.vocab:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces


class BertTokenizer:
    """End-to-end BERT tokenizer: BasicTokenizer then WordpieceTokenizer."""

    def __init__(self, vocab_file, do_lower_case=True):
        self.vocab_file = vocab_file
        self.vocab = load_vocab(vocab_file)
        self.ids_to_tokens = collections.OrderedDict((i, t) for t, i in self.vocab.items())
        self.do_lower_case = do_lower_case
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab)

    @classmethod
    def from_pretrained(cls, model_dir, do_lower_case=True):
        """Tokenizer of a model directory (reads ``model_dir/vocab.txt``)."""
        return cls(os.path.join(model_dir, VOCAB_NAME), do_lower_case=do_lower_case)

    def tokenize(self, text):
        tokens = []
        for word in self.basic_tokenizer.tokenize(text):
            tokens.extend(self.wordpiece_tokenizer.tokenize(word))
        return tokens

    def convert_tokens_to_ids(self, tokens):
        """Ids of ``tokens``; a token outside the vocabulary maps to ``[UNK]``."""
        ids = []
        for token in tokens:
            if token in self.vocab:
                ids.append(self.vocab[token])
            elif "[UNK]" in self.vocab:
                ids.append(self.vocab["[UNK]"])
            else:
                raise KeyError(f"token {token!r} is not in {self.vocab_file}, which has no [UNK]")
        return ids

    def convert_ids_to_tokens(self, ids):
        return [self.ids_to_tokens[int(i)] for i in ids]

    def __len__(self):
        return len(self.vocab)

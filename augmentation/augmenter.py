"""TinyBERT's data augmentation (Jiao et al. 2020, algorithm 1): word replacement by candidates.

A sentence is split into words by BERT's basic tokenizer. Every word of ASCII letters that is not a
stop word gets a candidate list; each augmented sentence takes every such word, draws a candidate
uniformly and puts it in place with probability p. Candidates come from one of two sources:

- ``MaskedLMCandidates`` (TinyBERT's): a word that is a single WordPiece is replaced by [MASK] in
  ``[CLS] masked sentence [SEP] sentence [SEP]`` (segments 0 then 1, the unmasked sentence as context
  as in TinyBERT's script) and its candidates are the masked LM's M most likely tokens at the mask,
  continuation pieces (``##x``) and bracketed special tokens dropped; any other word's candidates
  are its M nearest GloVe neighbours by cosine.
- ``EmbeddingCandidates`` (the offline substitute): for every word, the M nearest whole-word tokens
  by cosine in the checkpoint's own word-embedding matrix, the word's vector being the mean of its
  pieces' embeddings.

A word without candidates stays as it is.
"""
import re

import numpy as np
import torch

from augmentation.word_vectors import WordVectors

# NLTK's English stop words, TinyBERT's list. Its forms with an apostrophe ("don't", "'s") are left
# out: the basic tokenizer splits them at the apostrophe, so they never reach the stop-word test.
STOP_WORDS = frozenset("""
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is are
    was were be been being have has had having do does did doing a an the and but if or because as until while
    of at by for with about against between into through during before after above below to from up down in out
    on off over under again further then once here there when where why how all any both each few more most
    other some such no nor not only own same so than too very s t can will just don should now d ll m o re ve y
    ain aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn
""".split())
LETTERS = re.compile("[a-z]+")


def is_replaceable(word):
    """TinyBERT augments words made of ASCII letters only that are not stop words."""
    lowered = word.lower()
    return LETTERS.fullmatch(lowered) is not None and lowered not in STOP_WORDS


def is_whole_word_token(token):
    """A vocabulary token that can stand as a word: not a ``##`` continuation, not ``[CLS]``-like."""
    return not token.startswith("##") and not (len(token) > 2 and token.startswith("[") and token.endswith("]"))


class Augmenter:
    """Up to ``num_augmented`` distinct new versions of a sentence (TinyBERT's N tries per sentence).

    ``candidates`` maps a list of sentences, each a list of words, to one ``{word index: candidate
    list}`` per sentence. A try that changes nothing, or repeats an earlier one, is dropped.
    """

    def __init__(self, tokenizer, candidates, num_augmented, replace_prob):
        self.tokenizer = tokenizer
        self.candidates = candidates
        self.num_augmented = num_augmented
        self.replace_prob = replace_prob

    def augment(self, sentences, rngs):
        """One list of augmented sentences per sentence; ``rngs`` (one ``random.Random`` per sentence)
        make each sentence's result independent of what it is batched with."""
        words = [self.tokenizer.basic_tokenizer.tokenize(sentence) for sentence in sentences]
        candidates = self.candidates(words)
        return [self.sample(*args) for args in zip(sentences, words, candidates, rngs)]

    def sample(self, sentence, words, candidates, rng):
        seen = {sentence, " ".join(words)}
        augmented = []
        for _ in range(self.num_augmented):
            new_words = list(words)
            for index, options in candidates.items():
                choice = rng.choice(options)
                if rng.random() < self.replace_prob:
                    new_words[index] = choice
            text = " ".join(new_words)
            if text not in seen:
                seen.add(text)
                augmented.append(text)
        return augmented


class MaskedLMCandidates:
    """TinyBERT's candidates: the masked LM's top-M for single-piece words, GloVe neighbours otherwise.

    The masked sequences of all sentences given at once are run through the model sorted by
    length, ``batch_size`` at a time, and only the masked position is decoded.
    """

    def __init__(self, model, tokenizer, glove, num_candidates, batch_size=32, device="cpu"):
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.glove = glove
        self.num_candidates = num_candidates
        self.batch_size = batch_size
        self.device = device
        self.max_length = model.config.max_position_embeddings
        self._glove_cache = {}

    def __call__(self, sentences):
        candidates = [{} for _ in sentences]
        queries = []  # (sentence, word index, token ids, segment ids, masked position)
        for s, words in enumerate(sentences):
            pieces = [self.tokenizer.wordpiece_tokenizer.tokenize(word) for word in words]
            for index, word in enumerate(words):
                if not is_replaceable(word):
                    continue
                if len(pieces[index]) == 1:
                    query = self.masked_sequence(pieces, index)
                    if query is None:
                        candidates[s][index] = [word]
                    else:
                        queries.append((s, index) + query)
                else:
                    candidates[s][index] = self.glove_neighbours(word) or [word]
        for (s, index, *_), options in zip(queries, self.predict(queries)):
            candidates[s][index] = options or [sentences[s][index]]
        return [dict(sorted(c.items())) for c in candidates]

    def masked_sequence(self, pieces, index):
        """(ids, segment ids, mask position) of ``[CLS] masked [SEP] original [SEP]``, cut to the model's
        length; None when the mask falls beyond it."""
        flat = [piece for word_pieces in pieces for piece in word_pieces]
        position = 1 + sum(len(word_pieces) for word_pieces in pieces[:index])
        if position >= self.max_length:
            return None
        first = ["[CLS]"] + flat[:position - 1] + ["[MASK]"] + flat[position:] + ["[SEP]"]
        tokens = (first + flat + ["[SEP]"])[:self.max_length]
        segments = ([0] * len(first) + [1] * (len(flat) + 1))[:self.max_length]
        return self.tokenizer.convert_tokens_to_ids(tokens), segments, position

    @torch.no_grad()
    def predict(self, queries):
        """The top-M whole-word tokens at each query's mask, in query order."""
        order = sorted(range(len(queries)), key=lambda q: len(queries[q][2]))
        predictions = [None] * len(queries)
        for start in range(0, len(order), self.batch_size):
            batch = [queries[q] for q in order[start:start + self.batch_size]]
            width = max(len(ids) for _, _, ids, _, _ in batch)
            input_ids = torch.zeros(len(batch), width, dtype=torch.long)
            segment_ids = torch.zeros_like(input_ids)
            attention_mask = torch.zeros_like(input_ids)
            for row, (_, _, ids, segments, _) in enumerate(batch):
                input_ids[row, :len(ids)] = torch.tensor(ids)
                segment_ids[row, :len(ids)] = torch.tensor(segments)
                attention_mask[row, :len(ids)] = 1
            positions = torch.tensor([position for *_, position in batch])
            logits = self.model(input_ids.to(self.device), segment_ids.to(self.device),
                                attention_mask.to(self.device), masked_positions=positions.to(self.device))
            top = logits.topk(self.num_candidates, dim=-1).indices.cpu().tolist()
            for q, token_ids in zip(order[start:start + self.batch_size], top):
                tokens = self.tokenizer.convert_ids_to_tokens(token_ids)
                predictions[q] = [token for token in tokens if is_whole_word_token(token)]
        return predictions

    def glove_neighbours(self, word):
        """The word's M nearest GloVe words (looked up lower-cased; title case kept as TinyBERT does)."""
        if word not in self._glove_cache:
            key = word.lower()
            neighbours = []
            if key in self.glove:
                neighbours = self.glove.nearest(self.glove.vector(key), self.num_candidates, exclude=key)
            if word.istitle():
                neighbours = [neighbour.title() for neighbour in neighbours]
            self._glove_cache[word] = neighbours
        return self._glove_cache[word]


class EmbeddingCandidates:
    """The substitute for an MLM head and GloVe: nearest whole-word tokens in a word-embedding matrix.

    Candidates are the vocabulary tokens made of ASCII letters (no ``##`` pieces, no special or
    ``[unused]`` tokens, no punctuation or digits); a word is represented by the mean embedding of
    its WordPieces, and a word that tokenizes to ``[UNK]`` has no candidates.
    """

    def __init__(self, tokenizer, word_embeddings, num_candidates):
        self.tokenizer = tokenizer
        self.embeddings = np.asarray(word_embeddings, dtype=np.float32)
        if len(self.embeddings) < len(tokenizer.vocab):
            raise ValueError(f"{tokenizer.vocab_file}: {len(tokenizer.vocab)} tokens but only "
                             f"{len(self.embeddings)} word embeddings")
        words = [token for token, i in tokenizer.vocab.items() if LETTERS.fullmatch(token.lower())]
        self.vocabulary = WordVectors(words, self.embeddings[[tokenizer.vocab[word] for word in words]])
        self.num_candidates = num_candidates
        self._cache = {}

    def __call__(self, sentences):
        return [{index: self.neighbours(word) or [word] for index, word in enumerate(words) if is_replaceable(word)}
                for words in sentences]

    def neighbours(self, word):
        if word not in self._cache:
            pieces = self.tokenizer.wordpiece_tokenizer.tokenize(word)
            neighbours = []
            if "[UNK]" not in pieces:
                vector = self.embeddings[self.tokenizer.convert_tokens_to_ids(pieces)].mean(axis=0)
                neighbours = self.vocabulary.nearest(vector, self.num_candidates, exclude=word)
            self._cache[word] = neighbours
        return self._cache[word]

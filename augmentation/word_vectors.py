"""Word vectors with cosine nearest neighbours: GloVe files and a BERT word-embedding matrix."""
import os

import numpy as np

from transformer.file_utils import read_utf8_lines


class WordVectors:
    """Words and their vectors scaled to unit length, so that a dot product is a cosine similarity.

    A zero vector (GloVe's ``<unk>`` in some files) stays zero: cosine 0 with every word. A repeated
    word keeps its first vector.
    """

    def __init__(self, words, vectors):
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(words) != len(vectors):
            raise ValueError(f"{len(words)} words but {len(vectors)} vectors")
        first_rows = {}
        for i, word in enumerate(words):
            first_rows.setdefault(word, i)
        self.words = list(first_rows)
        self.index = {word: i for i, word in enumerate(self.words)}
        vectors = vectors[list(first_rows.values())]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = vectors / np.maximum(norms, np.finfo(np.float32).tiny)

    def __contains__(self, word):
        return word in self.index

    def __len__(self):
        return len(self.words)

    def vector(self, word):
        return self.vectors[self.index[word]]

    def nearest(self, vector, count, exclude=None):
        """The ``count`` words of highest cosine similarity to ``vector``, most similar first, ``exclude``
        left out; ties go to the earlier word, so the answer is deterministic."""
        scores = self.vectors @ (vector / max(np.linalg.norm(vector), np.finfo(np.float32).tiny))
        if exclude in self.index:
            scores[self.index[exclude]] = -np.inf
        count = min(count, len(scores))
        top = np.argpartition(-scores, count - 1)[:count]
        # lexsort sorts by its last key first: by descending score, then by index
        top = top[np.lexsort((top, -scores[top]))]
        return [self.words[i] for i in top if scores[i] > -np.inf]


def read_glove(path, max_words=100_000):
    """WordVectors of the first ``max_words`` lines of a GloVe text file (``word v1 ... vd`` per line).

    Every line must have the first line's number of values; a malformed line is a ValueError
    naming ``path:line``. Blank lines are skipped.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: GloVe file not found")
    words, rows, dim = [], [], None
    for line_number, line in read_utf8_lines(path):
        if len(words) == max_words:
            break
        fields = line.split()
        if not fields:
            continue
        if dim is None:
            dim = len(fields) - 1
            if dim < 1:
                raise ValueError(f"{path}:{line_number}: expected a word followed by its vector, found one field")
        if len(fields) != dim + 1:
            raise ValueError(f"{path}:{line_number}: expected a word and {dim} numbers (as on the first line), "
                             f"found {len(fields) - 1} values")
        try:
            rows.append(np.array(fields[1:], dtype=np.float32))
        except ValueError as e:
            raise ValueError(f"{path}:{line_number}: {e}") from None
        words.append(fields[0])
    if not words:
        raise ValueError(f"{path}: no word vectors in the file")
    return WordVectors(words, np.stack(rows))

"""BERT pre-training instances (next-sentence pairs + masked LM) from a one-sentence-per-line corpus.

The corpus has one sentence per line and a blank line between documents. Every document draws its
randomness from its own generator, seeded by (seed, epoch, document index), so the output does not
depend on how documents are spread over worker processes: any ``num_workers`` writes the same bytes.
"""
import bisect
import json
import logging
import multiprocessing
import os
import random
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm import tqdm

from transformer.file_utils import read_utf8_lines, write_atomically

logger = logging.getLogger(__name__)

TOKENIZE_BATCH = 256  # documents read and tokenized at a time, so memory stays bounded


@dataclass
class PregenerationConfig:
    max_seq_len: int = 128
    short_seq_prob: float = 0.1
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_mask: bool = False
    one_seq: bool = False
    seed: int = 42

    def validate(self):
        """Errors name the settings as preprocess_training_data.py's flags, which have the same names."""
        if self.max_seq_len < 5:
            raise ValueError(f"--max_seq_len must be at least 5, got {self.max_seq_len}")
        for name in ("short_seq_prob", "masked_lm_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_predictions_per_seq < 0:
            raise ValueError(f"--max_predictions_per_seq must be >= 0, got {self.max_predictions_per_seq}")


class DocumentStore:
    """Tokenized documents (lists of sentences, each a list of tokens), in memory or on disk.

    On disk (``work_dir`` given) the documents are JSON lines in one file and only their offsets stay
    in memory; each process opens its own read handle, so the store can be shared with workers.
    """

    def __init__(self, work_dir=None):
        self.path = os.path.join(work_dir, "documents.jsonl") if work_dir else None
        self.documents = None if self.path else []
        self.offsets = []
        self.sentence_counts = []
        self.cumulative_sentences = []
        self._writer = open(self.path, "wb") if self.path else None
        self._reader = None
        self._reader_pid = None

    def add(self, document):
        if not document:
            return
        if self.path:
            self.offsets.append(self._writer.tell())
            self._writer.write(json.dumps(document).encode("utf-8") + b"\n")
        else:
            self.documents.append(document)
        previous = self.cumulative_sentences[-1] if self.cumulative_sentences else 0
        self.sentence_counts.append(len(document))
        self.cumulative_sentences.append(previous + len(document))

    def finish(self):
        """Done adding: close the writer (before worker processes start reading)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self):
        self.finish()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __len__(self):
        return len(self.sentence_counts)

    def __getitem__(self, index):
        if self.documents is not None:
            return self.documents[index]
        if self._reader is None or self._reader_pid != os.getpid():
            self._reader, self._reader_pid = open(self.path, "rb"), os.getpid()
        self._reader.seek(self.offsets[index])
        return json.loads(self._reader.readline())

    def __getstate__(self):
        return {**self.__dict__, "_writer": None, "_reader": None, "_reader_pid": None}

    def sample_other(self, current, rng):
        """Index of a random document other than ``current``, drawn in proportion to sentence counts."""
        total = self.cumulative_sentences[-1]
        start = self.cumulative_sentences[current]
        sentence = rng.randrange(start, start + total - self.sentence_counts[current]) % total
        return bisect.bisect_right(self.cumulative_sentences, sentence)


def truncate_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Drop tokens from a random end of the longer sequence until the pair fits."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        del longer[0 if rng.random() < 0.5 else -1]


def mask_tokens(tokens, config, vocab_list, rng):
    """Masked LM: choose positions (whole words with ``whole_word_mask``), then 80% [MASK], 10% kept, 10% random.

    Returns ``(tokens, positions, labels)``; ``masked_lm_prob == 0`` masks nothing.
    """
    candidates = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        # A piece joins the word before it only when adjacent (not across [SEP] after truncation).
        if config.whole_word_mask and token.startswith("##") and candidates and candidates[-1][-1] == i - 1:
            candidates[-1].append(i)
        else:
            candidates.append([i])
    num_to_mask = 0
    if config.masked_lm_prob > 0:
        num_to_mask = min(config.max_predictions_per_seq, max(1, round(len(tokens) * config.masked_lm_prob)))
    rng.shuffle(candidates)
    masked = []
    for word in candidates:
        if len(masked) >= num_to_mask:
            break
        if len(masked) + len(word) > num_to_mask:
            continue
        for index in word:
            masked.append((index, tokens[index]))
            if rng.random() < 0.8:
                tokens[index] = "[MASK]"
            elif rng.random() < 0.5:
                tokens[index] = vocab_list[rng.randrange(len(vocab_list))]
    masked.sort()
    return tokens, [i for i, _ in masked], [label for _, label in masked]


def make_instance(tokens_a, tokens_b, is_random_next, config, vocab_list, rng):
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b is not None:
        tokens += tokens_b + ["[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)
    tokens, positions, labels = mask_tokens(tokens, config, vocab_list, rng)
    return json.dumps({"tokens": tokens, "segment_ids": segment_ids, "is_random_next": is_random_next,
                       "masked_lm_positions": positions, "masked_lm_labels": labels})


def instances_from_document(store, doc_index, epoch, config, vocab_list):
    """JSON lines of the instances made from one document in one epoch.

    Sentences are gathered into chunks of about the target length. Pairs: A is the first few sentences
    of a chunk; B is the rest of the chunk (true continuation, probability 0.5) or text from another
    document, whose unused sentences go back into the pool. A one-sentence chunk takes the next
    sentence as its continuation, so the random-next rate stays at 0.5 except at document ends.
    """
    rng = random.Random(f"{config.seed}:{epoch}:{doc_index}")
    document = store[doc_index]
    max_num_tokens = config.max_seq_len - (2 if config.one_seq else 3)
    target_length = max_num_tokens
    if rng.random() < config.short_seq_prob:
        target_length = rng.randint(2, max_num_tokens)
    instances, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            if config.one_seq:
                tokens_a = [t for sentence in chunk for t in sentence]
                truncate_pair(tokens_a, [], max_num_tokens, rng)
                instances.append(make_instance(tokens_a, None, False, config, vocab_list, rng))
            else:
                is_random_next = rng.random() < 0.5
                if not is_random_next and len(chunk) == 1:
                    if i + 1 < len(document):
                        i += 1
                        chunk.append(document[i])
                    else:
                        is_random_next = True
                a_end = rng.randrange(1, len(chunk)) if len(chunk) >= 2 else 1
                tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
                tokens_b = []
                if is_random_next:
                    other = store[store.sample_other(doc_index, rng)]
                    for sentence in other[rng.randrange(len(other)):]:
                        tokens_b.extend(sentence)
                        if len(tokens_b) >= target_length - len(tokens_a):
                            break
                    i -= len(chunk) - a_end
                else:
                    tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
                truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
                instances.append(make_instance(tokens_a, tokens_b, is_random_next, config, vocab_list, rng))
            chunk, chunk_length = [], 0
        i += 1
    return instances


# Worker-process state, set once per process by the pool initializers.
_worker = {}


def _init_tokenize_worker(tokenizer):
    _worker["tokenizer"] = tokenizer


def _tokenize_document(lines):
    tokenizer = _worker["tokenizer"]
    return [tokens for tokens in (tokenizer.tokenize(line) for line in lines) if tokens]


def _init_instance_worker(store, config, vocab_list):
    _worker.update(store=store, config=config, vocab_list=vocab_list)


def _document_instances(task):
    epoch, doc_index = task
    return instances_from_document(_worker["store"], doc_index, epoch, _worker["config"], _worker["vocab_list"])


def raw_documents(corpus_path):
    """Lists of non-empty lines, one list per blank-line-separated document."""
    document = []
    for _, line in read_utf8_lines(corpus_path):
        line = line.strip()
        if line:
            document.append(line)
        elif document:
            yield document
            document = []
    if document:
        yield document


def batches(iterable, size):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextmanager
def worker_map(num_workers, initializer, initargs):
    """An ordered ``map(function, items)``: in this process for one worker, else over a process pool.

    Documents differ in size by orders of magnitude, so work goes out in small chunks (about 64 per
    worker) to keep the workers evenly loaded.
    """
    if num_workers <= 1:
        initializer(*initargs)
        try:
            yield map
        finally:
            _worker.clear()
        return
    with multiprocessing.Pool(num_workers, initializer=initializer, initargs=initargs) as pool:
        yield lambda function, items: pool.imap(function, items, chunksize=max(1, len(items) // (64 * num_workers)))


def read_corpus(corpus_path, tokenizer, store, num_workers=1):
    """Tokenize the corpus into ``store``; returns the number of whitespace-separated words read."""
    words = 0
    with worker_map(num_workers, _init_tokenize_worker, (tokenizer,)) as map_documents, \
            tqdm(desc="tokenizing", unit=" docs") as progress:
        for batch in batches(raw_documents(corpus_path), TOKENIZE_BATCH * max(1, num_workers)):
            words += sum(len(line.split()) for document in batch for line in document)
            for document in map_documents(_tokenize_document, batch):
                store.add(document)
            progress.update(len(batch))
    store.finish()
    return words


def random_word_list(vocab):
    """Replacement tokens for the 10% random case: the vocabulary minus bracketed special tokens."""
    return [t for t in vocab if not (t.startswith("[") and t.endswith("]"))]


def write_lines(path, lines):
    """Write each of ``lines`` (an iterable) with its line end, atomically; returns how many."""
    def write(f):
        count = 0
        for line in lines:
            f.write(line + "\n")
            count += 1
        return count
    return write_atomically(path, write)


# The files a pregeneration writes into its output folder.
EPOCH_FILE = re.compile(r"^epoch_(\d+)(_metrics)?\.json$")


@contextmanager
def staged_output(output_dir, epochs):
    """A scratch folder in ``output_dir`` (created when missing) for the block to write a pregeneration into.

    When the block succeeds its files replace their namesakes in ``output_dir`` and the epoch files of an
    earlier corpus beyond ``epochs`` are deleted, so general KD never reads two corpora; other files stay.
    When it fails (or is interrupted) the scratch folder is deleted and ``output_dir`` is left as it was (a
    folder it created is removed again); a killed run's scratch folder is removed by the next run
    (transformer.checkpoint.remove_scratch).
    """
    created = not os.path.isdir(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".pregeneration-", dir=output_dir)
    try:
        yield staging
        for name in sorted(os.listdir(staging)):
            os.replace(os.path.join(staging, name), os.path.join(output_dir, name))
        for name in os.listdir(output_dir):
            match = EPOCH_FILE.match(name)
            if match and int(match.group(1)) >= epochs:
                os.remove(os.path.join(output_dir, name))
                logger.info("removed %s of an earlier corpus", os.path.join(output_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not os.listdir(output_dir):
            os.rmdir(output_dir)


def pregenerate(corpus_path, tokenizer, output_dir, epochs, config, num_workers=1, reduce_memory=False):
    """Write ``epoch_{e}.json`` and ``epoch_{e}_metrics.json`` for e in range(epochs) into ``output_dir``.

    Returns ``{"words": ..., "documents": ..., "instances": [per epoch]}``.
    """
    config.validate()
    os.makedirs(output_dir, exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix=".documents-", dir=output_dir) if reduce_memory else None
    store = DocumentStore(work_dir)
    try:
        words = read_corpus(corpus_path, tokenizer, store, num_workers)
        if len(store) == 0:
            raise ValueError(f"{corpus_path}: no text found")
        if len(store) < 2 and not config.one_seq:
            raise ValueError(f"{corpus_path}: sentence pairs need at least 2 documents (blank-line separated); "
                             "found 1 (use --one_seq for single-segment instances)")
        logger.info("%s: %d documents, %d words", corpus_path, len(store), words)
        vocab_list = random_word_list(tokenizer.vocab)
        counts = []
        for epoch in range(epochs):
            tasks = [(epoch, i) for i in range(len(store))]
            # The bar is closed on the way out (not when collected), so that an interruption's line comes last.
            with worker_map(num_workers, _init_instance_worker, (store, config, vocab_list)) as map_documents, \
                    tqdm(map_documents(_document_instances, tasks), total=len(tasks), desc=f"epoch {epoch}",
                         unit=" docs") as results:
                count = write_lines(os.path.join(output_dir, f"epoch_{epoch}.json"),
                                    (line for lines in results for line in lines))
            metrics = {"num_training_examples": count, "max_seq_len": config.max_seq_len}
            write_lines(os.path.join(output_dir, f"epoch_{epoch}_metrics.json"), [json.dumps(metrics)])
            logger.info("epoch %d: %d instances", epoch, count)
            counts.append(count)
    finally:
        store.close()
        if work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    return {"words": words, "documents": len(store), "instances": counts}

"""GLUE task processors: read each task's TSV files (standard GLUE column layouts) into examples.

Every reader reports a malformed row as ``file:line``. QQP's train file has a few known rows with
missing columns; those are skipped and counted in one warning instead.
"""
import logging
import math
import os
from dataclasses import dataclass

from transformer.file_utils import read_utf8_lines

logger = logging.getLogger(__name__)

TEST_SET = "test"  # the name (and results prefix) of a task folder's labelled test set


@dataclass
class InputExample:
    guid: str
    text_a: str
    text_b: str = None
    label: str = None


def read_tsv(path):
    """Yield ``(line_number, columns)`` for every non-empty line of a tab-separated file.

    Lines are split on tabs only (no quote handling: GLUE sentences contain bare quotes) and on
    ``\\n`` only, so a stray carriage return inside a field cannot break a row.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    for line_number, line in read_utf8_lines(path):
        if line:
            yield line_number, line.split("\t")


class DataProcessor:
    """One task: which files hold which split, which columns hold text and label, which labels exist.

    Subclasses set ``labels`` (None for regression), ``has_header``, ``text_a_column``,
    ``text_b_column`` (None for single-sentence tasks), ``label_column`` (may count from the end),
    ``min_columns`` (when a negative column makes it ambiguous) and ``dev_file``. A ``test.tsv`` is scored
    beside the dev set(s) only when it has labels: the dev file's header (GLUE's test files have none).
    """
    name = None
    labels = None
    has_header = True
    text_a_column = None
    text_b_column = None
    label_column = None
    min_columns = None
    dev_file = "dev.tsv"
    test_file = "test.tsv"
    skip_short_rows = False

    @property
    def output_mode(self):
        return "classification" if self.labels is not None else "regression"

    def get_labels(self):
        return list(self.labels) if self.labels is not None else [None]

    def get_train_examples(self, data_dir, aug=False):
        return self.read_examples(os.path.join(data_dir, "train_aug.tsv" if aug else "train.tsv"), "train")

    def get_dev_examples(self, data_dir):
        return self.read_examples(os.path.join(data_dir, self.dev_file), "dev")

    def dev_sets(self, data_dir):
        """Every dev set the task is evaluated on, by task name (MNLI has two)."""
        return {self.name: self.get_dev_examples(data_dir)}

    def labelled_test_examples(self, data_dir):
        """The examples of the task folder's test file, or None when it has none or one without labels."""
        path = os.path.join(data_dir, self.test_file)
        if not os.path.isfile(path):
            return None
        if self.has_header:
            labelled = self.header(path) == self.header(os.path.join(data_dir, self.dev_file))
        else:
            labelled = len(next(read_tsv(path), (None, []))[1]) >= self.needed_columns
        if not labelled:
            logger.info("%s has no labels: not evaluated", path)
            return None
        return self.read_examples(path, TEST_SET)

    def eval_sets(self, data_dir):
        """Every labelled set the task is scored on: the dev set(s), then ``test`` when it has labels.
        Training and checkpoint selection use the dev sets only."""
        sets = self.dev_sets(data_dir)
        test = self.labelled_test_examples(data_dir)
        if test is not None:
            sets[TEST_SET] = test
        return sets

    @property
    def needed_columns(self):
        return self.min_columns or max(c for c in (self.text_a_column, self.text_b_column, self.label_column)
                                       if c is not None) + 1

    @property
    def text_columns(self):
        """The columns that hold text: (text_a,) or (text_a, text_b)."""
        return tuple(c for c in (self.text_a_column, self.text_b_column) if c is not None)

    def header(self, path):
        """The header row's columns of a split file, or None for a task without a header."""
        if not self.has_header:
            return None
        return next(read_tsv(path), (None, None))[1]

    def rows(self, path):
        """Yield ``(line_number, columns)`` for every data row of a split file (header skipped).

        A row with too few columns is an error, or, for QQP, skipped and counted in one warning.
        """
        needed = self.needed_columns
        lines = read_tsv(path)
        if self.has_header:
            next(lines, None)
        short_rows = 0
        for line_number, row in lines:
            if len(row) < needed:
                if self.skip_short_rows:
                    short_rows += 1
                    continue
                raise ValueError(f"{path}:{line_number}: expected at least {needed} tab-separated columns, "
                                 f"found {len(row)}")
            yield line_number, row
        if short_rows:
            logger.warning("%s: skipped %d rows with missing columns", path, short_rows)

    def read_examples(self, path, split):
        examples = []
        for line_number, row in self.rows(path):
            label = self.parse_label(row[self.label_column], path, line_number)
            text_b = row[self.text_b_column] if self.text_b_column is not None else None
            examples.append(InputExample(f"{split}-{line_number}", row[self.text_a_column], text_b, label))
        if not examples:
            raise ValueError(f"{path}: no examples")
        return examples

    def parse_label(self, value, path, line_number):
        value = value.strip()
        if self.labels is None:
            try:
                score = float(value)
            except ValueError:
                raise ValueError(f"{path}:{line_number}: score {value!r} is not a number") from None
            if not math.isfinite(score):  # float() accepts "nan" and "inf"; either would poison the loss
                raise ValueError(f"{path}:{line_number}: score {value!r} is not a finite number")
            return score
        if value not in self.labels:
            raise ValueError(f"{path}:{line_number}: label {value!r} is not one of {', '.join(self.labels)}")
        return value


class ColaProcessor(DataProcessor):
    # No header: source, label, original label, sentence.
    name, labels, has_header = "cola", ("0", "1"), False
    text_a_column, label_column = 3, 1


class Sst2Processor(DataProcessor):
    name, labels = "sst-2", ("0", "1")
    text_a_column, label_column = 0, 1


class MrpcProcessor(DataProcessor):
    # Quality, #1 ID, #2 ID, #1 String, #2 String
    name, labels = "mrpc", ("0", "1")
    text_a_column, text_b_column, label_column = 3, 4, 0


class StsbProcessor(DataProcessor):
    # index genre filename year old_index source1 source2 sentence1 sentence2 score
    name = "sts-b"
    text_a_column, text_b_column, label_column = 7, 8, 9


class QqpProcessor(DataProcessor):
    # id qid1 qid2 question1 question2 is_duplicate
    name, labels = "qqp", ("0", "1")
    text_a_column, text_b_column, label_column = 3, 4, 5
    skip_short_rows = True


class MnliProcessor(DataProcessor):
    # sentence1 at column 8, sentence2 at 9, gold_label last (column 11 in dev, 10 in train).
    name, labels = "mnli", ("contradiction", "entailment", "neutral")
    text_a_column, text_b_column, label_column, min_columns = 8, 9, -1, 11
    dev_file = "dev_matched.tsv"

    def dev_sets(self, data_dir):
        return {"mnli": self.get_dev_examples(data_dir),
                "mnli-mm": MnliMismatchedProcessor().get_dev_examples(data_dir)}


class MnliMismatchedProcessor(MnliProcessor):
    name = "mnli-mm"
    dev_file = "dev_mismatched.tsv"

    def dev_sets(self, data_dir):
        return {self.name: self.get_dev_examples(data_dir)}


class QnliProcessor(DataProcessor):
    # index question sentence label
    name, labels = "qnli", ("entailment", "not_entailment")
    text_a_column, text_b_column, label_column = 1, 2, 3


class RteProcessor(QnliProcessor):
    name = "rte"


class WnliProcessor(QnliProcessor):
    name, labels = "wnli", ("0", "1")


class MovieProcessor(Sst2Processor):
    """Rotten Tomatoes sentences from prepare_assets.py in SST-2 layout (header ``sentence\\tlabel``)."""
    name = "movie"


class MovieRegressionProcessor(DataProcessor):
    """The same sentences with their mean human rating in [-4, 4] (header ``sentence\\tscore``)."""
    name = "movie-reg"
    text_a_column, label_column = 0, 1


PROCESSORS = {p.name: p for p in (
    ColaProcessor, Sst2Processor, MrpcProcessor, StsbProcessor, QqpProcessor, MnliProcessor,
    MnliMismatchedProcessor, QnliProcessor, RteProcessor, WnliProcessor, MovieProcessor,
    MovieRegressionProcessor)}


def get_processor(task_name):
    key = task_name.lower()
    if key not in PROCESSORS:
        raise ValueError(f"unknown task {task_name!r}; known tasks: {', '.join(PROCESSORS)}")
    return PROCESSORS[key]()

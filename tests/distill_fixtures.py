"""Tiny teachers, students, pregenerated data and GLUE-layout task folders for the distillation tests, and the
quick start's stages of a preset."""
import json
import os
import random

import torch
from safetensors.torch import load_file

from pipeline.stages import build_stages
from transformer.modeling import BertConfig, BertForSequenceClassification, BertModel

WORDS = ("the a movie film plot actor story good bad great awful fine dull funny sad long short new old "
         "very not quite really is was be are it this that and or but of to in on with for as by at from "
         "cat dog man woman child house car road tree river sky sun moon star city town day night year "
         "time way thing one two three four five six red blue green big small high low fast slow hot cold "
         "warm happy kind cruel wise").split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIALS + WORDS


def write_vocab(path, tokens=VOCAB):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return path


def teacher_config(layers=2, hidden=32, heads=2, **extra):
    return BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=32,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **extra)


def make_teacher(directory, num_labels=None, seed=0, **config):
    """Save a random BertModel (num_labels None) or BertForSequenceClassification with vocab."""
    torch.manual_seed(seed)
    cfg = teacher_config(**config)
    model = BertModel(cfg) if num_labels is None else BertForSequenceClassification(cfg, num_labels)
    os.makedirs(os.path.dirname(os.path.abspath(directory)), exist_ok=True)
    vocab = write_vocab(os.path.join(os.path.dirname(os.path.abspath(directory)), "fixture_vocab.txt"))
    model.save_pretrained(directory, vocab_file=vocab)
    return directory


def make_student_config(directory, layers=1, hidden=16, heads=2, dropout=0.1, t_conv=4, vth=1.0,
                        initializer_range=0.02, **extra):
    """A spiking student folder holding only config.json (no weights, no vocab)."""
    os.makedirs(directory, exist_ok=True)
    config = dict(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=2 * hidden, max_position_embeddings=32, hidden_dropout_prob=dropout,
                  attention_probs_dropout_prob=dropout, type_vocab_size=2, initializer_range=initializer_range,
                  t_conv=t_conv, vth=vth, leaky=1.0, feedback=False, model_type="spiking_bert", **extra)
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    return directory


def tiny_spiking_config(**overrides):
    """A 2-layer, 16-wide spiking student config with every spike rate far from 0 and 1 (initializer 0.5)."""
    values = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=16, t_conv=4, vth=1.0, initializer_range=0.5, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    values.update(overrides)
    return BertConfig(**values)


def tiny_batch():
    """(ids, segments, mask) of 3 sentences of 7 tokens, the first padded after 5."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 60, (3, 7), generator=generator)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, 5:] = 0
    return ids, torch.zeros_like(ids), mask


def random_sentence(rng, low=2, high=7):
    return [rng.choice(WORDS) for _ in range(rng.randint(low, high))]


def write_pregenerated(directory, epochs=2, examples=12, max_seq_len=16, seed=0):
    """epoch_{e}.json + epoch_{e}_metrics.json with next-sentence-style instances of vocab words."""
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(seed)
    for epoch in range(epochs):
        with open(os.path.join(directory, f"epoch_{epoch}.json"), "w", encoding="utf-8") as f:
            for _ in range(examples):
                a, b = random_sentence(rng), random_sentence(rng)
                tokens = ["[CLS]"] + a + ["[SEP]"] + b + ["[SEP]"]
                segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
                f.write(json.dumps({"tokens": tokens, "segment_ids": segments, "is_random_next": False,
                                    "masked_lm_positions": [], "masked_lm_labels": []}) + "\n")
        with open(os.path.join(directory, f"epoch_{epoch}_metrics.json"), "w", encoding="utf-8") as f:
            json.dump({"num_training_examples": examples, "max_seq_len": max_seq_len}, f)
    return directory


def load_state(directory):
    return load_file(os.path.join(directory, "model.safetensors"))


def max_abs_difference(state_a, state_b):
    assert state_a.keys() == state_b.keys()
    return max((state_a[k].float() - state_b[k].float()).abs().max().item() for k in state_a)


def read_log(directory):
    with open(os.path.join(directory, "log.txt"), encoding="utf-8") as f:
        return f.read()


def logged_losses(directory):
    """The loss value of every step line in log.txt, in order."""
    losses = []
    for line in read_log(directory).splitlines():
        if " step " in line and " loss=" in line:
            losses.append(float(line.split(" loss=")[1].split()[0]))
    return losses


# Task folders in the GLUE layouts (glue/processors.py).

def _sentence(rng):
    return " ".join(random_sentence(rng))


def _rows(task, rng, count, split):
    rows = []
    for i in range(count):
        a, b = _sentence(rng), _sentence(rng)
        label2 = rng.choice(["0", "1"])
        if task == "cola":
            rows.append(["src", label2, "*" if label2 == "0" else "", a])
        elif task in ("sst-2", "movie"):
            rows.append([a, label2])
        elif task == "mrpc":
            rows.append([label2, str(i), str(i + 100), a, b])
        elif task == "sts-b":
            rows.append([str(i), "main", "f", "2012", str(i), "none", "none", a, b, f"{rng.uniform(0, 5):.3f}"])
        elif task == "qqp":
            rows.append([str(i), str(2 * i), str(2 * i + 1), a, b, label2])
        elif task in ("mnli", "mnli-mm"):
            label = rng.choice(["contradiction", "entailment", "neutral"])
            parses = ["(x)", "(y)", "(x)", "(y)"]
            extra = [label] * (4 if split == "dev" else 0)
            rows.append([str(i), str(i), f"{i}e", "fiction"] + parses + [a, b, label] + extra + [label])
        elif task in ("qnli", "rte"):
            rows.append([str(i), a, b, rng.choice(["entailment", "not_entailment"])])
        elif task == "wnli":
            rows.append([str(i), a, b, label2])
    return rows


HEADERS = {
    "sst-2": ["sentence", "label"],
    "movie": ["sentence", "label"],
    "mrpc": ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
    "sts-b": ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
              "score"],
    "qqp": ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
    "mnli": ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"],
    "qnli": ["index", "question", "sentence", "label"],
    "rte": ["index", "sentence1", "sentence2", "label"],
    "wnli": ["index", "sentence1", "sentence2", "label"],
}


def _write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        if header:
            f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def write_task(directory, task, train=12, dev=10, seed=0, test=0):
    """train.tsv and dev.tsv (MNLI: dev_matched.tsv, dev_mismatched.tsv) in the task's GLUE layout, and with
    ``test`` rows a labelled test.tsv in the dev file's layout."""
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(seed)
    header = HEADERS.get(task)
    _write_tsv(os.path.join(directory, "train.tsv"), header, _rows(task, rng, train, "train"))
    dev_header = header + ["label2", "label3", "label4", "label5"] if task == "mnli" else header
    dev_files = ["dev_matched.tsv", "dev_mismatched.tsv"] if task == "mnli" else ["dev.tsv"]
    for name in dev_files:
        _write_tsv(os.path.join(directory, name), dev_header, _rows(task, rng, dev, "dev"))
    if test:
        _write_tsv(os.path.join(directory, "test.tsv"), dev_header, _rows(task, rng, test, "dev"))
    return directory


# GLUE's own test files: no labels, an index column first (CoLA's has a header although its other files do not).
UNLABELLED_TEST_HEADERS = {
    "cola": ["index", "sentence"], "sst-2": ["index", "sentence"], "movie": ["index", "sentence"],
    "mrpc": ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
    "sts-b": ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"],
    "qqp": ["id", "question1", "question2"], "qnli": ["index", "question", "sentence"],
    "rte": ["index", "sentence1", "sentence2"], "wnli": ["index", "sentence1", "sentence2"],
}


def write_unlabelled_test(directory, task, rows=4, seed=0):
    """test.tsv as GLUE ships it: no label column."""
    rng = random.Random(seed)
    header = UNLABELLED_TEST_HEADERS[task]
    body = [[str(i)] + [_sentence(rng) for _ in header[1:]] for i in range(rows)]
    _write_tsv(os.path.join(directory, "test.tsv"), header, body)


# Running the entry scripts as a user would: their exit code, their last line, the files afterwards.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(folder):
    """Every file under ``folder`` (relative path -> its bytes and mode): equal snapshots, an untouched folder."""
    files = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = (f.read(), os.stat(path).st_mode)
    return files


def one_line_exit(main, argv):
    """The message ``main(argv)`` exits with; it must be one ``error: ...`` line."""
    import pytest
    with pytest.raises(SystemExit) as stop:
        main(argv)
    message = str(stop.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


# Without these capabilities root may not write where the mode forbids it, as every other user: a read-only
# folder is then read-only for the scripts run by the tests too.
DROP_ROOT_OVERRIDES = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable"]


def run_script(script, *args, unprivileged=False, preexec_fn=None, timeout=300):
    """Run ``script`` (a path in the repository) in a new Python process; a CompletedProcess with text output.
    ``unprivileged``: root runs it without its file-permission overrides (a test of a read-only folder)."""
    import subprocess
    import sys
    prefix = DROP_ROOT_OVERRIDES if unprivileged and os.geteuid() == 0 else []
    return subprocess.run(prefix + [sys.executable, script, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn, check=False)


def last_line(result):
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def make_classifier_student(directory, layers=1, seed=0, **config):
    """A spiking classification student (2 labels) with weights and vocab, as task KD leaves one."""
    from models.snn_ide_bert_classi import SpikingBertForSequenceClassification
    make_student_config(directory, layers=layers, num_labels=2, **config)
    torch.manual_seed(seed)
    student = SpikingBertForSequenceClassification.from_pretrained(directory)
    student.save_pretrained(directory, vocab_file=write_vocab(os.path.join(directory, "..", "student_vocab.txt")),
                            overwrite=True)
    return directory


def write_corpus(path, documents=6, seed=0):
    """A corpus of vocab words: a sentence per line, a blank line between documents."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(" ".join(random_sentence(rng)) for _ in range(4)) for _ in range(documents)))
        f.write("\n")
    return path


def script_inputs(root):
    """Tiny inputs of every entry script, under ``root``: a task teacher, a plain BERT (with vocab), a student
    config, an SST-2 folder (also as a GLUE folder for augmentation), pregenerated data and a corpus."""
    root = str(root)
    data = write_task(os.path.join(root, "glue", "SST-2"), "sst-2", train=8, dev=4, test=2)
    return {"task_teacher": make_teacher(os.path.join(root, "task_teacher"), num_labels=2),
            "teacher": make_teacher(os.path.join(root, "teacher")),
            "student": make_student_config(os.path.join(root, "student")),
            "data": data, "glue": os.path.join(root, "glue"),
            "pregenerated": write_pregenerated(os.path.join(root, "pregenerated"), epochs=1, examples=8),
            "corpus": write_corpus(os.path.join(root, "corpus.txt"))}


# Each entry script's arguments for a run of a second or two on script_inputs.

def task_args(inputs, out, *extra):
    return ["--teacher_model", inputs["task_teacher"], "--spiking_student_model", inputs["student"],
            "--data_dir", inputs["data"], "--task_name", "sst-2", "--output_dir", str(out), "--max_seq_length", "16",
            "--do_lower_case", "--train_batch_size", "4", "--num_train_epochs", "1", "--eval_step", "2", "--no_cuda",
            *extra]


def general_args(inputs, out, *extra):
    return ["--pregenerated_data", inputs["pregenerated"], "--teacher_model", inputs["teacher"],
            "--spiking_student_model", inputs["student"], "--output_dir", str(out), "--max_seq_length", "16",
            "--train_batch_size", "4", "--num_train_epochs", "1", "--eval_step", "2", "--do_lower_case", "--no_cuda",
            *extra]


def finetune_args(inputs, out, *extra):
    return ["--bert_model", inputs["teacher"], "--data_dir", inputs["data"], "--task_name", "sst-2",
            "--output_dir", str(out), "--max_seq_length", "16", "--train_batch_size", "4", "--num_train_epochs", "1",
            "--no_cuda", *extra]


def preprocess_args(inputs, out, *extra):
    return ["--train_corpus", inputs["corpus"], "--bert_model", inputs["teacher"], "--output_dir", str(out),
            "--epochs_to_generate", "1", "--max_seq_len", "16", *extra]


def augmentation_args(inputs, out, *extra):
    return ["--pretrained_bert_model", inputs["teacher"], "--candidates", "embedding", "--glue_dir", inputs["glue"],
            "--task_name", "SST-2", "--output_dir", str(out), "--N", "2", *extra]


# Asset paths for building a preset's stages: nothing runs, so they need not exist.
FAKE_ASSETS = {"teacher": "/assets/teacher", "movie_sst2": "/assets/movie", "wiki_corpus": "/assets/wiki.txt"}


def preset_stages(preset):
    """The quick-start stages of ``preset`` (a dict of pipeline/presets.py), by name, in order."""
    return {stage.name: stage for stage in build_stages(preset, "/tmp/run", FAKE_ASSETS)}

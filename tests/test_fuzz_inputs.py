"""Random bytes, random unicode and truncated lines fed to the input readers (fixed seed, a few hundred cases),
and bad flags fed to the entry scripts.

The TSV readers (every GLUE processor) and the pregenerated-data reader may only return data or stop
with the project's one-line error naming the file (ValueError or FileNotFoundError); the tokenizer
must not raise at all. A bad flag is one line naming it, whatever else is given, and writes nothing.
"""
import json
import os
import random
import re

import pytest

import finetune_teacher
import spiking_bert_general_distill as general
import spiking_bert_task_distill as task
from distill.checkpointing import list_checkpoints, load_training_state
from distill.pregenerated import PregeneratedEpoch
from distill_fixtures import (finetune_args, general_args, make_classifier_student, one_line_exit, read_log,
                              run_script, script_inputs, task_args, write_task)
from glue import PROCESSORS, convert_examples_to_features, get_processor
from test_glue_tasks import FIXTURES
from transformer.tokenization import BertTokenizer

SEED = 20261122
CASES_PER_TASK = 24
PREGENERATED_CASES = 160
TOKENIZER_CASES = 200

# Code point ranges the random text is drawn from (no surrogates): ASCII, C0/C1 controls, Latin with
# accents, combining marks, zero-width and line/paragraph separators, CJK, Hangul, emoji, astral
# ideographs, private use, noncharacters.
CHARACTER_RANGES = [(0x20, 0x7E), (0x00, 0x1F), (0x7F, 0x9F), (0xC0, 0x17F), (0x300, 0x36F), (0x200B, 0x200F),
                    (0x2028, 0x2029), (0x3000, 0x303F), (0x4E00, 0x4E80), (0xAC00, 0xAC40), (0x1F600, 0x1F64F),
                    (0x20000, 0x20040), (0xE000, 0xE010), (0xFFF9, 0xFFFF)]
SEPARATORS = ["\t", "\n", "\r\n", "\r", " ", "\x0b", "\x85", "\u2028", "\ufeff"]
WORDS = ["the", "movie", "café", "naïve", "東京", "😀", "plot", "good", "bad", "señor"]
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + ["the", "movie", "plot", "good", "bad", "cafe", "café",
         "na", "##ive", "##ïve", "東", "京", "😀", "sen", "##or", "##s", "!", ",", ".", "a", "b", "##a", "##b"])


def random_text(rng, length):
    """Characters from CHARACTER_RANGES, with separators and a few real words mixed in."""
    pieces = []
    for _ in range(length):
        roll = rng.random()
        if roll < 0.15:
            pieces.append(rng.choice(SEPARATORS))
        elif roll < 0.25:
            pieces.append(rng.choice(WORDS))
        else:
            low, high = rng.choice(CHARACTER_RANGES)
            pieces.append(chr(rng.randint(low, high)))
    return "".join(pieces)


def truncated_lines(rng, data):
    """``data`` with some lines cut at a random byte (which may split a UTF-8 character)."""
    lines = data.split(b"\n")
    for i in rng.sample(range(len(lines)), k=max(1, len(lines) // 3)):
        lines[i] = lines[i][:rng.randint(0, len(lines[i]))]
    return b"\n".join(lines)


def replaced_line(rng, data, replacement):
    lines = data.split(b"\n")
    lines[rng.randrange(len(lines))] = replacement
    return b"\n".join(lines)


def fuzzed(rng, valid):
    """One damaged version of the valid file contents ``valid`` (bytes)."""
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 400))
    if kind == 1:
        return random_text(rng, rng.randint(0, 300)).encode("utf-8")
    if kind == 2:
        return valid[:rng.randint(0, len(valid))]
    if kind == 3:
        return truncated_lines(rng, valid)
    if kind == 4:
        return replaced_line(rng, valid, rng.randbytes(rng.randint(1, 60)))
    if kind == 5:
        return replaced_line(rng, valid, random_text(rng, rng.randint(1, 60)).encode("utf-8"))
    lines = valid.split(b"\n")  # cut at the end of a line: readable, with fewer rows
    return b"\n".join(lines[:rng.randint(0, len(lines))])


def one_line_error_or_result(read, path):
    """``read()``, or None when it stops with a one-line ValueError/FileNotFoundError naming ``path``."""
    try:
        return read()
    except (ValueError, FileNotFoundError) as e:
        message = str(e)
        assert len(message.splitlines()) == 1, message
        assert str(path) in message, message
        return None


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


def valid_tsv(text, has_header):
    """A fixture file (train or dev) with its data rows repeated with non-ASCII words, as bytes."""
    lines = text.splitlines()
    header = lines[:1] if has_header else []
    rows = [row.replace("dog", word) for row in lines[len(header):] for word in WORDS[:4]]
    return ("\n".join(header + rows) + "\n").encode("utf-8")


def check_examples(processor, examples, tokenizer):
    """Examples read from a fuzzed file hold text and a known label, and become features."""
    for example in examples:
        assert isinstance(example.text_a, str) and (example.text_b is None or isinstance(example.text_b, str))
        if processor.labels is None:
            assert isinstance(example.label, float) and abs(example.label) < float("inf")
        else:
            assert example.label in processor.labels
    features = convert_examples_to_features(examples, processor.get_labels(), 16, tokenizer, processor.output_mode)
    assert len(features) == len(examples) and all(len(f.input_ids) == 16 for f in features)


@pytest.mark.parametrize("task", sorted(PROCESSORS))
def test_tsv_readers_on_fuzzed_files(tmp_path, vocab_file, task):
    rng = random.Random(f"{SEED}:{task}")
    processor, tokenizer = get_processor(task), BertTokenizer(vocab_file)
    train, dev_name, dev, _ = FIXTURES[task]
    # Even cases damage the train file, odd ones the dev file (its own layout for MNLI).
    splits = [("train.tsv", valid_tsv(train, processor.has_header), processor.get_train_examples),
              (dev_name, valid_tsv(dev, processor.has_header), processor.get_dev_examples)]
    read_any = 0
    for case in range(CASES_PER_TASK):
        name, valid, read = splits[case % 2]
        folder = tmp_path / str(case)
        folder.mkdir()
        path = folder / name
        path.write_bytes(fuzzed(rng, valid))
        examples = one_line_error_or_result(lambda: read(str(folder)), path)
        if examples is not None:
            check_examples(processor, examples, tokenizer)
            read_any += 1
    assert read_any > 0  # some damaged files are still readable (e.g. a truncated last row)


def pregenerated_line(rng):
    words = ["[CLS]"] + [rng.choice(VOCAB[5:]) for _ in range(rng.randint(1, 10))] + ["[SEP]"]
    return json.dumps({"tokens": words, "segment_ids": [0] * len(words), "is_random_next": False,
                       "masked_lm_positions": [], "masked_lm_labels": []})


def random_json(rng, depth=0):
    """A random JSON value: valid JSON, mostly not an instance."""
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, 1, -1, 2 ** 70, 1.5, float("inf")])
    if kind == 2:
        return random_text(rng, rng.randint(0, 8))
    if kind == 3:
        return rng.choice(VOCAB)
    if kind == 4:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == 5:
        return {"tokens": random_json(rng, depth + 1), "segment_ids": random_json(rng, depth + 1)}
    return {random_text(rng, 3): random_json(rng, depth + 1)}


def fuzzed_epoch(rng):
    valid = "\n".join(pregenerated_line(rng) for _ in range(8)).encode("utf-8") + b"\n"
    if rng.random() < 0.2:
        return replaced_line(rng, valid, json.dumps(random_json(rng)).encode("utf-8"))
    return fuzzed(rng, valid)


def write_metrics(path, data, rng):
    """A metrics file that matches ``data`` (so the lines themselves are tested), or a damaged one."""
    count = sum(1 for line in data.split(b"\n") if line.strip())
    text = json.dumps({"num_training_examples": count, "max_seq_len": 16}).encode("utf-8")
    path.write_bytes(fuzzed(rng, text) if rng.random() < 0.15 else text)


def test_pregenerated_reader_on_fuzzed_files(tmp_path):
    rng = random.Random(SEED)
    vocab = {token: i for i, token in enumerate(VOCAB)}
    loaded = 0
    for case in range(PREGENERATED_CASES):
        folder = tmp_path / str(case)
        folder.mkdir()
        data, metrics = folder / "epoch_0.json", folder / "epoch_0_metrics.json"
        data.write_bytes(fuzzed_epoch(rng))
        write_metrics(metrics, data.read_bytes(), rng)
        memmap_parent = str(folder) if case % 2 else None
        try:
            epoch = PregeneratedEpoch(str(data), str(metrics), vocab, 16, memmap_parent=memmap_parent)
        except (ValueError, FileNotFoundError) as e:
            message = str(e)
            assert len(message.splitlines()) == 1, message
            assert str(data) in message or str(metrics) in message, message
            assert sorted(os.listdir(folder)) == ["epoch_0.json", "epoch_0_metrics.json"]
            continue
        input_ids, segment_ids, mask, _, _ = epoch.batch(list(range(len(epoch))))
        assert input_ids[:, 0].eq(vocab["[CLS]"]).all() and mask[:, 0].eq(1).all()
        assert segment_ids.eq(0).all() and input_ids.shape == mask.shape
        epoch.close()
        loaded += 1
    assert loaded > 0


def fuzzed_words(rng):
    """Random text, or words near and over WordPiece's 100-character limit."""
    kind = rng.randrange(4)
    if kind == 0:
        return random_text(rng, rng.randint(0, 400))
    if kind == 1:
        return "".join(rng.choice(["a", "b", "\u0301", "😀", "東"]) for _ in range(rng.choice([99, 100, 101, 5000])))
    if kind == 2:
        return " ".join(rng.choice(WORDS) + random_text(rng, 2) for _ in range(rng.randint(1, 30)))
    return random_text(rng, 20).upper() + "\u0130\u1E9E\uFB01" * rng.randint(1, 5)  # case maps that change length


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_tokenizer_on_random_unicode(vocab_file, do_lower_case):
    tokenizer = BertTokenizer(vocab_file, do_lower_case=do_lower_case)
    rng = random.Random(f"{SEED}:{do_lower_case}")
    for _ in range(TOKENIZER_CASES // 2):
        text = fuzzed_words(rng)
        tokens = tokenizer.tokenize(text)
        assert all(token in tokenizer.vocab for token in tokens), text
        assert tokenizer.convert_ids_to_tokens(tokenizer.convert_tokens_to_ids(tokens)) == tokens
        assert tokenizer.tokenize(text) == tokens


# ----------------------------------------------------------------------------
# Bad flags of the entry scripts.

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return script_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.mark.parametrize("main, arguments, flag, value", [
    (task.main, task_args, "--learning_rate", "nan"), (general.main, general_args, "--learning_rate", "inf"),
    (finetune_teacher.main, finetune_args, "--learning_rate", "inf"),
    (task.main, task_args, "--warmup_proportion", "nan")])
def test_a_learning_rate_that_is_not_finite_is_refused(inputs, tmp_path, main, arguments, flag, value):
    out = tmp_path / "out"
    message = one_line_exit(main, arguments(inputs, out, flag, value))
    assert message == (f"error: --learning_rate must be a finite number >= 0, got {value}" if flag == "--learning_rate"
                       else f"error: --warmup_proportion must be in [0, 1) (or -1: no warm-up), got {value}")
    assert not out.exists()


def test_a_loss_that_stops_being_finite_stops_the_run_and_keeps_the_last_checkpoint(inputs, tmp_path):
    data = write_task(str(tmp_path / "data"), "sst-2", train=12, dev=4)
    out = tmp_path / "out"
    # The weights explode within a few steps: a checkpoint at step 2, then an infinite loss.
    message = one_line_exit(task.main, task_args(inputs, out, "--data_dir", data, "--num_train_epochs", "3",
                                                 "--learning_rate", "1e10"))
    match = re.fullmatch(r"error: step (\d+): the loss is not finite \(.*\); training stopped before this step "
                         r"changed the weights and the last checkpoint, (\S+), is kept \(a smaller --learning_rate "
                         r"may help; it needs a new run\)", message)
    assert match, message
    assert match.group(2) == list_checkpoints(str(out))[-1]
    assert load_training_state(match.group(2))["global_step"] < int(match.group(1))


def test_resume_refuses_settings_that_change_the_result_and_allows_the_others(inputs, tmp_path):
    out = tmp_path / "out"
    general.main(general_args(inputs, out, "--num_train_epochs", "2", "--max_steps", "1"))
    message = one_line_exit(general.main, general_args(inputs, out, "--num_train_epochs", "2", "--continue_train",
                                                       "--learning_rate", "0.05", "--t_conv", "3"))
    assert message.startswith(f"error: {out / 'checkpoint-step1'} was written with other settings: ")
    assert "--t_conv 4 (this run: 3)" in message and "--learning_rate 5e-05 (this run: 0.05)" in message
    assert message.endswith("resume with the checkpoint's settings, or start a new run")
    # How long to run, what to log and keep, and the checkpoint's own spiking values may be given.
    general.main(general_args(inputs, out, "--num_train_epochs", "2", "--continue_train", "--max_steps", "2",
                              "--logging_steps", "1", "--keep_checkpoints", "3", "--t_conv", "4"))
    assert f"resuming from {out / 'checkpoint-step1'}" in read_log(out)


def test_flags_are_checked_whatever_else_is_given(inputs, tmp_path):
    out = tmp_path / "out"
    for main, argv, error in [
            (task.main, task_args(inputs, out, "--pred_distill", "--adaptive_margin", "2"),
             "--adaptive_margin must be in [0, 1], got 2.0"),
            (task.main, task_args(inputs, out, "--adaptive_check_every", "0"),
             "--adaptive_check_every must be >= 1, got 0"),
            (task.main, task_args(inputs, out, "--learning_rate", "-1"),
             "--learning_rate must be a finite number >= 0, got -1.0"),
            (task.main, task_args(inputs, out, "--seed", "-1"), "--seed must be in [0, 4294967295], got -1"),
            (general.main, general_args(inputs, out, "--seed", "-1"), "--seed must be in [0, 4294967295], got -1"),
            (finetune_teacher.main, finetune_args(inputs, out, "--seed", "-1"),
             "--seed must be in [0, 4294967295], got -1")]:
        assert one_line_exit(main, argv) == f"error: {error}"
    assert not out.exists()


def test_the_quick_start_and_the_benchmarks_give_one_line_on_bad_arguments(inputs, tmp_path):
    student = make_classifier_student(str(tmp_path / "student"))
    evaluation = ["--data_dir", inputs["data"], "--task_name", "sst-2", "--rounds", "1"]
    cases = [
        ("quickstart.py", ["--smoke", "--run_dir", tmp_path / "run", "--jobs", "-1"],
         "--jobs must be at least 1, got -1"),
        ("benchmarks/bench_eval_speed.py", ["--spiking_student_model", student, "--t_conv", "0", *evaluation],
         "--t_conv: t_conv must be an integer >= 1, got 0"),
        ("benchmarks/bench_eval_speed.py", ["--spiking_student_model", tmp_path / "missing", *evaluation],
         f"--spiking_student_model {tmp_path / 'missing'}: no such folder"),
        ("benchmarks/bench_spiking.py", ["--layers", "0"], "--layers must be >= 1, got 0"),
        ("benchmarks/bench_pregeneration.py", ["--workers", "2", "0"], "--workers must be >= 1, got 0"),
        ("benchmarks/bench_cpu_choices.py", ["--steps", "1"],
         "--steps must be >= 2 (the first step is a warm-up), got 1"),
        ("benchmarks/ablate_low_latency.py", ["--jobs", "0", "--run_dir", tmp_path / "ablation"],
         "--jobs must be >= 1, got 0"),
    ]
    for script, argv, error in cases:
        result = run_script(script, *argv)
        assert (result.returncode, result.stderr) == (1, f"error: {error}\n"), (script, result.stderr[-2000:])
    assert sorted(os.listdir(tmp_path)) == ["student", "student_vocab.txt"]

"""finetune_teacher.py on a tiny random BERT and a tiny SST-2-layout task."""
import os
import random
import re

import pytest
import torch

import finetune_teacher
from glue import compute_metrics, convert_examples_to_features, get_processor
from transformer.modeling import BertConfig, BertForSequenceClassification, BertModel
from transformer.tokenization import BertTokenizer

POSITIVE = ["good", "great", "fine", "nice", "superb", "lovely"]
NEGATIVE = ["bad", "awful", "poor", "dull", "weak", "boring"]
FILLER = [f"word{i}" for i in range(60)] + ["the", "movie", "film", "plot", "was", "is", "a", "and"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_task(data_dir, name, rows):
    with open(os.path.join(data_dir, name), "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        f.writelines(f"{sentence}\t{label}\n" for sentence, label in rows)


def sentiment_rows(rng, count, score=False):
    """Sentences whose label is decided by one sentiment word among filler words."""
    rows = []
    for _ in range(count):
        positive = rng.random() < 0.5
        words = rng.sample(FILLER, 3) + [rng.choice(POSITIVE if positive else NEGATIVE)]
        rng.shuffle(words)
        label = (f"{rng.uniform(1, 4):.3f}" if positive else f"{rng.uniform(-4, -1):.3f}") if score else int(positive)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture()
def tiny_bert(tmp_path):
    """A random 2-layer BERT (hidden 16) with an 85-token vocab, saved like a pre-trained folder."""
    model_dir = tmp_path / "bert"
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(SPECIALS + POSITIVE + NEGATIVE + FILLER) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(SPECIALS + POSITIVE + NEGATIVE + FILLER), hidden_size=16,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=32)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(model_dir), vocab_file=str(vocab_file))
    return str(model_dir)


def run_finetune(tiny_bert, data_dir, output_dir, task, *extra):
    finetune_teacher.main(["--bert_model", tiny_bert, "--data_dir", data_dir, "--task_name", task,
                           "--output_dir", output_dir, "--do_lower_case", "--no_cuda", "--max_seq_length", "16",
                           "--train_batch_size", "8", "--eval_batch_size", "7", "--learning_rate", "3e-3",
                           "--warmup_proportion", "0", "--seed", "3", *extra])


def logged_losses(output_dir):
    with open(os.path.join(output_dir, "log.txt"), encoding="utf-8") as f:
        return [float(m.group(1)) for m in re.finditer(r"step \d+ lr \S+ loss=(\S+)", f.read())]


def read_results(output_dir):
    with open(os.path.join(output_dir, "eval_results.txt"), encoding="utf-8") as f:
        return dict(line.rstrip("\n").split(" = ") for line in f)


def test_finetune_saves_a_teacher_with_recomputable_dev_metrics(tiny_bert, tmp_path):
    data_dir, output_dir = tmp_path / "task", str(tmp_path / "teacher")
    data_dir.mkdir()
    rng = random.Random(0)
    write_task(data_dir, "train.tsv", sentiment_rows(rng, 64))
    write_task(data_dir, "dev.tsv", sentiment_rows(rng, 30))
    run_finetune(tiny_bert, str(data_dir), output_dir, "movie", "--num_train_epochs", "16", "--eval_step", "8")

    losses = logged_losses(output_dir)
    assert len(losses) >= 8
    assert losses[-1] < 0.3 * losses[0]
    for name in ("config.json", "model.safetensors", "vocab.txt", "log.txt", "eval_results.txt"):
        assert os.path.isfile(os.path.join(output_dir, name)), name

    teacher = BertForSequenceClassification.from_pretrained(output_dir)
    assert teacher.config.num_labels == 2 and teacher.config.classifier_head == "tinybert"
    assert not teacher.loading_info["missing_keys"] and not teacher.loading_info["unexpected_keys"]
    teacher.eval()
    processor = get_processor("movie")
    tokenizer = BertTokenizer.from_pretrained(output_dir, do_lower_case=True)
    features = convert_examples_to_features(processor.get_dev_examples(str(data_dir)), processor.get_labels(), 16,
                                            tokenizer, "classification")
    with torch.no_grad():
        logits = teacher(torch.tensor([f.input_ids for f in features]), torch.tensor([f.segment_ids for f in features]),
                         torch.tensor([f.input_mask for f in features])).logits
    recomputed = compute_metrics("movie", logits.argmax(dim=1).numpy(), [f.label_id for f in features])
    results = read_results(output_dir)
    assert float(results["movie.acc"]) == pytest.approx(recomputed["acc"])
    assert int(results["movie.num_examples"]) == 30
    assert recomputed["acc"] > 0.8


def test_regression_task_and_refusing_an_existing_output_dir(tiny_bert, tmp_path):
    data_dir, output_dir = tmp_path / "task", str(tmp_path / "teacher")
    data_dir.mkdir()
    rng = random.Random(1)
    write_task(data_dir, "train.tsv", sentiment_rows(rng, 24, score=True))
    write_task(data_dir, "dev.tsv", sentiment_rows(rng, 10, score=True))
    run_finetune(tiny_bert, str(data_dir), output_dir, "movie-reg", "--num_train_epochs", "1", "--classifier_head",
                 "hf")
    results = read_results(output_dir)
    assert {"movie-reg.pearson", "movie-reg.spearman", "movie-reg.eval_loss"} <= set(results)
    config = BertConfig.from_pretrained(output_dir)
    assert config.num_labels == 1 and config.classifier_head == "hf"

    before = os.path.getmtime(os.path.join(output_dir, "model.safetensors"))
    with pytest.raises(SystemExit, match="not empty"):
        run_finetune(tiny_bert, str(data_dir), output_dir, "movie-reg")
    assert os.path.getmtime(os.path.join(output_dir, "model.safetensors")) == before
    run_finetune(tiny_bert, str(data_dir), output_dir, "movie-reg", "--num_train_epochs", "1", "--overwrite")
    assert os.path.isfile(os.path.join(output_dir, "eval_results.txt"))

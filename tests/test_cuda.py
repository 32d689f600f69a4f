"""CUDA against the CPU on small spiking students; every test is skipped without CUDA (tools/gpu_check.sh runs them).

The reference is the CPU in float64. A neuron whose membrane lands within rounding error of the
threshold may fire on one device and not on the other, so float32 spikes are compared by counting
the differing spikes; calibrated on the CPU (float32 against float64, same models): 0 of 4,000-280,000
spikes for the models below, 0-60 of 8 million for a 128-wide, 4-layer, T=25 student at batch 8 x 32.
Examples whose spike counts all agree must then agree in their logits within float32 error, and
gradients too when no spike differs (CPU float32: logits within 3e-7, gradients within 2e-6 of the
largest entry of their tensor).
"""
import copy
import os
import subprocess
import sys

import pytest
import torch

import spiking_bert_general_distill as general
from distill_fixtures import load_state, make_student_config, make_teacher, max_abs_difference, write_pregenerated
from models import SpikingBertForSequenceClassification
from transformer.modeling import BertConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
pytestmark = pytest.mark.skipif(GPUS == 0, reason="needs a CUDA device")

# name -> (hidden, layers, t_conv, batch, length, extra config)
MODELS = {
    "tiny": (16, 2, 8, 2, 7, {}),
    "medium": (64, 2, 16, 4, 16, {}),
    "larger": (128, 4, 25, 8, 32, {}),
    "feedback": (16, 2, 8, 2, 7, {"feedback": True}),  # implicit gradient through the Broyden solve
}
# float32 spikes that may differ from float64's: 5e-5 of all spikes (the calibration's worst is 0.7e-5)
FLIP_SHARE = 5e-5


def build(name, seed=0):
    hidden, layers, t_conv, batch, length, extra = MODELS[name]
    config = BertConfig(vocab_size=60, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=32, t_conv=t_conv, vth=1.0,
                        fit_size=hidden, initializer_range=0.3, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, **extra)
    torch.manual_seed(seed)
    model = SpikingBertForSequenceClassification(config, num_labels=3)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 60, (batch, length), generator=generator)  # no [PAD] id: its embedding gets no gradient
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, length - 2:] = 0
    return model, (ids, torch.zeros_like(ids), mask)


def linear_loss(out, seed=3):
    """A fixed random linear function of the logits, the fitted hidden states and the attention scores."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for x in [out.logits] + list(out.hidden_states) + [1e-3 * s for s in out.attention_scores]:
        total = total + (torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x.device, x.dtype) * x).sum()
    return total


def run(model, batch, device, dtype, train):
    """(logits, [B, P] spike counts, gradients or None) of a copy of ``model`` on ``device`` in ``dtype``, on the CPU
    in float64. Training mode simulates, then differentiates the surrogate (dropout is off)."""
    copy_ = copy.deepcopy(model).to(device=device, dtype=dtype).train(train)
    inputs = [t.to(device) for t in batch]
    grads = None
    if train:
        out = copy_(*inputs, output_rates=True)
        linear_loss(out).backward()
        grads = {n: p.grad.double().cpu() for n, p in copy_.named_parameters() if p.grad is not None}
    else:
        with torch.no_grad():
            out = copy_(*inputs, output_rates=True)
    return out.logits.double().cpu(), out.population_spikes.cpu(), grads


def relative_grad_errors(grads, reference):
    """Per tensor: largest difference / largest reference entry."""
    assert grads.keys() == reference.keys()
    return {k: ((grads[k] - reference[k]).abs().max() / reference[k].abs().max().clamp(min=1e-30)).item()
            for k in reference}


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", ["tiny", "medium", "feedback"])
def test_float64_on_cuda_spikes_exactly_like_the_cpu(name, train):
    model, batch = build(name)
    logits, spikes, grads = run(model, batch, "cuda", torch.float64, train)
    ref_logits, ref_spikes, ref_grads = run(model, batch, "cpu", torch.float64, train)
    assert torch.equal(spikes, ref_spikes), f"{(spikes - ref_spikes).abs().sum().item():.0f} spikes differ"
    torch.testing.assert_close(logits, ref_logits, rtol=1e-10, atol=1e-12)
    if train:
        errors = relative_grad_errors(grads, ref_grads)
        assert max(errors.values()) < 1e-9, max(errors.items(), key=lambda item: item[1])


@pytest.mark.parametrize("name", ["tiny", "medium", "larger"])
def test_float32_on_cuda_is_within_float32_error(name):
    model, batch = build(name)
    logits, spikes, grads = run(model, batch, "cuda", torch.float32, train=True)
    ref_logits, ref_spikes, ref_grads = run(model, batch, "cpu", torch.float64, train=True)
    differing = (spikes - ref_spikes).abs()
    total = ref_spikes.sum().item()
    assert differing.sum().item() <= FLIP_SHARE * total, (
        f"{differing.sum().item():.0f} of {total:.0f} spikes differ from the CPU's float64")
    agree = differing.sum(1) == 0  # examples whose every population spiked as often as in float64
    assert agree.any(), "every example has a differing spike"
    scale = ref_logits.abs().max().item()
    torch.testing.assert_close(logits[agree], ref_logits[agree], rtol=0, atol=1e-5 * max(1.0, scale))
    if differing.sum() == 0:
        errors = relative_grad_errors(grads, ref_grads)
        assert max(errors.values()) < 1e-4, max(errors.items(), key=lambda item: item[1])


def test_bf16_autocast_on_cuda_trains_with_float32_rates():
    model, batch = build("medium")
    model = model.cuda().train()
    inputs = [t.cuda() for t in batch]
    with torch.no_grad():
        reference = model(*inputs, output_rates=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(*inputs, output_rates=True)
        loss = linear_loss(out)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # CPU bf16 autocast on this model: rates within 0.004 of float32's
    difference = (out.population_rates.float() - reference.population_rates).abs().max().item()
    assert difference < 0.02


@pytest.fixture(scope="module")
def general_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuda_general")
    return {"teacher": make_teacher(str(root / "models" / "teacher")),
            # dropout off: the devices draw different masks
            "student": make_student_config(str(root / "student"), layers=2, dropout=0.0),
            "data": write_pregenerated(str(root / "data"), epochs=1, examples=8)}


def general_args(inputs, output_dir, *extra):
    return ["--pregenerated_data", inputs["data"], "--teacher_model", inputs["teacher"],
            "--spiking_student_model", inputs["student"], "--output_dir", str(output_dir), "--train_batch_size", "4",
            "--max_seq_length", "32", "--learning_rate", "5e-3", "--num_train_epochs", "1", "--eval_step", "2",
            *extra]


# An Adam step moves a weight by up to the learning rate, 5e-3; the CPU's DDP test holds 1e-5 for another
# reduction order; 1e-4 leaves room for CUDA's kernels and stays far below one step.
TRAINED_WEIGHTS_ATOL = 1e-4


def test_training_steps_on_cuda_match_the_cpu(general_inputs, tmp_path):
    """spiking_bert_general_distill.py for 2 steps on CUDA (DataParallel when several GPUs are visible) and on the
    CPU end with the same weights."""
    general.main(general_args(general_inputs, tmp_path / "cuda"))
    general.main(general_args(general_inputs, tmp_path / "cpu", "--no_cuda"))
    log = (tmp_path / "cuda" / "log.txt").read_text()
    assert f"device cuda, {GPUS} GPUs" in log
    assert max_abs_difference(load_state(str(tmp_path / "cuda")), load_state(str(tmp_path / "cpu"))) \
        < TRAINED_WEIGHTS_ATOL


@pytest.mark.skipif(GPUS < 2, reason="needs two CUDA devices")
def test_torchrun_nccl_two_gpus_match_the_cpu(general_inputs, tmp_path):
    general.main(general_args(general_inputs, tmp_path / "cpu", "--no_cuda"))
    env = {**os.environ, "PYTHONPATH": REPO}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
         os.path.join(REPO, "spiking_bert_general_distill.py"), *general_args(general_inputs, tmp_path / "ddp")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0 of 2" in (tmp_path / "ddp" / "log.txt").read_text()
    assert max_abs_difference(load_state(str(tmp_path / "ddp")), load_state(str(tmp_path / "cpu"))) \
        < TRAINED_WEIGHTS_ATOL

"""BertAdam and its schedules against numbers worked out by hand."""
import io
import math

import pytest
import torch

from transformer.modeling import BertConfig, BertModel
from transformer.optimization import BertAdam, grouped_parameters, schedule_factor

pytestmark = pytest.mark.filterwarnings("error")


@pytest.mark.parametrize(
    "schedule, step, expected",
    [
        # t_total 100, warmup 0.1: warm-up covers steps 0-9, progress = step / 100.
        ("warmup_linear", 0, 0.0),
        ("warmup_linear", 5, 0.05 / 0.1),
        ("warmup_linear", 10, 1.0),
        ("warmup_linear", 55, (0.55 - 1) / (0.1 - 1)),  # 0.5, halfway down
        ("warmup_linear", 100, 0.0),
        ("warmup_linear", 120, 0.0),  # clamped at 0 past t_total
        ("warmup_constant", 5, 0.5),
        ("warmup_constant", 50, 1.0),
        ("warmup_constant", 150, 1.0),
        ("warmup_cosine", 5, 0.5),
        ("warmup_cosine", 10, 1.0),
        ("warmup_cosine", 55, 0.5 * (1 + math.cos(math.pi * (0.55 - 0.1) / 0.9))),  # cos(pi/2) = 0
        ("warmup_cosine", 100, 0.0),
        ("none", 5, 1.0),
        ("none", 100, 1.0),
    ],
)
def test_schedule_values(schedule, step, expected):
    assert schedule_factor(schedule, step, warmup=0.1, t_total=100) == pytest.approx(expected, abs=1e-12)
    assert schedule_factor(schedule, step, warmup=0.1, t_total=-1) == 1.0


def test_get_lr_follows_schedule_through_updates():
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = BertAdam([param], lr=0.1, warmup=0.1, t_total=100, schedule="warmup_linear")
    assert optimizer.get_lr() == [0.0]
    for _ in range(5):
        param.grad = torch.ones(3)
        optimizer.step()
    assert optimizer.get_lr() == [pytest.approx(0.1 * 0.5)]
    for _ in range(50):
        param.grad = torch.ones(3)
        optimizer.step()
    assert optimizer.get_lr() == [pytest.approx(0.1 * 0.5)]  # step 55: halfway down the linear decay


def test_one_update_by_hand():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    param.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    optimizer = BertAdam([param], lr=0.1, schedule="none", b1=0.9, b2=0.999, e=1e-6, weight_decay=0.01,
                         max_grad_norm=1.0)
    optimizer.step()

    # Clip: ||g|| = sqrt(3^2 + 4^2) = 5 > 1, so g *= 1 / (5 + 1e-6) (torch's clip coefficient).
    coef = 1.0 / (5.0 + 1e-6)
    expected = []
    for p, g in ((1.0, 3.0 * coef), (-2.0, 4.0 * coef)):
        m = (1 - 0.9) * g  # m starts at 0
        v = (1 - 0.999) * g * g  # v starts at 0
        update = m / (math.sqrt(v) + 1e-6) + 0.01 * p  # no bias correction; decay added to the update
        expected.append(p - 0.1 * update)
    torch.testing.assert_close(param.detach(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    # Without bias correction m / sqrt(v) = 0.1 / sqrt(0.001) = sqrt(10) per coordinate (up to eps):
    # p = 1 - 0.1 * (3.16228 + 0.01) = 0.68277 and p = -2 - 0.1 * (3.16228 - 0.02) = -2.31423.
    assert expected == pytest.approx([0.68277, -2.31423], abs=1e-4)
    assert optimizer.state[param]["step"] == 1


def test_unclipped_second_update_by_hand():
    param = torch.nn.Parameter(torch.tensor([0.5], dtype=torch.float64))
    optimizer = BertAdam([param], lr=0.01, schedule="none", weight_decay=0.0)
    m = v = 0.0
    p = 0.5
    for g in (0.2, -0.4):  # |g| <= 1: no clipping
        param.grad = torch.tensor([g], dtype=torch.float64)
        optimizer.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - 0.01 * m / (math.sqrt(v) + 1e-6)
    assert param.item() == pytest.approx(p, abs=1e-12)


def test_warmup_makes_first_update_a_no_op():
    param = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = BertAdam([param], lr=0.1, warmup=0.1, t_total=10)
    param.grad = torch.tensor([1.0, 1.0])
    optimizer.step()
    assert torch.equal(param.detach(), torch.tensor([1.0, 2.0]))  # progress 0 -> lr 0
    param.grad = torch.tensor([1.0, 1.0])
    optimizer.step()
    assert not torch.equal(param.detach(), torch.tensor([1.0, 2.0]))


def tiny_model():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=10)
    return BertModel(config)


def test_grouped_parameters_exclude_bias_and_layer_norm():
    model = tiny_model()
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = grouped_parameters(model, weight_decay=0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    decay_names = {names[id(p)] for p in decay["params"]}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert decay_names | no_decay_names == set(names.values())
    assert "encoder.layer.0.attention.self.query.weight" in decay_names
    assert "embeddings.word_embeddings.weight" in decay_names
    assert all(n.endswith("bias") or "LayerNorm" in n for n in no_decay_names)
    assert "embeddings.LayerNorm.weight" in no_decay_names

    # A zero gradient leaves only the decay: no-decay parameters must not move.
    optimizer = BertAdam(grouped_parameters(model), lr=0.1, schedule="none")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for n, p in model.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        assert moved == (n in decay_names and bool(before[n].abs().sum() > 0)), n


def train_steps(model, optimizer, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        input_ids = torch.randint(0, 30, (2, 5), generator=generator)
        outputs = model(input_ids)
        hidden_states, pooled = outputs.hidden_states, outputs.pooled_output
        optimizer.zero_grad()
        (hidden_states[-1].pow(2).mean() + pooled.sum()).backward()
        optimizer.step()


def test_state_dict_resumes_exactly():
    model = tiny_model().eval()
    optimizer = BertAdam(grouped_parameters(model), lr=1e-3, warmup=0.2, t_total=10)
    train_steps(model, optimizer, 3, seed=1)

    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = tiny_model().eval()
    resumed.load_state_dict(saved["model"])
    resumed_optimizer = BertAdam(grouped_parameters(resumed), lr=1e-3, warmup=0.2, t_total=10)
    resumed_optimizer.load_state_dict(saved["optimizer"])
    assert resumed_optimizer.get_lr() == optimizer.get_lr() == [pytest.approx(1e-3 * (0.3 - 1) / (0.2 - 1))] * 2

    train_steps(model, optimizer, 2, seed=2)
    train_steps(resumed, resumed_optimizer, 2, seed=2)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_bad_arguments_are_rejected():
    param = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(ValueError, match="schedule"):
        BertAdam([param], lr=0.1, schedule="linear")
    with pytest.raises(ValueError, match="warmup"):
        BertAdam([param], lr=0.1, warmup=1.5, t_total=10)
    with pytest.raises(ValueError, match="learning rate"):
        BertAdam([param], lr=-1.0)

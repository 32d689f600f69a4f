"""KD losses and the layer map."""
import math

import pytest
import torch
import torch.nn.functional as F

from distill.losses import (attention_mse, check_compatible, internal_layer_loss, layer_map, prediction_loss,
                            soft_cross_entropy, true_label_loss)
from transformer.modeling import BertConfig, BertModelOutput


def test_layer_map_pairs_every_kth_teacher_layer():
    hidden, attention = layer_map(6, 2)
    assert hidden == [(0, 0), (1, 3), (2, 6)]
    assert attention == [(0, 2), (1, 5)]
    hidden, attention = layer_map(4, 4)
    assert hidden == [(j, j) for j in range(5)]
    assert attention == [(j, j) for j in range(4)]
    assert layer_map(6, 1) == ([(0, 0), (1, 6)], [(0, 5)])


def test_layer_map_rejects_non_divisible_counts():
    with pytest.raises(ValueError, match="teacher layers \\(6\\) are not a multiple of student layers \\(4\\)"):
        layer_map(6, 4)


def test_check_compatible_rejects_different_head_counts():
    teacher = BertConfig(num_hidden_layers=4, num_attention_heads=4)
    check_compatible(teacher, BertConfig(num_hidden_layers=2, num_attention_heads=4))
    with pytest.raises(ValueError, match="attention heads differ: teacher 4, student 2"):
        check_compatible(teacher, BertConfig(num_hidden_layers=2, num_attention_heads=2))


def test_attention_mse_zeroes_masked_entries_in_both():
    student = torch.tensor([[1.0, -10000.0], [2.0, -100.0]])
    teacher = torch.tensor([[0.0, -10003.0], [-10000.0, -99.0]])
    # masked: student (0,1), (1,1); teacher (0,1), (1,0). Remaining pairs: (1, 0), (0, 0), (2, 0), (0, -99)
    expected = ((1 - 0) ** 2 + 0 + (2 - 0) ** 2 + (0 + 99) ** 2) / 4
    assert attention_mse(student, teacher).item() == pytest.approx(expected)


def test_internal_layer_loss_sums_mapped_mses_with_gradient():
    torch.manual_seed(0)
    teacher_hiddens = [torch.randn(2, 3, 4) for _ in range(5)]
    teacher_atts = [torch.randn(2, 2, 3, 3) for _ in range(4)]
    student_reps = [torch.randn(2, 3, 4, requires_grad=True) for _ in range(3)]
    student_atts = [torch.randn(2, 2, 3, 3, requires_grad=True) for _ in range(2)]
    losses = internal_layer_loss(BertModelOutput(student_reps, student_atts), BertModelOutput(teacher_hiddens, teacher_atts))
    total, att, rep = losses["loss"], losses["att_loss"], losses["rep_loss"]
    expected_att = F.mse_loss(student_atts[0], teacher_atts[1]) + F.mse_loss(student_atts[1], teacher_atts[3])
    expected_rep = sum(F.mse_loss(student_reps[j], teacher_hiddens[2 * j]) for j in range(3))
    assert att.item() == pytest.approx(expected_att.item())
    assert rep.item() == pytest.approx(expected_rep.item())
    assert total.item() == pytest.approx(att.item() + rep.item())
    total.backward()
    n = student_reps[1].numel()
    assert torch.allclose(student_reps[1].grad, 2 * (student_reps[1] - teacher_hiddens[2]).detach() / n)


def test_soft_cross_entropy_is_summed_over_classes_and_averaged_over_batch():
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    teacher = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    tau = 2.0
    expected = 0.0
    for s, t in zip(student, teacher):
        p = torch.softmax(t / tau, 0)
        expected += -(p * torch.log_softmax(s / tau, 0)).sum().item() / 2
    assert soft_cross_entropy(student, teacher, tau).item() == pytest.approx(expected)
    uniform = torch.zeros(1, 4)
    assert soft_cross_entropy(uniform, uniform).item() == pytest.approx(math.log(4))


def test_prediction_and_true_label_losses():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    assert true_label_loss(logits, labels, "classification").item() == pytest.approx(
        F.cross_entropy(logits, labels).item())
    scores = torch.tensor([[0.5], [2.0]])
    gold = torch.tensor([1.0, 1.0])
    assert prediction_loss(scores, None, gold, "regression").item() == pytest.approx((0.25 + 1.0) / 2)
    assert true_label_loss(scores, gold, "regression").item() == pytest.approx((0.25 + 1.0) / 2)
    teacher = torch.tensor([[0.0, 5.0], [5.0, 0.0]])
    assert prediction_loss(logits, teacher, labels, "classification", 1.0).item() == pytest.approx(
        soft_cross_entropy(logits, teacher).item())

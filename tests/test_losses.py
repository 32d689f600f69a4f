"""KD losses and the layer map."""
import math
import types

import pytest
import torch
import torch.nn.functional as F

from distill.losses import (LOSSES, attention_distribution_kl, attention_mse, check_compatible, hidden_cosine,
                            internal_layer_loss, layer_map, mean_spike_rate, minilm_loss, patient_kd_loss,
                            prediction_loss, soft_cross_entropy, true_label_loss, value_relation_kl,
                            with_rate_penalty)
from modules.snnide_bert_multilayer_modules import Populations
from modules.snn_bert_modules import LayerPopulations
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


# MiniLM, Patient-KD and cosine losses: each against a direct computation of its paper's formula.

def padded_batch(generator, heads=2, length=5):
    """Random masked scores for two sentences, the second with its last two tokens padded."""
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, -2:] = 0
    pad_keys = (1 - mask[:, None, None, :].float()) * -10000.0

    def scores():
        return torch.randn(2, heads, length, length, generator=generator) + pad_keys

    return mask, scores


def reference_kl_mean(teacher_rows, student_rows, mask):
    """1 / (A |x|) sum over heads and real query rows of KL(softmax(teacher) || softmax(student)), both
    softmaxes over the real keys only, averaged over the batch's real rows; *_rows(b, a, t) -> a row."""
    total, rows = 0.0, 0
    for b in range(mask.size(0)):
        real = int(mask[b].sum())
        for a in range(2):
            for t in range(real):
                p = torch.softmax(teacher_rows(b, a, t)[:real], 0)
                log_q = torch.log_softmax(student_rows(b, a, t)[:real], 0)
                total = total + F.kl_div(log_q, p, reduction="sum")
                rows += 1
    return total / rows


def test_attention_distribution_kl_is_minilm_eq4_over_real_tokens():
    generator = torch.Generator().manual_seed(0)
    mask, scores = padded_batch(generator)
    student, teacher = scores().requires_grad_(), scores()
    loss = attention_distribution_kl(student, teacher, mask)
    expected = reference_kl_mean(lambda b, a, t: teacher[b, a, t], lambda b, a, t: student[b, a, t], mask)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() > 0.1
    loss.backward()
    assert torch.count_nonzero(student.grad[1, :, -2:]) == 0  # padded query rows do not count
    assert torch.all(student.grad[0].abs().sum(-1) > 0)
    # Softmax ignores a constant per row: shifted scores are identical distributions.
    shifted = teacher + torch.randn(2, 2, 5, 1, generator=generator)
    assert attention_distribution_kl(shifted, teacher, mask).item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="equal head counts"):
        attention_distribution_kl(student[:, :1], teacher, mask)


def test_value_relation_kl_is_minilm_eq6_across_widths():
    generator = torch.Generator().manual_seed(1)
    mask, _ = padded_batch(generator)
    student = torch.randn(2, 5, 4, generator=generator, requires_grad=True)  # 2 heads of 2
    teacher = torch.randn(2, 5, 6, generator=generator)  # 2 heads of 3

    def relation_rows(values, head_size):
        def row(b, a, t):
            v = values[b, :, a * head_size:(a + 1) * head_size]
            return v @ v[t] / math.sqrt(head_size)
        return row

    loss = value_relation_kl(student, teacher, mask, num_heads=2)
    expected = reference_kl_mean(relation_rows(teacher, 3), relation_rows(student, 2), mask)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert torch.count_nonzero(student.grad[1, -2:]) == 0  # padded tokens are neither queries nor keys
    assert torch.all(student.grad[0].abs().sum(-1) > 0)
    same = torch.randn(2, 5, 6, generator=generator)
    assert value_relation_kl(same, same, mask, num_heads=2).item() == pytest.approx(0, abs=1e-6)

    scores_s, scores_t = torch.randn(2, 2, 5, 5, generator=generator), torch.randn(2, 2, 5, 5, generator=generator)
    total, attention, values = minilm_loss(scores_s, student, scores_t, teacher, mask, num_heads=2)
    assert values.item() == pytest.approx(loss.item())
    assert total.item() == pytest.approx(attention.item() + values.item())
    total, _, _ = minilm_loss(scores_t, same, scores_t, same, mask, num_heads=2)
    assert total.item() == pytest.approx(0, abs=1e-6)


def test_patient_kd_loss_is_pkd_eq3_on_intermediate_cls_states():
    generator = torch.Generator().manual_seed(2)
    teacher = [torch.randn(3, 4, 6, generator=generator) for _ in range(7)]  # 6 layers + embeddings
    student = [torch.randn(3, 4, 6, generator=generator, requires_grad=True) for _ in range(4)]  # 3 layers
    loss = patient_kd_loss(student, teacher)
    expected = 0.0
    for j, teacher_layer in ((1, 2), (2, 4)):  # student layers 1..N-1 against teacher layer 2j
        for i in range(3):
            s, t = student[j][i, 0], teacher[teacher_layer][i, 0]
            expected += ((s / s.norm() - t / t.norm()) ** 2).sum().item() / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert student[0].grad is None and student[3].grad is None  # embeddings and last layer: not distilled
    assert torch.count_nonzero(student[1].grad[:, 1:]) == 0 and torch.all(student[1].grad[:, 0].abs().sum(-1) > 0)
    scaled = [h * 3 for h in teacher[::2]]  # the teacher's mapped states at another scale
    assert patient_kd_loss(scaled, teacher).item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2 layers"):
        patient_kd_loss(student[:2], teacher)


def test_hidden_cosine_is_one_minus_cosine_per_token_pads_included():
    generator = torch.Generator().manual_seed(3)
    student = torch.randn(2, 3, 4, generator=generator, requires_grad=True)
    teacher = torch.randn(2, 3, 4, generator=generator)
    loss = hidden_cosine(student, teacher)
    expected = sum(1 - (student[b, i] @ teacher[b, i]).item() / (student[b, i].norm() * teacher[b, i].norm()).item()
                   for b in range(2) for i in range(3)) / 6
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.all(student.grad.abs().sum(-1) > 0)
    assert hidden_cosine(teacher * 2.5, teacher).item() == pytest.approx(0, abs=1e-6)


def test_internal_layer_loss_sums_the_terms_selected_by_name():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    additive = (1.0 - mask[:, None, None, :].float()) * -10000.0

    def outputs(layers, width):
        hidden = [torch.randn(2, 4, 8, requires_grad=True) for _ in range(layers + 1)]
        scores = [torch.randn(2, 2, 4, 4) + additive for _ in range(layers)]
        return BertModelOutput(hidden, scores, last_values=torch.randn(2, 4, width, requires_grad=True))

    student, teacher = outputs(2, 6), outputs(4, 8)
    losses = internal_layer_loss(student, teacher, mask, losses=("minilm", "hidden_cosine", "patient_kd"))
    assert set(losses) == {"loss", "minilm", "hidden_cosine", "patient_kd"}
    minilm, _, _ = minilm_loss(student.attention_scores[-1], student.last_values, teacher.attention_scores[-1],
                               teacher.last_values, mask, 2)
    assert losses["minilm"].item() == pytest.approx(minilm.item())
    cosine = sum(hidden_cosine(student.hidden_states[j], teacher.hidden_states[2 * j]) for j in range(3))
    assert losses["hidden_cosine"].item() == pytest.approx(cosine.item())
    assert losses["patient_kd"].item() == pytest.approx(patient_kd_loss(student.hidden_states,
                                                                        teacher.hidden_states).item())
    assert losses["loss"].item() == pytest.approx(minilm.item() + cosine.item() + losses["patient_kd"].item())
    losses["loss"].backward()
    assert student.last_values.grad.abs().sum() > 0 and student.hidden_states[1].grad.abs().sum() > 0

    paper = internal_layer_loss(student, teacher, mask)
    assert set(paper) == {"loss", "att_loss", "rep_loss"}
    assert set(LOSSES) == {"attention_mse", "hidden_mse", "hidden_cosine", "minilm", "patient_kd"}
    with pytest.raises(ValueError, match="unknown loss 'pkd'; known losses: attention_mse, hidden_mse, "
                                         "hidden_cosine, minilm, patient_kd"):
        internal_layer_loss(student, teacher, mask, losses=("pkd",))


def test_rate_penalty_is_the_mean_population_rate_over_real_tokens():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    embedding = torch.rand(2, 3, 4, requires_grad=True)
    layer = LayerPopulations(*[torch.rand(2, 3, 6 if i == 4 else 4) for i in range(6)])
    rates = Populations(embedding, [layer])
    expected = sum((r[0, :2].sum() / r.shape[-1] + r[1].sum() / r.shape[-1]) / 5 for r in rates.flat()) / 7
    assert mean_spike_rate(rates, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    student = types.SimpleNamespace(rates=rates, event_rates=rates)
    losses = with_rate_penalty({"loss": torch.tensor(1.0)}, student, mask, 0.5)
    assert losses["loss"].item() == pytest.approx(1.0 + 0.5 * expected.item(), rel=1e-6)
    losses["loss"].backward()
    assert embedding.grad[0, 2].abs().sum() == 0 and embedding.grad[0, 0].abs().sum() > 0  # padding excluded
    unpenalised = with_rate_penalty({"loss": torch.tensor(1.0)}, student, mask, 0.0)
    assert unpenalised["loss"] == 1.0 and unpenalised["rate"].item() == pytest.approx(expected.item(), rel=1e-6)

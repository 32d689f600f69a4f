"""Knowledge-distillation losses and the teacher-to-student layer map.

Layer map: the teacher has M layers, the student N, M divisible by N, k = M / N; student
hidden state j (0 = embeddings) pairs with teacher hidden state j k, student attention
layer j (1-based) with teacher layer j k. Internal-layer loss = sum of the attention-score
MSEs + sum of the hidden-state MSEs; prediction loss = soft cross-entropy at a temperature.

Further KD losses of neighbouring distillers (MiniLM, Patient-KD, hidden-state cosine) are
selected by name (LOSSES, get_loss).
"""
import math

import torch
import torch.nn.functional as F

from modules.energy import AC_ENERGY_PJ, MAC_ENERGY_PJ, bert_multiply_accumulates, fan_outs
from transformer.modeling import extended_attention_mask

# Pre-softmax scores at or below this value are masked positions (the mask adds -10000).
MASKED_SCORE = -100.0


def layer_map(teacher_layers, student_layers):
    """Pairs (student_index, teacher_index) for hidden states and for attention.

    With k = M / N: student rep j (j = 0..N, rep 0 = embeddings) is matched with teacher
    hidden state j*k (hidden state 0 = the teacher's embedding output), and student
    attention layer j (j = 1..N) with teacher attention layer j*k, both 1-based. The
    returned attention pairs are 0-based list positions.
    """
    if student_layers < 1 or teacher_layers < 1:
        raise ValueError(f"layer counts must be >= 1 (teacher {teacher_layers}, student {student_layers})")
    if teacher_layers % student_layers != 0:
        raise ValueError(f"teacher layers ({teacher_layers}) are not a multiple of student layers ({student_layers})")
    k = teacher_layers // student_layers
    hidden_pairs = [(j, j * k) for j in range(student_layers + 1)]
    attention_pairs = [(j - 1, j * k - 1) for j in range(1, student_layers + 1)]
    return hidden_pairs, attention_pairs


def check_compatible(teacher_config, student_config, losses=("attention_mse",)):
    """Raise ValueError when internal-layer KD with ``losses`` cannot pair these two models."""
    layer_map(teacher_config.num_hidden_layers, student_config.num_hidden_layers)
    if "patient_kd" in losses and student_config.num_hidden_layers < 2:
        raise ValueError("the patient_kd loss distils intermediate layers: the student needs at least 2 layers")
    needs_heads = [name for name in losses if name in ("attention_mse", "minilm")]
    if needs_heads and teacher_config.num_attention_heads != student_config.num_attention_heads:
        raise ValueError(f"attention heads differ: teacher {teacher_config.num_attention_heads}, "
                         f"student {student_config.num_attention_heads} ({', '.join(needs_heads)} needs equal "
                         "head counts)")


def attention_mse(student_scores, teacher_scores):
    """MSE of pre-softmax scores with masked entries (<= -100) zeroed in both tensors."""
    student_scores = torch.where(student_scores <= MASKED_SCORE, torch.zeros_like(student_scores), student_scores)
    teacher_scores = torch.where(teacher_scores <= MASKED_SCORE, torch.zeros_like(teacher_scores), teacher_scores)
    return F.mse_loss(student_scores.float(), teacher_scores.float())


def hidden_mse(student_rep, teacher_hidden):
    return F.mse_loss(student_rep.float(), teacher_hidden.float())


def soft_cross_entropy(student_logits, teacher_logits, temperature=1.0):
    """Cross-entropy of softmax(teacher / tau) against log_softmax(student / tau).

    Normalisation: the true cross-entropy, summed over classes and averaged over the
    batch. The reference (TinyBERT's soft_cross_entropy) also averages over the C
    classes, i.e. returns this value / C; the two differ only by that constant factor.
    """
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_probs = F.softmax(teacher_logits.float() / temperature, dim=-1)
    return -(teacher_probs * student_log_probs).sum(dim=-1).mean()


def prediction_loss(student_logits, teacher_logits, labels, output_mode, temperature=1.0):
    """Prediction-layer KD: soft cross-entropy (classification) or MSE to the gold score (regression)."""
    if output_mode == "regression":
        return F.mse_loss(student_logits.float().view(-1), labels.float().view(-1))
    return soft_cross_entropy(student_logits, teacher_logits, temperature)


def true_label_loss(student_logits, labels, output_mode):
    """Gold-label loss: cross-entropy, or MSE for regression."""
    if output_mode == "regression":
        return F.mse_loss(student_logits.float().view(-1), labels.float().view(-1))
    return F.cross_entropy(student_logits.float(), labels.view(-1).long())


# ----------------------------------------------------------------------------
# Further KD losses from neighbouring distillers, selected by name through LOSSES / get_loss.

def _mean_over_heads_and_tokens(values, attention_mask):
    """Mean of ``values`` [B, A, L] over the heads and the real (mask 1) query rows of the whole batch."""
    rows = attention_mask[:, None, :].to(values.dtype)
    return (values * rows).sum() / (rows.sum() * values.size(1))


def attention_distribution_kl(student_scores, teacher_scores, attention_mask):
    """MiniLM's self-attention distribution transfer (Wang et al. 2020, eq. 4).

        A_{a,t} = softmax_k(scores_{a,t,k})
        L_AT = 1 / (A |x|) * sum_a sum_t KL(A^T_{a,t} || A^S_{a,t})

    ``*_scores``: pre-softmax scores [B, A, L, L] of the same number of heads A (the widths may
    differ), already masked with -10000 at padded keys, so padded keys have probability 0.
    ``attention_mask``: [B, L], 1 for tokens, 0 for padding. Normalisation: each (head, query)
    KL is summed over the keys, then averaged over the heads and over the real query rows of the
    whole batch, padded query rows left out; without padding this is the paper's 1 / (A |x|) mean
    per sentence, averaged over the batch.
    """
    if student_scores.shape != teacher_scores.shape:
        raise ValueError(f"attention scores differ in shape: student {tuple(student_scores.shape)}, "
                         f"teacher {tuple(teacher_scores.shape)} (MiniLM needs equal head counts)")
    log_student = F.log_softmax(student_scores.float(), dim=-1)
    log_teacher = F.log_softmax(teacher_scores.float(), dim=-1)
    kl = F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(dim=-1)
    return _mean_over_heads_and_tokens(kl, attention_mask)


def value_relation(values, attention_mask, num_heads):
    """MiniLM's value relation scores V_a V_a^T / sqrt(d_k) per head, [B, A, L, L], -10000 at padded keys.

    ``values``: [B, L, H] value vectors, split into ``num_heads`` heads of d_k = H / num_heads.
    """
    batch, length, hidden = values.shape
    if hidden % num_heads:
        raise ValueError(f"value width {hidden} is not a multiple of {num_heads} heads")
    head_size = hidden // num_heads
    heads = values.float().view(batch, length, num_heads, head_size).transpose(1, 2)
    scores = heads @ heads.transpose(-1, -2) / math.sqrt(head_size)
    return scores + extended_attention_mask(attention_mask, scores.dtype)


def value_relation_kl(student_values, teacher_values, attention_mask, num_heads):
    """MiniLM's value-relation transfer (Wang et al. 2020, eq. 5-6).

        VR_a = softmax(V_a V_a^T / sqrt(d_k))
        L_VR = 1 / (A |x|) * sum_a sum_t KL(VR^T_{a,t} || VR^S_{a,t})

    ``*_values``: [B, L, H_s] and [B, L, H_t], each split into ``num_heads`` heads with its own
    d_k, so the widths and head sizes may differ. Masking and normalisation as in
    ``attention_distribution_kl``.
    """
    return attention_distribution_kl(value_relation(student_values, attention_mask, num_heads),
                                     value_relation(teacher_values, attention_mask, num_heads), attention_mask)


def minilm_loss(student_scores, student_values, teacher_scores, teacher_values, attention_mask, num_heads):
    """MiniLM's deep self-attention distillation of the last layer: L_AT + L_VR.

    Returns (total, attention_kl, value_relation_kl); arguments as in ``attention_distribution_kl``
    and ``value_relation_kl``.
    """
    attention = attention_distribution_kl(student_scores, teacher_scores, attention_mask)
    values = value_relation_kl(student_values, teacher_values, attention_mask, num_heads)
    return attention + values, attention, values


def patient_kd_loss(student_reps, teacher_hiddens):
    """Patient-KD's normalised [CLS] loss on the intermediate layers (Sun et al. 2019, eq. 3).

        L_PT = sum_j || h^s_j / ||h^s_j||_2 - h^t_{I(j)} / ||h^t_{I(j)}||_2 ||_2^2

    h = the hidden state at position 0 ([CLS]); j runs over the student's intermediate layers
    1..N-1 (the last layer is left to prediction KD) and I(j) = j k is layer_map's teacher layer
    (PKD-skip). ``student_reps``: N + 1 tensors [B, L, H] (embeddings first, already fitted to the
    teacher's width H), ``teacher_hiddens``: M + 1 tensors [B, L, H]. Averaged over the batch, where
    the paper sums over the training examples; PKD's published code takes an MSE instead, i.e. this
    value divided by the number of layers and by H.
    """
    hidden_pairs, _ = layer_map(len(teacher_hiddens) - 1, len(student_reps) - 1)
    intermediate = hidden_pairs[1:-1]
    if not intermediate:
        raise ValueError("Patient-KD distils intermediate layers: the student needs at least 2 layers")
    loss = 0.0
    for s, t in intermediate:
        student = F.normalize(student_reps[s][:, 0].float(), dim=-1)
        teacher = F.normalize(teacher_hiddens[t][:, 0].float(), dim=-1)
        if student.shape != teacher.shape:
            raise ValueError(f"[CLS] states differ in shape: student {tuple(student.shape)}, "
                             f"teacher {tuple(teacher.shape)}")
        loss = loss + (student - teacher).pow(2).sum(dim=-1).mean()
    return loss


def hidden_cosine(student_rep, teacher_hidden):
    """1 - cos(student_i, teacher_i) for every position i of [B, L, H], averaged over all B L positions.

    Padded positions count, as in ``hidden_mse`` (and the reference's MSE), so the two are
    interchangeable; unlike the MSE it ignores each vector's length.
    """
    return (1 - F.cosine_similarity(student_rep.float(), teacher_hidden.float(), dim=-1)).mean()


# ----------------------------------------------------------------------------
# Internal-layer KD: a sum of named terms, each computed from two model outputs.

def last_layer_values(outputs):
    """The last layer's value vectors: a spiking student's value-population rates, a BERT's last_values."""
    rates = getattr(outputs, "rates", None)
    if rates is not None:
        return rates.layers[-1].value
    if outputs.last_values is None:
        raise ValueError("the minilm loss needs the teacher's value vectors (call it with output_values=True)")
    return outputs.last_values


def attention_mse_term(student, teacher, attention_mask):
    """The paper's attention loss: sum of attention_mse over the mapped layer pairs."""
    _, attention_pairs = layer_map(len(teacher.attention_scores), len(student.attention_scores))
    return sum(attention_mse(student.attention_scores[s], teacher.attention_scores[t]) for s, t in attention_pairs)


def hidden_term(pair_loss):
    """A hidden-state loss summed over the mapped pairs (student hidden state j, teacher j k)."""
    def term(student, teacher, attention_mask):
        hidden_pairs, _ = layer_map(len(teacher.hidden_states) - 1, len(student.hidden_states) - 1)
        return sum(pair_loss(student.hidden_states[s], teacher.hidden_states[t]) for s, t in hidden_pairs)
    return term


def minilm_term(student, teacher, attention_mask):
    """MiniLM on the last layers: attention-distribution KL + value-relation KL."""
    total, _, _ = minilm_loss(student.attention_scores[-1], last_layer_values(student), teacher.attention_scores[-1],
                              last_layer_values(teacher), attention_mask, teacher.attention_scores[-1].shape[1])
    return total


def patient_kd_term(student, teacher, attention_mask):
    return patient_kd_loss(student.hidden_states, teacher.hidden_states)


# Internal-layer KD terms by name (--kd_losses); each is term(student_outputs, teacher_outputs, attention_mask).
LOSSES = {
    "attention_mse": attention_mse_term,
    "hidden_mse": hidden_term(hidden_mse),
    "hidden_cosine": hidden_term(hidden_cosine),
    "minilm": minilm_term,
    "patient_kd": patient_kd_term,
}
PAPER_LOSSES = ("attention_mse", "hidden_mse")
# The names the paper's two terms are logged under.
LOG_NAMES = {"attention_mse": "att_loss", "hidden_mse": "rep_loss"}


def get_loss(name):
    """The loss term registered as ``name``; a ValueError listing the known names otherwise."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(LOSSES)}")
    return LOSSES[name]


def internal_layer_loss(student, teacher, attention_mask=None, losses=PAPER_LOSSES):
    """Internal-layer KD between two model outputs (SpikingBertOutput / BertModelOutput): the sum of
    the named terms; returns {"loss": total, and each term under its log name}.

    The paper's terms: the attention MSEs of the mapped layers (pre-softmax scores, masked entries
    zeroed in both) plus the hidden-state MSEs of the mapped states, each a mean over all elements
    of the batch tensors, padded positions included, as in the reference.
    """
    if len(student.hidden_states) != len(student.attention_scores) + 1 or \
            len(teacher.hidden_states) != len(teacher.attention_scores) + 1:
        raise ValueError("expected one more hidden state than attention layers for both models")
    terms = {LOG_NAMES.get(name, name): get_loss(name)(student, teacher, attention_mask) for name in losses}
    return {"loss": sum(terms.values()), **terms}


def mean_spike_rate(rates, attention_mask):
    """The mean over populations of each population's mean rate over real tokens and neurons (a scalar
    with the rates' gradient: the surrogate's in training)."""
    mask = attention_mask.to(rates.embedding.dtype)
    per_population = [(rate.mean(-1) * mask).sum() / mask.sum() for rate in rates.flat()]
    return torch.stack(per_population).mean()


def with_rate_penalty(losses, student, attention_mask, weight):
    """``losses`` with the student's mean spike rate logged ("rate") and, for a non-zero ``weight``, ``weight`` x
    that rate added to the loss; for weight 0 the loss is unchanged.

    Energy grows with spikes x steps, so the penalty trades a little distillation loss for fewer spikes.
    """
    rate = mean_spike_rate(student.event_rates, attention_mask)
    if not weight:
        return {**losses, "rate": rate.detach()}
    return {**losses, "loss": losses["loss"] + weight * rate, "rate": rate}


def energy_ratio(rates, attention_mask, t_conv, size):
    """The accumulate part of the student's energy over a same-size ANN's, for the batch: the sum over its
    sentences of 0.9 pJ x ACs (each population's spikes, t_conv x its rates summed over real tokens and neurons,
    times its fan-out) over the sum of 4.6 pJ x the ANN's MACs; the energy report's figure for the same
    sentences (modules/energy.py counts both), differentiable through the rates (the surrogate's in training)."""
    mask = attention_mask.to(rates.embedding.dtype)
    lengths = mask.sum(dim=1)
    fan = fan_outs(lengths, size)
    spikes = [t_conv * (rate.sum(-1) * mask).sum(-1) for rate in rates.flat()]
    accumulates = sum(count * fan[name] for count, name in zip(spikes, fan)).sum()
    ann = sum(bert_multiply_accumulates(size, int(length)) for length in lengths.tolist())
    return AC_ENERGY_PJ * accumulates / (MAC_ENERGY_PJ * ann)


def with_energy_penalty(losses, student, attention_mask, weight, t_conv, size):
    """``losses`` plus ``weight`` x energy_ratio of the student's rates (a SpikingBertOutput's; the student's
    training t_conv and BertSize), logged as "energy"; unchanged for weight 0. Unlike the rate penalty it weighs
    each population's spikes by what they cost (their fan-out)."""
    if not weight:
        return losses
    ratio = energy_ratio(student.event_rates, attention_mask, t_conv, size)
    return {**losses, "loss": losses["loss"] + weight * ratio, "energy": ratio}

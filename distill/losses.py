"""Knowledge-distillation losses and the teacher-to-student layer map.

Layer map: the teacher has M layers, the student N, M divisible by N, k = M / N; student
hidden state j (0 = embeddings) pairs with teacher hidden state j k, student attention
layer j (1-based) with teacher layer j k. Internal-layer loss = sum of the attention-score
MSEs + sum of the hidden-state MSEs; prediction loss = soft cross-entropy at a temperature.
"""
import torch
import torch.nn.functional as F

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


def check_compatible(teacher_config, student_config):
    """Raise ValueError when internal-layer KD cannot pair these two models."""
    layer_map(teacher_config.num_hidden_layers, student_config.num_hidden_layers)
    if teacher_config.num_attention_heads != student_config.num_attention_heads:
        raise ValueError(f"attention heads differ: teacher {teacher_config.num_attention_heads}, "
                         f"student {student_config.num_attention_heads} (attention KD needs equal head counts)")


def attention_mse(student_scores, teacher_scores):
    """MSE of pre-softmax scores with masked entries (<= -100) zeroed in both tensors."""
    student_scores = torch.where(student_scores <= MASKED_SCORE, torch.zeros_like(student_scores), student_scores)
    teacher_scores = torch.where(teacher_scores <= MASKED_SCORE, torch.zeros_like(teacher_scores), teacher_scores)
    return F.mse_loss(student_scores.float(), teacher_scores.float())


def hidden_mse(student_rep, teacher_hidden):
    return F.mse_loss(student_rep.float(), teacher_hidden.float())


def internal_layer_loss(student, teacher):
    """Internal-layer KD between two model outputs (SpikingBertOutput / BertModelOutput).

    The sum of the mapped attention MSEs plus the sum of the mapped hidden-state MSEs;
    returns {"loss", "att_loss", "rep_loss"}. Every MSE is a mean over all elements of the
    batch's [B, A, L, L] or [B, L, H] tensors, padded positions included (only masked
    attention entries are zeroed), as in the reference.
    """
    student_attentions, teacher_attentions = student.attention_scores, teacher.attention_scores
    student_hiddens, teacher_hiddens = student.hidden_states, teacher.hidden_states
    hidden_pairs, attention_pairs = layer_map(len(teacher_attentions), len(student_attentions))
    if len(student_hiddens) != len(student_attentions) + 1 or len(teacher_hiddens) != len(teacher_attentions) + 1:
        raise ValueError("expected one more hidden state than attention layers for both models")
    attention_loss = sum(attention_mse(student_attentions[s], teacher_attentions[t]) for s, t in attention_pairs)
    hidden_loss = sum(hidden_mse(student_hiddens[s], teacher_hiddens[t]) for s, t in hidden_pairs)
    return {"loss": attention_loss + hidden_loss, "att_loss": attention_loss, "rep_loss": hidden_loss}


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

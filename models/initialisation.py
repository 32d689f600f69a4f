"""How a student can start: from its teacher's weights, and with thresholds calibrated on data.

init_from_teacher. Student layer j (1-based) takes teacher layer j * M / N's weights, the
embeddings are the teacher's. Where a student width is smaller than the teacher's, every
matrix is projected onto the teacher's leading singular directions of that space (the
low-rank initialisation idea of LoBERT): the hidden space's basis P [H_s, H_t] is the
top H_s right singular vectors of the teacher's word embeddings, each layer's
intermediate basis Q [I_s, I_t] the top I_s left singular vectors of its intermediate
weights; a weight W [out, in] becomes B_out W B_in^T and a vector v becomes B v, with
B = P, Q or the identity where the widths are equal (then the copy is exact). The
student's own parts (classifier, fit_dense, feedback, thresholds) keep their
initialisation.

calibrate_thresholds. One surrogate pass over a batch; every population's threshold (per
population or per neuron) is set, in firing order, to a percentile of the positive input
currents it receives, so later populations see the currents of calibrated earlier ones.
"""
import logging

import torch

from transformer.modeling import embed_inputs

logger = logging.getLogger(__name__)

# Student parameter names (below bert.encoder.layer.{j}.) and the space of each dimension:
# "hidden", "intermediate" or None for a single dimension of size 1 (none here).
LAYER_TENSORS = {
    "attention.self.query.weight": ("hidden", "hidden"), "attention.self.query.bias": ("hidden",),
    "attention.self.key.weight": ("hidden", "hidden"), "attention.self.key.bias": ("hidden",),
    "attention.self.value.weight": ("hidden", "hidden"), "attention.self.value.bias": ("hidden",),
    "attention.output.dense.weight": ("hidden", "hidden"), "attention.output.dense.bias": ("hidden",),
    "attention.output.LayerNorm.weight": ("hidden",), "attention.output.LayerNorm.bias": ("hidden",),
    "intermediate.dense.weight": ("intermediate", "hidden"), "intermediate.dense.bias": ("intermediate",),
    "output.dense.weight": ("hidden", "intermediate"), "output.dense.bias": ("hidden",),
    "output.LayerNorm.weight": ("hidden",), "output.LayerNorm.bias": ("hidden",),
}
EMBEDDING_TENSORS = {
    "word_embeddings.weight": (None, "hidden"), "position_embeddings.weight": (None, "hidden"),
    "token_type_embeddings.weight": (None, "hidden"), "LayerNorm.weight": ("hidden",), "LayerNorm.bias": ("hidden",),
}


def leading_directions(matrix, count, side):
    """Orthonormal rows [count, d] spanning the top ``count`` singular directions of ``matrix``
    (``side`` "right": of its rows' space, d = columns; "left": of its columns' space, d = rows)."""
    left, _, right_t = torch.linalg.svd(matrix.double(), full_matrices=False)
    basis = right_t[:count] if side == "right" else left[:, :count].T
    return basis.to(matrix.dtype)


def project(tensor, spaces, bases):
    """B_out W B_in^T for a matrix, B v for a vector; a None space (vocabulary, positions) is kept."""
    for dim, space in enumerate(spaces):
        basis = bases.get(space)
        if basis is not None:
            tensor = torch.tensordot(basis, tensor.movedim(dim, 0), dims=1).movedim(0, dim)
    return tensor


def low_rank(matrix, rank):
    """The best rank-``rank`` approximation of ``matrix`` through its leading singular directions."""
    basis = leading_directions(matrix, rank, "right")
    return matrix @ basis.T @ basis


@torch.no_grad()
def init_from_teacher(student, teacher_state, teacher_config):
    """Copy (or project) the teacher's embeddings and mapped layers into ``student``; returns the names set.

    ``teacher_state``: the teacher's state dict with BertModel names (``embeddings.*``,
    ``encoder.layer.{i}.*``; a ``bert.`` prefix is accepted); ``teacher_config``: its BertConfig.
    """
    teacher_state = {key[len("bert."):] if key.startswith("bert.") else key: value
                     for key, value in teacher_state.items()}
    config = student.config
    teacher_layers, student_layers = teacher_config.num_hidden_layers, config.num_hidden_layers
    if teacher_layers % student_layers:
        raise ValueError(f"--init_from_teacher: teacher layers ({teacher_layers}) are not a multiple of student "
                         f"layers ({student_layers})")
    if config.hidden_size > teacher_config.hidden_size or config.intermediate_size > teacher_config.intermediate_size:
        raise ValueError("--init_from_teacher: the student is wider than the teacher")
    hidden_basis = None
    if config.hidden_size < teacher_config.hidden_size:
        hidden_basis = leading_directions(teacher_state["embeddings.word_embeddings.weight"], config.hidden_size,
                                          "right")
    own = student.state_dict()
    copied = []

    def set_tensor(student_key, teacher_key, spaces, bases):
        own[student_key].copy_(project(teacher_state[teacher_key], spaces, bases))
        copied.append(student_key)

    for name, spaces in EMBEDDING_TENSORS.items():
        if name == "position_embeddings.weight":
            positions = own[f"bert.embeddings.{name}"].shape[0]
            value = project(teacher_state[f"embeddings.{name}"][:positions], spaces, {"hidden": hidden_basis})
            own[f"bert.embeddings.{name}"].copy_(value)
            copied.append(f"bert.embeddings.{name}")
            continue
        set_tensor(f"bert.embeddings.{name}", f"embeddings.{name}", spaces, {"hidden": hidden_basis})
    stride = teacher_layers // student_layers
    for j in range(1, student_layers + 1):
        source = f"encoder.layer.{j * stride - 1}."
        intermediate_basis = None
        if config.intermediate_size < teacher_config.intermediate_size:
            intermediate_basis = leading_directions(teacher_state[source + "intermediate.dense.weight"],
                                                    config.intermediate_size, "left")
        bases = {"hidden": hidden_basis, "intermediate": intermediate_basis}
        for name, spaces in LAYER_TENSORS.items():
            set_tensor(f"bert.encoder.layer.{j - 1}.{name}", source + name, spaces, bases)
    logger.info("initialised %d student tensors from the teacher (student layer j <- teacher layer %d j%s)",
                len(copied), stride, "" if hidden_basis is None else ", projected onto the teacher's leading "
                "singular directions")
    return copied


@torch.no_grad()
def calibrate_thresholds(student, batch, percentile):
    """Set every population's threshold from its input currents in one surrogate pass over ``batch`` (a
    glue.Batch)."""
    if not 0 < percentile <= 100:
        raise ValueError(f"--calibrate_vth must be in (0, 100], got {percentile}")
    bert = student.bert
    was_training = student.training
    student.eval()
    embedding_current, mask = embed_inputs(bert.embeddings, batch.input_ids, batch.token_type_ids,
                                           batch.attention_mask)
    bert.surrogate(embedding_current, mask, before_firing=lambda neuron, current: neuron.calibrate(current,
                                                                                                   percentile))
    student.train(was_training)
    thresholds = {name: neuron.threshold() for name, neuron in bert.neurons().items()}
    logger.info("calibrated thresholds (percentile %g of the positive currents): %s", percentile,
                ", ".join(f"{name} {t.mean().item():.3g}" for name, t in thresholds.items()))
    return thresholds

"""Record outputs and gradients of fixed seeded spiking students with the pre-refactor code.

    git archive 680f582 | (mkdir /tmp/old680 && tar -x -C /tmp/old680)
    python tests/data/pre_refactor/record.py /tmp/old680

tests/test_refactor_pins.py compares the current code against expected.safetensors and
loads the model folders written here.

Each student runs on the weights of its model folder. A folder is written from the seeded
initialisation only when it is missing, so rerunning this keeps the folders: torch's float32
normal_ rounds differently on other CPUs, and the folders make the weights the same everywhere.
Everything recorded is computed in float64. In float32, matrix products round differently on
other CPUs, and a membrane that lands on the other side of the threshold changes a spike and
everything after it; in float64 two machines differ by about 1e-15, far less than the test's
tolerance and than the distance of every membrane from the threshold, which the test checks.
"""
import os, sys
import torch
from safetensors.torch import save_file
sys.path.insert(0, sys.argv[1])  # a checkout of commit 680f582
from models import SpikingBertForGeneralKD, SpikingBertForSequenceClassification
from transformer.modeling import BertConfig

torch.set_num_threads(1)
OUT = os.path.dirname(os.path.abspath(__file__))

def config(**over):
    v = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=16, t_conv=8, vth=1.0, leaky=1.0, feedback=False, fit_size=24,
             initializer_range=0.5, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, num_labels=3)
    v.update(over)
    return BertConfig(**v)

def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 60, (3, 7), generator=g)
    segments = (torch.arange(7) >= 4).long().expand(3, 7).contiguous()
    # Four real tokens in the third sentence: with three, some value neuron fires at all of them at
    # some step, and the attention current it feeds (a softmax average of its spikes) is then exactly
    # vth = 1 up to rounding, so that the spike depends on the machine.
    mask = torch.ones(3, 7, dtype=torch.long); mask[0, 5:] = 0; mask[2, 4:] = 0
    return ids, segments, mask

def loss_of(logits, scores, reps):
    g = torch.Generator().manual_seed(2)
    total = 0.0
    for x in ([logits] if logits is not None else []) + list(scores) + list(reps):
        total = total + (torch.randn(x.shape, generator=g, dtype=torch.float64) * x).sum()
    return total

def student(cls, name, over, *args):
    """The student saved in folder ``name``, in float64; the folder is written first if missing."""
    folder = f"{OUT}/{name}"
    if not os.path.exists(folder):
        torch.manual_seed(0)
        model = cls(config(**over), *args)
        if over.get("feedback"):
            with torch.no_grad():
                model.bert.feedback.weight.mul_(0.2)
        model.save_pretrained(folder)
    model = cls.from_pretrained(folder)
    info = model.loading_info
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.double()

tensors = {}
ids, segments, mask = batch()
tensors["input_ids"], tensors["token_type_ids"], tensors["attention_mask"] = ids, segments, mask
for name, over in [("classifier", {}), ("leaky_feedback", dict(leaky=0.9, feedback=True)), ("feedback", dict(feedback=True))]:
    model = student(SpikingBertForSequenceClassification, name, over, 3)
    model.eval()
    with torch.no_grad():
        logits, scores, reps, rates = model(ids, segments, mask, output_rates=True)
        pops, mean_scores = model.bert(ids, segments, mask)
    tensors[f"{name}.eval.logits"] = logits
    tensors[f"{name}.eval.population_rates"] = rates
    for i, r in enumerate(pops.flat()):
        tensors[f"{name}.eval.rate{i}"] = r
    for i, s in enumerate(scores):
        tensors[f"{name}.eval.scores{i}"] = s
    for i, r in enumerate(reps):
        tensors[f"{name}.eval.reps{i}"] = r
    model.train()
    torch.manual_seed(5)
    logits, scores, reps = model(ids, segments, mask)
    tensors[f"{name}.train.logits"] = logits.detach()
    for i, s in enumerate(scores):
        tensors[f"{name}.train.scores{i}"] = s.detach()
    for i, r in enumerate(reps):
        tensors[f"{name}.train.reps{i}"] = r.detach()
    loss_of(logits, scores, reps).backward()
    for pname, p in model.named_parameters():
        if p.grad is not None:
            tensors[f"{name}.grad.{pname}"] = p.grad
    tensors[f"{name}.rng_after_train"] = torch.rand(4)

general = student(SpikingBertForGeneralKD, "general", dict(num_labels=None))
general.train()
torch.manual_seed(6)
scores, reps = general(ids, segments, mask)
loss_of(None, scores, reps).backward()
for i, r in enumerate(reps):
    tensors[f"general.train.reps{i}"] = r.detach()
for pname, p in general.named_parameters():
    if p.grad is not None:
        tensors[f"general.grad.{pname}"] = p.grad
save_file({k: v.contiguous() for k, v in tensors.items()}, f"{OUT}/expected.safetensors")
print(len(tensors), "tensors")

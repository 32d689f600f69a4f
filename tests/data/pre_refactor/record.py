"""Record outputs and gradients of fixed seeded spiking students with the pre-refactor code.

    git worktree add /tmp/old680 680f582 && python tests/data/pre_refactor/record.py /tmp/old680

(in a copy of this folder without the model folders: they are not overwritten).
tests/test_refactor_pins.py compares the current code against expected.safetensors and
loads the model folders written here.
"""
import os, sys
import torch
from safetensors.torch import save_file
sys.path.insert(0, sys.argv[1])  # a checkout of commit 680f582
from models import SpikingBertForGeneralKD, SpikingBertForSequenceClassification
from transformer.modeling import BertConfig

torch.set_num_threads(1)
OUT = os.path.dirname(os.path.abspath(__file__))
os.makedirs(OUT, exist_ok=True)

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
    mask = torch.ones(3, 7, dtype=torch.long); mask[0, 5:] = 0; mask[2, 3:] = 0
    return ids, segments, mask

def loss_of(logits, scores, reps):
    g = torch.Generator().manual_seed(2)
    total = 0.0
    for x in ([logits] if logits is not None else []) + list(scores) + list(reps):
        total = total + (torch.randn(x.shape, generator=g) * x).sum()
    return total

tensors = {}
ids, segments, mask = batch()
tensors["input_ids"], tensors["token_type_ids"], tensors["attention_mask"] = ids, segments, mask
for name, over in [("classifier", {}), ("leaky_feedback", dict(leaky=0.9, feedback=True)), ("feedback", dict(feedback=True))]:
    torch.manual_seed(0)
    model = SpikingBertForSequenceClassification(config(**over), num_labels=3)
    if over.get("feedback"):
        with torch.no_grad():
            model.bert.feedback.weight.mul_(0.2)
    model.save_pretrained(f"{OUT}/{name}")
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

torch.manual_seed(0)
general = SpikingBertForGeneralKD(config(num_labels=None))
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

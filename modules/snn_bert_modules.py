"""BERT's building blocks fed with spikes (SPEC 1.1).

Every block maps the outputs of earlier neuron populations to the input current of
one population. The same code serves the spiking simulation (inputs are binary
spike trains, time steps folded into the batch) and the equilibrium surrogate
(inputs are rates in [0, 1]). The blocks are the teacher's (transformer/modeling.py)
except the split self-attention, so parameter names are Hugging Face's and a BERT
state dict of the same size maps onto the student name for name.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from transformer.modeling import BertIntermediate, BertOutput, BertSelfAttention, BertSelfOutput

POPULATIONS = ("key", "value", "attention", "self_output", "intermediate", "output")


class StepDropout(nn.Dropout):
    """Dropout drawn T times per forward by the simulation, so its cost matters.

    On CPU, thresholding uniform noise costs half of torch's Bernoulli sampling;
    the distribution is the same (keep with probability 1 - p, scale 1 / (1 - p)).
    """

    def forward(self, x):
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return F.dropout(x, self.p, self.training)
        return x * torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))


class SplitSelfAttention(BertSelfAttention):
    """Self-attention whose keys and values come from their own neuron populations.

    Key and value FCs drive the key and value populations; the attention current is
    softmax(Q K^T / sqrt(d) + mask) V with Q = W_q x_in + b_q and K, V the outputs
    (spike trains or rates) of the key and value populations.
    """

    def key_current(self, x_in):
        return self.key(x_in)

    def value_current(self, x_in):
        return self.value(x_in)

    def attention_current(self, x_in, x_key, x_value, mask):
        """(context [N, L, H], pre-softmax masked scores [N, A, L, L])."""
        query = self.split_heads(self.query(x_in))
        scores = query @ self.split_heads(x_key).transpose(-1, -2) * self.head_size ** -0.5 + mask
        context = self.dropout(scores.softmax(dim=-1)) @ self.split_heads(x_value)
        return context.transpose(1, 2).flatten(2), scores


class SpikingBertAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = SplitSelfAttention(config)
        self.output = BertSelfOutput(config)


class SpikingBertLayer(nn.Module):
    """One encoder layer: six populations wired as in SPEC 1.1."""

    def __init__(self, config):
        super().__init__()
        self.attention = SpikingBertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)
        for block in (self.attention.self, self.attention.output, self.output):
            block.dropout = StepDropout(block.dropout.p)

    def forward(self, x_in, mask, neurons):
        """Run the layer's populations in order; returns their six outputs and the scores.

        ``neurons`` holds one callable per population (POPULATIONS order) turning an
        input current into the population's output: spikes in the simulation,
        clamped rates in the surrogate.
        """
        key, value, attention, self_output, intermediate, output = neurons
        x_key = key(self.attention.self.key_current(x_in))
        x_value = value(self.attention.self.value_current(x_in))
        context, scores = self.attention.self.attention_current(x_in, x_key, x_value, mask)
        x_att = attention(context)
        x_so = self_output(self.attention.output(x_att, x_in))
        x_int = intermediate(self.intermediate(x_so))
        x_out = output(self.output(x_int, x_so))
        return [x_key, x_value, x_att, x_so, x_int, x_out], scores

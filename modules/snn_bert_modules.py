"""BERT's building blocks fed with spikes (SPEC 1.1).

Every block maps the outputs of earlier neuron populations to the input current of
one population. The same code serves the spiking simulation (inputs are binary
spike trains, time steps folded into the batch) and the equilibrium surrogate
(inputs are rates in [0, 1]). The blocks are the teacher's (transformer/modeling.py)
except the split self-attention, so parameter names are Hugging Face's and a BERT
state dict of the same size maps onto the student name for name.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from transformer.modeling import BertIntermediate, BertOutput, BertSelfAttention, BertSelfOutput

POPULATIONS = ("key", "value", "attention", "self_output", "intermediate", "output")


class StepDropout(nn.Dropout):
    """Dropout drawn T times per forward by the simulation, so its cost matters.

    On CPU, one torch random number per element (a serial Mersenne twister) and a mask
    built with boolean ops (which do not vectorise) took a fifth of a training
    simulation. Here every element takes 16 bits of a PCG64 stream (numpy, about
    twice as fast per bit) seeded by one draw of torch's generator, so
    torch.manual_seed and a saved RNG state still fix the masks. An element is
    dropped when its 16 bits fall below round(p * 2^16): the drop probability is p
    rounded to a multiple of 2^-16 (0.1 -> 0.100006), and kept values are scaled by
    the inverse of the rounded keep probability, so the expectation is exactly the
    input's.
    """

    def forward(self, x):
        dropped = round(self.p * 2 ** 16)
        if not self.training or x.device.type != "cpu" or not 0 < dropped < 2 ** 16:
            return F.dropout(x, self.p, self.training)
        count = x.numel()
        stream = np.random.PCG64(int(torch.randint(2 ** 62, ())))
        bits = torch.from_numpy(stream.random_raw((count + 3) // 4).view(np.int16)[:count]).view(x.shape)
        # On integer-valued floats, clamping to [t - 1, t] and subtracting t - 1 gives 1 where
        # bits >= t and 0 elsewhere, in float ops that vectorise.
        threshold = dropped - 2 ** 15
        keep = bits.float().clamp_(threshold - 1, threshold).sub_(threshold - 1)
        return x * keep.mul_(2 ** 16 / (2 ** 16 - dropped)).to(x.dtype)


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

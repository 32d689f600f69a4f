"""One spiking BERT encoder layer: BERT's blocks feeding six named neuron populations.

Each block maps the outputs of earlier populations to the input current of one
population. The same code serves the simulation (inputs are binary spike trains, time
steps folded into the batch) and the surrogate (inputs are rates in [0, 1]): the caller
says what a population does with its current. The blocks are the teacher's
(transformer/modeling.py) except the split self-attention, so parameter names are
Hugging Face's and a BERT state dict of the same size maps onto the student name for name.
"""
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from modules.snn_modules import make_neuron
from transformer.modeling import BertAttention, BertLayer, BertSelfAttention


class LayerPopulations(NamedTuple):
    """One value per population of an encoder layer, in the order they fire within a step.

    key, value: [B, L, H] driven by the key / value FCs of the layer input;
    attention: [B, L, H] driven by softmax(Q K^T / sqrt(d) + mask) V with K, V the key and
    value populations' outputs; self_output: LayerNorm(W attention + b + input);
    intermediate: [B, L, I] gelu(W self_output + b); output: LayerNorm(W intermediate + b +
    self_output), the next layer's input.
    """
    key: object
    value: object
    attention: object
    self_output: object
    intermediate: object
    output: object


class StepDropout(nn.Dropout):
    """Dropout whose masks on CPU come from 16-bit draws of a PCG64 stream (an explicit choice).

    The simulation draws dropout masks at every time step, so their cost matters. On CPU,
    one torch random number per element (a serial Mersenne twister) and a mask built with
    boolean ops (which do not vectorise) took a fifth of a training simulation. Here every
    element takes 16 bits of a PCG64 stream (numpy) seeded by one draw of torch's
    generator, so torch.manual_seed and a saved RNG state still fix the masks. An element
    is dropped when its 16 bits fall below round(p * 2^16): the drop probability is p
    rounded to a multiple of 2^-16 (0.1 -> 0.100006), and kept values are scaled by the
    inverse of the rounded keep probability, so the expectation is exactly the input's.
    On GPU, and for p that rounds to 0 or 1, it is torch's dropout.
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


DROPOUTS = {"pcg64_16bit": StepDropout, "torch": nn.Dropout}


class SplitSelfAttention(BertSelfAttention):
    """Self-attention whose keys and values come from their own neuron populations.

    Key and value FCs drive the key and value populations; the attention current is
    softmax(Q K^T / sqrt(d) + mask) V with Q = W_q x_in + b_q and K, V the outputs
    (spike trains or rates) of the key and value populations.
    """

    def attention_current(self, x_in, x_key, x_value, mask):
        """(context [N, L, H], pre-softmax masked scores [N, A, L, L])."""
        query = self.split_heads(self.query(x_in))
        scores = query @ self.split_heads(x_key).transpose(-1, -2) * self.head_size ** -0.5 + mask
        context = self.dropout(scores.softmax(dim=-1)) @ self.split_heads(x_value)
        return context.transpose(1, 2).flatten(2), scores


class SpikingBertAttention(BertAttention):
    """BERT's attention block (the same parameters, so a teacher's load into it) with split self-attention."""
    self_attention_class = SplitSelfAttention


class SpikingBertLayer(BertLayer):
    """One encoder layer: BERT's blocks and the six populations of LayerPopulations."""
    attention_class = SpikingBertAttention

    def __init__(self, config):
        super().__init__(config)
        dropout = DROPOUTS[config.spiking.dropout_masks]
        for block in (self.attention.self, self.attention.output, self.output):
            block.dropout = dropout(block.dropout.p)
        widths = LayerPopulations(*[config.hidden_size] * 4, config.intermediate_size, config.hidden_size)
        self.neurons = nn.ModuleDict({name: make_neuron(config.spiking, width)
                                      for name, width in widths._asdict().items()})

    def forward(self, x_in, mask, fire):
        """Run the populations in order: ``fire[name](current)`` is population ``name``'s output
        (spikes in the simulation, rates in the surrogate). Returns (LayerPopulations of the
        outputs, the pre-softmax masked scores [N, A, L, L])."""
        attention = self.attention.self
        x_key = fire["key"](attention.key(x_in))
        x_value = fire["value"](attention.value(x_in))
        context, scores = attention.attention_current(x_in, x_key, x_value, mask)
        x_att = fire["attention"](context)
        x_so = fire["self_output"](self.attention.output(x_att, x_in))
        x_int = fire["intermediate"](self.intermediate(x_so))
        x_out = fire["output"](self.output(x_int, x_so))
        return LayerPopulations(x_key, x_value, x_att, x_so, x_int, x_out), scores

"""The spiking BERT backbone (simulation, surrogate, implicit differentiation) under the published
code's file name; it is in models/spiking_bert.py."""
from models.spiking_bert import ImplicitBackward, SpikingBertEncoder, SpikingBertModel

__all__ = ["ImplicitBackward", "SpikingBertEncoder", "SpikingBertModel"]

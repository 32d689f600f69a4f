"""Spiking BERT students (models/spiking_bert.py) and their configuration (models/config.py)."""
from models.config import SpikingBertConfig, SpikingConfig
from models.spiking_bert import (SpikingBertForGeneralKD, SpikingBertForSequenceClassification, SpikingBertModel,
                                 SpikingBertOutput)

__all__ = ["SpikingBertConfig", "SpikingConfig", "SpikingBertForGeneralKD", "SpikingBertForSequenceClassification",
           "SpikingBertModel", "SpikingBertOutput"]

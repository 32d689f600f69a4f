"""Spiking BERT students (models/snn_ide_bert.py, models/snn_ide_bert_classi.py) and their configuration
(models/config.py)."""
from models.config import SpikingBertConfig, SpikingConfig
from models.snn_ide_bert import SpikingBertForGeneralKD, SpikingBertModel, SpikingBertOutput
from models.snn_ide_bert_classi import SpikingBertForSequenceClassification

__all__ = ["SpikingBertConfig", "SpikingConfig", "SpikingBertForGeneralKD", "SpikingBertForSequenceClassification",
           "SpikingBertModel", "SpikingBertOutput"]

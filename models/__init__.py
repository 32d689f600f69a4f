"""Spiking BERT students."""
from models.snn_ide_bert import SpikingBertForGeneralKD
from models.snn_ide_bert_classi import SpikingBertForSequenceClassification

__all__ = ["SpikingBertForGeneralKD", "SpikingBertForSequenceClassification"]

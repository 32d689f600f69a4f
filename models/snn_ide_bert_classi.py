"""The classification student under the published code's file name; the model is in models/spiking_bert.py."""
from models.spiking_bert import SpikingBertForSequenceClassification

__all__ = ["SpikingBertForSequenceClassification"]

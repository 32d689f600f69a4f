"""Unlabelled text for general distillation: BERT pre-training instances, Wikipedia text, packaged assets."""

"""Shared pieces of SpikingBERT's distillation scripts: KD losses and layer map, devices,
training loop, checkpoints and resume, output-folder rules, evaluation."""

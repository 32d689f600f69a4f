"""The quick start and the ablation: presets, stages, results."""

"""Spiking BERT building blocks, neuron simulation and the implicit-differentiation training path."""

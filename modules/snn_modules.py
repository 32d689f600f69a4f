"""Spiking neurons and the T-step simulation under the published code's file name.

The neuron rule and its surrogate rates are in modules/neurons.py, the simulation in
modules/simulation.py.
"""
from modules.neurons import IFNeuron, LeakyIFNeuron, NeuronState, make_neuron
from modules.simulation import Populations, Simulation, chunk_steps, simulate, step_bytes

__all__ = ["IFNeuron", "LeakyIFNeuron", "NeuronState", "make_neuron", "Populations", "Simulation", "chunk_steps",
           "simulate", "step_bytes"]

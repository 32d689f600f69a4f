"""Building blocks of the spiking student: neurons, encoder layers, the simulation, the Broyden solver."""

"""Recording the simulation's own spike trains, for tests that check them against a reference."""
from modules.snn_modules import IFNeuron


def record_spikes(monkeypatch):
    """Population state -> the spike tensor [B, ...] of every step, in the order populations first fire
    (embedding, then each layer's key, value, attention, self-output, intermediate, output)."""
    trains = {}
    original = IFNeuron.scan

    def scan(self, current, state, steps):
        spikes = original(self, current, state, steps)
        trains.setdefault(id(state), []).extend(spikes.view(steps, -1, *spikes.shape[1:]).clone().unbind(0))
        return spikes

    monkeypatch.setattr(IFNeuron, "scan", scan)
    return trains

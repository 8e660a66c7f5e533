"""snn-icl: one-shot place learning with frozen synapses in spiking networks and transformers."""

__version__ = "0.1.0"

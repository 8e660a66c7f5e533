"""Neurons: the bottom layer of snn-icl (pure tensor numerics, nothing imported from above).

    alif     ALIF parameters, state, surrogate spike, one step, the autograd reference loop
    bptt     the fast path in torch ops: a whole sequence with a hand-written BPTT
    kernels  the same algorithm compiled with numba (optional accelerator)
    fast     alif_sequence: the fast path, compiled kernels when they can run
"""

from snn_icl.neurons.alif import (ALIFParams, ALIFState, SpikeFunction, alif_sequence_autograd,
                                  alif_step, initial_alif_state, spike_fn)
from snn_icl.neurons.fast import alif_sequence, kernels_available

__all__ = ["ALIFParams", "ALIFState", "SpikeFunction", "spike_fn", "alif_step", "alif_sequence",
           "alif_sequence_autograd", "initial_alif_state", "kernels_available"]

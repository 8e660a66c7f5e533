"""What every LSNN config shares: the network's sizes, its neuron parameters (ms), the scale of
its input current and its readout filter.

The water-maze agent (:class:`~snn_icl.models.lsnn_agent.LSNNConfig`) and the sequence predictor
(:class:`~snn_icl.models.seq_recurrent.SeqLSNNConfig`) extend it with how their inputs are
presented (ms per env step or per token) and what else they need; the neuron defaults are written
once, in :class:`~snn_icl.neurons.alif.ALIFParams`.
"""

from __future__ import annotations

from dataclasses import dataclass

from snn_icl.models.agent import check_value
from snn_icl.neurons.alif import ALIFParams

_NEURON = ALIFParams()


@dataclass(frozen=True)
class LSNNNetworkConfig:
    """Sizes and neuron parameters of an LSNN (Bellec et al. 2018), and its readout filter."""

    n_regular: int = 100
    """Regular (non-adapting, beta = 0) neurons."""
    n_adaptive: int = 100
    """Adaptive neurons (beta > 0, threshold adaptation with tau_a)."""
    tau_m: float = _NEURON.tau_m_ms
    """Membrane time constant (ms)."""
    tau_a: float = _NEURON.tau_a_ms
    """Threshold adaptation time constant (ms); long enough to span trials."""
    v_th: float = _NEURON.v_th
    """Baseline threshold."""
    beta: float = _NEURON.beta
    """Adaptation strength of adaptive neurons."""
    n_ref: int = _NEURON.n_ref
    """Refractory period (1-ms network steps)."""
    gamma: float = _NEURON.gamma
    """Pseudo-derivative dampening."""
    input_scale: float = 1.0
    """Multiplier on the input current."""
    tau_out: float = 20.0
    """Readout filter time constant (ms)."""

    def __post_init__(self) -> None:
        check_value(self.n_regular >= 0, "n_regular", "must be >= 0", self.n_regular)
        check_value(self.n_adaptive >= 0, "n_adaptive", "must be >= 0", self.n_adaptive)
        check_value(self.n_regular + self.n_adaptive >= 1, "n_regular + n_adaptive",
                    "must be >= 1 (zero neurons)", self.n_regular + self.n_adaptive)
        for key in ("tau_out", "input_scale"):
            check_value(getattr(self, key) > 0, key, "must be > 0", getattr(self, key))
        self.neuron_params()  # the neuron keys are checked by ALIFParams

    @property
    def n(self) -> int:
        return self.n_regular + self.n_adaptive

    def neuron_params(self) -> ALIFParams:
        """The neuron parameters of this config (1-ms steps)."""
        return ALIFParams(tau_m_ms=self.tau_m, tau_a_ms=self.tau_a, v_th=self.v_th,
                          beta=self.beta, n_ref=self.n_ref, gamma=self.gamma)

"""Build an LSNN from the neuron's short names (tau_m, tau_a, v_th, beta, n_ref, gamma, dt), as
the tests write them; the package takes an ALIFParams."""

from snn_icl.models.lsnn import LSNN
from snn_icl.neurons import ALIFParams

_NAMES = {"tau_m": "tau_m_ms", "tau_a": "tau_a_ms", "dt": "dt_ms", "v_th": "v_th", "beta": "beta",
          "n_ref": "n_ref", "gamma": "gamma"}


def lsnn(n_in, n_regular, n_adaptive, *, backend="bellec", fast=True, tau_syn=None, **neuron):
    params = ALIFParams(**{_NAMES[k]: v for k, v in neuron.items()})
    return LSNN(n_in, n_regular, n_adaptive, params, backend=backend, fast=fast, tau_syn=tau_syn)

"""The standalone Brian2 script keeps its own constants (it must not import snn_icl): they must
equal the package's single sources (ALIFParams through LSNNConfig, WaterMazeConfig)."""

import dataclasses

import pytest

from snn_icl.brian2.standalone import LSNNSpec, WaterMazeNP
from snn_icl.envs.water_maze import WaterMazeConfig
from snn_icl.models.lsnn_agent import LSNNConfig
from snn_icl.neurons import ALIFParams


def _defaults(cls):
    return {f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING}


def test_neuron_defaults_have_one_source():
    spec, cfg, alif = _defaults(LSNNSpec), LSNNConfig(), ALIFParams()
    assert (cfg.tau_m, cfg.tau_a, cfg.v_th, cfg.beta, cfg.n_ref, cfg.gamma) == (
        alif.tau_m_ms, alif.tau_a_ms, alif.v_th, alif.beta, alif.n_ref, alif.gamma)
    shared = {"tau_m", "tau_a", "v_th", "beta", "n_ref", "tau_out"}
    assert shared <= set(spec), sorted(shared - set(spec))
    for name in shared:
        assert spec[name] == getattr(cfg, name), name


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(WaterMazeConfig)])
def test_numpy_water_maze_defaults_equal_the_torch_env(name):
    assert getattr(WaterMazeNP(), name) == getattr(WaterMazeConfig(), name)


def test_numpy_protocol_options_have_the_torch_names_and_defaults():
    import inspect

    from snn_icl.envs.water_maze import reset_state

    numpy_reset = inspect.signature(WaterMazeNP.reset).parameters
    torch_reset = inspect.signature(reset_state).parameters
    options = [name for name, p in numpy_reset.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert len(options) == 8
    for name in options:
        assert numpy_reset[name].default == torch_reset[name].default, name


def test_numpy_reversal_modes_are_the_torch_env_modes():
    import torch

    from snn_icl.brian2.standalone import REVERSAL_MODES
    from snn_icl.envs.water_maze import reversal_centres

    cfg, platform = WaterMazeConfig(), torch.tensor([[0.3, 0.1]])
    for mode in REVERSAL_MODES:
        reversal_centres(cfg, platform, 1, mode, (0.1, 0.0))
    listed = ", ".join(repr(mode) for mode in REVERSAL_MODES)
    with pytest.raises(ValueError, match=f"must be {listed} or "):
        reversal_centres(cfg, platform, 1, "mirror")

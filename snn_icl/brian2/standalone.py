r"""A frozen LSNN (Bellec et al. 2018) in Brian2, with the water maze in closed loop.

Standalone: this file imports only numpy and brian2 (never torch or the rest of snn_icl), so
``snn-icl export-brian2`` copies it verbatim next to the weights, and a Brian2 user runs it, reads
it and modifies it without the training code. :mod:`snn_icl.brian2.export` builds on it.

The neurons (``integration="discrete"``, the default) follow snn-icl's contract exactly: one
Brian2 time step is one network step of dt = 1 ms, and per step t, with alpha = exp(-dt/tau_m),
rho = exp(-dt/tau_a), input current ``I_in = x_t W_in`` and ``I_rec = z_{t-1} W_rec``::

    a_t = rho a_{t-1} + (1 - rho) z_{t-1}                        adaptation trace
    A_t = v_th + beta a_t                                        adaptive threshold
    v_t = alpha v_{t-1} + (1 - alpha)(I_in + I_rec) - A_t z_{t-1}   reset by subtraction
    z_t = [v_t > A_t] if r_{t-1} == 0 else 0                     spike
    r_t = n_ref if z_t else max(r_{t-1} - 1, 0)                  refractory steps left
    zeta_t = kappa zeta_{t-1} + (1 - kappa) z_t                  readout trace, kappa = exp(-dt/tau_out)

How that maps onto Brian2 (one NeuronGroup of B x n neurons: B independent copies of the
network, one per episode, neuron ``b * n + i`` is neuron i of copy b):

* the update of a, A, v (and the refractory countdown) is a ``run_regularly`` operation in the
  ``groups`` slot: plain assignments, no ODE solver, so the update is the discrete map itself;
* the spike test is the group's ``threshold``; the ``reset`` only marks ``z = 1`` and starts the
  refractory count (the subtraction happens at the next step, as in the equations);
* W_rec is a ``Synapses`` object (no autapses, no connections between copies) whose ``on_pre``
  adds w to ``I_rec`` of the target; spikes of step t-1 are propagated in the ``synapses`` slot
  of step t-1 and consumed by the update of step t, i.e. the one-step lag of ``z_{t-1} W_rec``;
* W_in is applied as a matrix (``I_in = x W_in``, numpy) by a ``network_operation`` every ms,
  which is also where the closed loop reads the readout ``zeta`` and steps the water maze;
* the readout trace zeta (variable ``zeta_out``) is a second ``run_regularly`` in the ``end`` slot.

Biology knobs (:class:`BiologyOptions`), all off by default:

* ``delay_ms``: extra transmission delay of every recurrent synapse (ms, a multiple of dt);
* ``noise_sigma``: Gaussian membrane noise, std ``noise_sigma * sqrt(dt / 1 ms)`` added to v
  every step (voltage units; v_th = 0.01);
* ``silenced_fraction``: that fraction of the n neurons (the same in every copy, drawn from
  ``seed``) never spikes;
* ``integration="exact"`` or ``"euler"``: continuous time instead of the discrete map,
  ``dv/dt = (I_in - v)/tau_m``, ``da/dt = -a/tau_a``, ``dzeta_out/dt = -zeta_out/tau_out`` integrated by
  Brian2 with that method and step ``dt_ms``; a spike at once subtracts the threshold
  (``a += 1 - rho; v -= v_th + beta a``), adds ``(1 - kappa)`` to zeta and jumps the targets' v
  by ``(1 - alpha) w`` (the same charge per spike as the discrete map); refractory period
  ``(n_ref + 1)`` ms (Brian2's ``refractory``), so at dt = 1 ms a neuron is blocked for the
  same steps as in the discrete map. With ``exact`` and dt = 1 ms the only differences from the
  discrete map are that resets and recurrent input arrive one step earlier (decayed once by
  alpha, rho when they are read).

Code generation: ``target="numpy"`` needs no compiler (tests); ``target="cython"`` compiles each
code object once and caches it in ``~/.cython/brian_extensions`` (Brian2's default cache; the
parameters are shared variables, not constants, so other weights or knob values reuse the
compiled code). ``network_operation`` needs Brian2's runtime mode (no C++ standalone).

Command line (weights.npz + params.json in the same folder as this file, or ``--weights DIR``)::

    python lsnn_brian2.py --episodes 8                     # closed loop, latency per trial
    python lsnn_brian2.py --episodes 32 --target cython --noise-sigma 0.002
    python lsnn_brian2.py --episodes 8 --reversal-trial 4           # platform to the opposite place
    python lsnn_brian2.py --episodes 8 --probe-trial 1 --iti-dark-steps 20   # probe, dark ITIs
    python lsnn_brian2.py --input x.npy --out spikes.npz  # open loop: x [T, n_in] or [T, B, n_in]

The maze (:class:`WaterMazeNP`) has the torch env's probe, dark-delay and reversal options
(``--probe-trial``, ``--probe-steps``, ``--dark-after-trial``, ``--dark-steps``,
``--iti-dark-steps``, ``--reversal-trial``, ``--reversal``, ``--displacement``; trials 0-based).

Units: times in ms, voltages in the unit of v_th, lengths in pool radii, env times in env steps.
Shapes: B copies (episodes), n neurons, T steps of 1 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import brian2 as b2
import numpy as np

__all__ = [
    "BiologyOptions",
    "LSNNSpec",
    "BrianLSNN",
    "WaterMazeNP",
    "REVERSAL_MODES",
    "HeadsController",
    "run_episodes",
    "per_trial_latency",
    "main",
]

INTEGRATIONS = ("discrete", "exact", "euler")
TARGETS = ("numpy", "cython", "auto")
WEIGHTS_FILE = "weights.npz"
PARAMS_FILE = "params.json"


# ----------------------------------------------------------------------------- options and spec


def _finite(name: str, value: Any, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class BiologyOptions:
    """What the Brian2 network adds to (or changes in) the trained discrete-time LSNN.

    Attributes:
        delay_ms: extra delay of every recurrent synapse (ms; 0 = the discrete map's one step).
        noise_sigma: membrane noise, std per 1 ms (voltage units; v_th = 0.01).
        silenced_fraction: fraction of neurons (per copy) that never spike, in [0, 1).
        integration: "discrete" (the exact map), or "exact" / "euler" (continuous time, ODEs
            integrated by Brian2 with that method).
        dt_ms: Brian2 time step (ms); 1 for "discrete", and 1 / integer for continuous time.
        seed: which neurons are silenced, and the noise (Brian2's ``seed``).
    """

    delay_ms: float = 0.0
    noise_sigma: float = 0.0
    silenced_fraction: float = 0.0
    integration: str = "discrete"
    dt_ms: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _finite("delay_ms", self.delay_ms)
        _finite("noise_sigma", self.noise_sigma)
        frac = _finite("silenced_fraction", self.silenced_fraction)
        if frac >= 1.0:
            raise ValueError(f"silenced_fraction must be < 1, got {self.silenced_fraction!r}")
        if self.integration not in INTEGRATIONS:
            raise ValueError(f"integration must be one of {INTEGRATIONS}, got {self.integration!r}")
        dt = _finite("dt_ms", self.dt_ms, strict=True)
        per_ms = 1.0 / dt
        if abs(per_ms - round(per_ms)) > 1e-9:
            raise ValueError(f"dt_ms must divide 1 ms (1, 0.5, 0.1, ...), got {self.dt_ms!r}")
        if self.integration == "discrete" and dt != 1.0:
            raise ValueError(f"integration='discrete' is the 1-ms map: dt_ms must be 1, got {self.dt_ms!r}")
        steps = self.delay_ms / dt
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"delay_ms must be a multiple of dt_ms={dt}, got {self.delay_ms!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    @property
    def steps_per_ms(self) -> int:
        """Brian2 steps per 1-ms network step."""
        return int(round(1.0 / self.dt_ms))

    @property
    def is_exact(self) -> bool:
        """True when the network is the trained discrete map (no knob turned)."""
        return self == BiologyOptions(seed=self.seed)


@dataclass(frozen=True, eq=False)
class LSNNSpec:
    """A trained LSNN agent as plain numpy arrays and numbers (float64).

    Attributes:
        w_in: input weights [n_in, n]. w_rec: recurrent weights [n, n] (row = presynaptic),
            zero diagonal. n_regular: regular neurons (beta = 0) come first, then adaptive ones.
        tau_m, tau_a, tau_out: membrane, adaptation and readout time constants (ms).
        v_th, beta: baseline threshold and adaptation strength of the adaptive neurons.
        n_ref: refractory steps. ms_per_step: 1-ms steps per env step.
        input_mode: "current" (obs * input_scale held for ms_per_step ms) or "poisson"
            (Bernoulli spikes, probability obs * max_rate_hz * 1 ms per ms).
        w_mean [2, n], b_mean [2], w_value [n], b_value, log_std [2]: the linear heads on zeta.
    """

    w_in: np.ndarray
    w_rec: np.ndarray
    n_regular: int
    tau_m: float = 20.0
    tau_a: float = 1200.0
    v_th: float = 0.01
    beta: float = 1.7
    n_ref: int = 2
    tau_out: float = 20.0
    ms_per_step: int = 5
    input_mode: str = "current"
    input_scale: float = 1.0
    max_rate_hz: float = 200.0
    w_mean: np.ndarray | None = None
    b_mean: np.ndarray | None = None
    w_value: np.ndarray | None = None
    b_value: float = 0.0
    log_std: np.ndarray | None = None

    def __post_init__(self) -> None:
        w_in = np.asarray(self.w_in, dtype=np.float64)
        w_rec = np.asarray(self.w_rec, dtype=np.float64)
        if w_in.ndim != 2 or w_rec.ndim != 2 or w_rec.shape != (w_in.shape[1], w_in.shape[1]):
            raise ValueError(f"need w_in [n_in, n] and w_rec [n, n], got {w_in.shape} and {w_rec.shape}")
        if np.any(np.diag(w_rec) != 0):
            raise ValueError("w_rec must have a zero diagonal (no autapses)")
        n = w_in.shape[1]
        if not 0 <= int(self.n_regular) <= n:
            raise ValueError(f"n_regular must be in [0, {n}], got {self.n_regular!r}")
        if self.input_mode not in ("current", "poisson"):
            raise ValueError(f"input_mode must be 'current' or 'poisson', got {self.input_mode!r}")
        if int(self.ms_per_step) < 1 or int(self.n_ref) < 0:
            raise ValueError(f"need ms_per_step >= 1 and n_ref >= 0, got {self.ms_per_step!r}, "
                             f"{self.n_ref!r}")
        for name in ("tau_m", "tau_a", "tau_out", "v_th"):
            _finite(name, getattr(self, name), strict=True)
        heads = {"w_mean": (2, n), "b_mean": (2,), "w_value": (n,), "log_std": (2,)}
        for name, shape in heads.items():
            value = getattr(self, name)
            value = np.zeros(shape) if value is None else np.asarray(value, dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "w_in", w_in)
        object.__setattr__(self, "w_rec", w_rec)

    @property
    def n_in(self) -> int:
        return self.w_in.shape[0]

    @property
    def n(self) -> int:
        return self.w_in.shape[1]

    @property
    def alpha(self) -> float:
        return math.exp(-1.0 / self.tau_m)

    @property
    def rho(self) -> float:
        return math.exp(-1.0 / self.tau_a)

    @property
    def kappa(self) -> float:
        return math.exp(-1.0 / self.tau_out)

    def beta_vector(self) -> np.ndarray:
        """Adaptation strength per neuron [n]: 0 for the regular, beta for the adaptive ones."""
        beta = np.zeros(self.n)
        beta[self.n_regular:] = self.beta
        return beta

    def save(self, directory: str | Path, env: dict[str, Any] | None = None) -> None:
        """Write ``weights.npz`` (arrays) and ``params.json`` (numbers; ``env``: the water-maze
        parameters of :class:`WaterMazeNP` the network was trained on) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k) for k in ("w_in", "w_rec", "w_mean", "b_mean", "w_value", "log_std")}
        np.savez(directory / WEIGHTS_FILE, **arrays)
        params = {k: getattr(self, k) for k in ("n_regular", "tau_m", "tau_a", "v_th", "beta", "n_ref",
                                               "tau_out", "ms_per_step", "input_mode", "input_scale",
                                               "max_rate_hz", "b_value")}
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
        if env is not None:
            params["env"] = dict(env)
        (directory / PARAMS_FILE).write_text(json.dumps(params, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "LSNNSpec":
        """Read what :meth:`save` wrote (``allow_pickle=False``: arrays only)."""
        directory = Path(directory)
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as arrays:
            weights = {k: arrays[k] for k in arrays.files}
        params = json.loads((directory / PARAMS_FILE).read_text())
        params.pop("env", None)
        return cls(**weights, **params)


# ----------------------------------------------------------------------------- the Brian2 network

_DISCRETE_MODEL = """
v : 1                      # membrane potential v_t
a : 1                      # adaptation trace a_t
A : 1                      # threshold A_t = v_th + beta a_t
z : 1                      # spike of the last step, z_{t-1} during the update
r : 1                      # refractory steps left
zeta_out : 1               # readout trace zeta (filtered spikes; "zeta" is a sympy function)
I_in : 1                   # input current x_t W_in (held by the network operation)
I_rec : 1                  # recurrent input z_{t-1} W_rec (accumulated by the synapses)
beta : 1 (constant)
silent : boolean (constant)
alpha : 1 (shared, constant)
rho : 1 (shared, constant)
kappa : 1 (shared, constant)
v_th : 1 (shared, constant)
n_ref : 1 (shared, constant)
noise_std : 1 (shared, constant)
"""

# The exact discrete map; the refractory countdown runs before the spike test, so the test sees
# r_{t-1} - 1 clipped, and the reset's n_ref + 1 becomes n_ref there.
_DISCRETE_STEP = """
a = rho * a + (1 - rho) * z
A = v_th + beta * a
v = alpha * v + (1 - alpha) * (I_in + I_rec) - A * z
r = clip(r - 1, 0, n_ref)
z = 0
I_rec = 0
"""

_CONTINUOUS_MODEL = """
dv/dt = (I_in - v) / tau_m : 1
da/dt = -a / tau_a : 1
dzeta_out/dt = -zeta_out / tau_out : 1
A = v_th + beta * a : 1
I_in : 1
beta : 1 (constant)
silent : boolean (constant)
tau_m : second (shared, constant)
tau_a : second (shared, constant)
tau_out : second (shared, constant)
rho : 1 (shared, constant)
kappa : 1 (shared, constant)
v_th : 1 (shared, constant)
noise_std : 1 (shared, constant)
"""


class BrianLSNN:
    """B copies of a frozen LSNN as one Brian2 network (runtime mode).

    Args:
        spec: the trained network (:class:`LSNNSpec`).
        batch: B independent copies (episodes), neuron ``b * n + i`` is neuron i of copy b.
        options: :class:`BiologyOptions` (default: the exact discrete map).
        target: Brian2 code generation target, "numpy" (no compiler), "cython" (compiled once,
            cached in ``~/.cython/brian_extensions``) or "auto" (cython if a compiler works).
        record_state: also record v and A (True) or the named variables (e.g. ("A",)) after
            every 1-ms update (a StateMonitor; memory 8 B n T bytes per variable).
    """

    def __init__(self, spec: LSNNSpec, batch: int = 1, options: BiologyOptions | None = None, *,
                 target: str = "numpy", record_state: bool | tuple[str, ...] = False) -> None:
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.spec, self.batch = spec, int(batch)
        self.options = options if options is not None else BiologyOptions()
        self.target = target
        b2.prefs.codegen.target = target  # global in Brian2; read when the network first runs
        # Fixed object and clock names (unique within a network is all Brian2 needs): generated
        # code names its arrays after the objects, so fixed names let every instance (any batch
        # size, weights or constants) reuse the compiled code.
        self.dt = self.options.dt_ms * b2.ms
        self.clock = b2.Clock(self.dt, name="lsnn_clock")
        self.ms_clock = b2.Clock(1 * b2.ms, name="lsnn_ms_clock")  # input, readout, recordings
        self.group = self._neurons()
        self.synapses = self._recurrent_synapses()
        self.spikes = b2.SpikeMonitor(self.group, name="lsnn_spikes")
        # A permanent 1-ms network operation; what it does is set per run (input, closed loop).
        self._tick: Callable[[int], None] = lambda ms: None
        self._operation = b2.NetworkOperation(lambda t: self._tick(int(round(float(t / b2.ms)))),
                                              clock=self.ms_clock, when="start", name="lsnn_io")
        # run_regularly operations belong to the group and join the network with it.
        objects = [self.group, self.synapses, self.spikes, self._operation]
        self.state_monitor = None
        if record_state:
            names = ["v", "A"] if record_state is True else list(record_state)
            self.state_monitor = b2.StateMonitor(self.group, names, record=True,
                                                 when="after_groups", clock=self.ms_clock, name="lsnn_state")
            objects.append(self.state_monitor)
        self.net = b2.Network(*objects)
        self.net.store("initial")
        self._runs = 0

    # -- construction

    @property
    def n_total(self) -> int:
        return self.batch * self.spec.n

    def _silent_mask(self) -> np.ndarray:
        """Silenced neurons [n] (bool), the same in every copy."""
        n = self.spec.n
        k = int(round(self.options.silenced_fraction * n))
        silent = np.zeros(n, dtype=bool)
        silent[np.random.default_rng(self.options.seed).choice(n, size=k, replace=False)] = True
        return silent

    def _neurons(self) -> b2.NeuronGroup:
        spec, opt = self.spec, self.options
        if opt.integration == "discrete":
            group = b2.NeuronGroup(self.n_total, _DISCRETE_MODEL, threshold="v > A and r == 0 and not silent",
                                   reset="z = 1\nr = n_ref + 1", method="exact", clock=self.clock,
                                   name="lsnn")
            group.alpha, group.n_ref = spec.alpha, spec.n_ref
            group.run_regularly(_DISCRETE_STEP, when="groups", order=0, name="lsnn_step")
            group.run_regularly("zeta_out = kappa * zeta_out + (1 - kappa) * z", when="end",
                                name="lsnn_readout")
        else:
            group = b2.NeuronGroup(
                self.n_total, _CONTINUOUS_MODEL, threshold="v > A and not silent",
                reset="a += 1 - rho\nv -= v_th + beta * a\nzeta_out += 1 - kappa",
                refractory=(spec.n_ref + 1) * b2.ms, method=opt.integration, clock=self.clock, name="lsnn")
            group.tau_m, group.tau_a = spec.tau_m * b2.ms, spec.tau_a * b2.ms
            group.tau_out = spec.tau_out * b2.ms
        group.rho, group.kappa, group.v_th = spec.rho, spec.kappa, spec.v_th
        group.beta = np.tile(spec.beta_vector(), self.batch)
        group.silent = np.tile(self._silent_mask(), self.batch)
        group.noise_std = opt.noise_sigma * math.sqrt(opt.dt_ms)
        if opt.noise_sigma > 0:  # after the update, before the spike test
            group.run_regularly("v += noise_std * randn()", when="groups", order=1, name="lsnn_noise")
        return group

    def _recurrent_synapses(self) -> b2.Synapses:
        """W_rec within each copy, no autapses; the discrete map's synapses feed I_rec, continuous
        time jumps v by (1 - alpha) w."""
        spec, n = self.spec, self.spec.n
        pre, post = np.nonzero(~np.eye(n, dtype=bool))
        weight = spec.w_rec[pre, post]
        if self.options.integration == "discrete":
            on_pre = "I_rec_post += w"
        else:
            on_pre, weight = "v_post += w", (1.0 - spec.alpha) * weight
        syn = b2.Synapses(self.group, self.group, "w : 1 (constant)", on_pre=on_pre,
                          delay=self.options.delay_ms * b2.ms, clock=self.clock, name="lsnn_w_rec")
        offsets = (np.arange(self.batch) * n)[:, None]
        syn.connect(i=(offsets + pre).ravel(), j=(offsets + post).ravel())
        syn.w = np.tile(weight, self.batch)
        return syn

    # -- state access (live views of Brian2's arrays: runtime mode, numpy and cython targets)

    def _array(self, name: str) -> np.ndarray:
        return self.group.variables[name].get_value()

    def zeta(self) -> np.ndarray:
        """Readout trace [B, n] at the current time (a copy)."""
        return self._array("zeta_out").reshape(self.batch, self.spec.n).copy()

    def set_input(self, x: np.ndarray) -> None:
        """Set the input of the coming 1-ms step(s): x [B, n_in] -> I_in = x W_in [B * n]."""
        self._array("I_in")[:] = (np.asarray(x, dtype=np.float64) @ self.spec.w_in).ravel()

    def readout(self, zeta: np.ndarray) -> dict[str, np.ndarray]:
        """The linear heads on zeta [B, n]: mean [B, 2] (velocity), value [B]."""
        s = self.spec
        return {"mean": zeta @ s.w_mean.T + s.b_mean, "value": zeta @ s.w_value + s.b_value}

    # -- running

    def _fresh(self, seed: int | None) -> None:
        """Back to t = 0 with all state zero (spike queues and monitors emptied); ``seed`` seeds
        the membrane noise (``brian2.seed``, which also seeds numpy's global generator)."""
        if self._runs:
            self.net.restore("initial")
        self._runs += 1
        b2.seed(self.options.seed if seed is None else seed)

    def _run(self, duration_ms: float) -> None:
        self.net.run(duration_ms * b2.ms, namespace={})

    def spike_array(self, steps_ms: int) -> np.ndarray:
        """Spikes of the last run as counts per 1-ms bin [steps_ms, B, n] (0/1 in discrete time)."""
        z = np.zeros((steps_ms, self.n_total), dtype=np.int64)
        t_ms = np.floor(np.asarray(self.spikes.t / b2.ms) + 1e-6).astype(np.int64)
        np.add.at(z, (t_ms, np.asarray(self.spikes.i)), 1)
        return z.reshape(steps_ms, self.batch, self.spec.n)

    def run_input(self, x: np.ndarray, *, seed: int | None = None) -> dict[str, np.ndarray]:
        """Open loop: input x [T, B, n_in] (or [T, n_in] for B = 1), one row per 1-ms step.

        Returns ``z`` [T, B, n] (spike counts per ms; 0/1 in discrete time) and, with
        ``record_state``, ``v`` and ``A`` [T, B, n] after each 1-ms step's update.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3 or x.shape[1:] != (self.batch, self.spec.n_in) or len(x) < 1:
            raise ValueError(f"x must have shape [T >= 1, {self.batch}, {self.spec.n_in}], "
                             f"got {list(x.shape)}")
        self._fresh(seed)
        current = (x.reshape(-1, self.spec.n_in) @ self.spec.w_in).reshape(len(x), -1)
        self._tick = lambda ms: self._array("I_in").__setitem__(slice(None), current[ms])
        self._run(len(x))
        return {"z": self.spike_array(len(x)), **self.recorded()}

    def recorded(self) -> dict[str, np.ndarray]:
        """The state variables recorded in the last run, each [T, B, n] (1-ms steps)."""
        if self.state_monitor is None:
            return {}
        shape = (self.batch, self.spec.n, -1)
        return {name: np.ascontiguousarray(
                    getattr(self.state_monitor, name)[:].reshape(shape).transpose(2, 0, 1))
                for name in self.state_monitor.record_variables}

    def run_closed_loop(self, controller: Any, env_steps: int, *, seed: int | None = None) -> np.ndarray:
        """Closed loop for ``env_steps`` env steps of ``spec.ms_per_step`` ms each.

        ``controller.start()`` returns the input of env step 0, ``[k, B, n_in]`` (one row per ms);
        at the start of every later env step (and once after the last one)
        ``controller.step(zeta [B, n])`` acts on the readout, steps the environment and returns
        the next input. Returns the spikes [env_steps * k, B, n] (counts per ms).
        """
        k = self.spec.ms_per_step
        self._fresh(seed)
        pending = {"x": np.asarray(controller.start(), dtype=np.float64)}

        def tick(ms: int) -> None:
            step, j = divmod(ms, k)
            if j == 0 and step > 0:
                pending["x"] = np.asarray(controller.step(self.zeta()), dtype=np.float64)
            if j == 0 or self.spec.input_mode == "poisson":  # currents are held for k ms
                self.set_input(pending["x"][j])

        self._tick = tick
        self._run(env_steps * k)
        controller.step(self.zeta())  # the last env step's action
        return self.spike_array(env_steps * k)


# ----------------------------------------------------------------------------- water maze (numpy)

REVERSAL_MODES = ("opposite", "displacement")
"""Where ``reversal_platform`` moves the platform (or give [B, 2] centres); the torch env's modes."""


def _int_steps(name: str, value: Any, batch: int, minimum: int) -> np.ndarray:
    """An integer (or [B] integers) >= ``minimum`` as [B] int64; ValueError naming ``name``."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.shape not in ((), (batch,)) or np.any(arr < minimum):
        raise ValueError(f"{name} must be an integer >= {minimum} (or [{batch}] of them), got {value!r}")
    return np.broadcast_to(arr, (batch,)).astype(np.int64)


@dataclass(frozen=True)
class WaterMazeNP:
    """The Morris water maze of snn_icl (``snn_icl.envs.water_maze``) in numpy, B episodes.

    Same rules and numbers as the torch env (tested against it); only the random draws differ
    (numpy instead of torch), so pass ``platform`` and ``release_angles`` to reproduce an episode.
    The protocols of the torch env's ``reset`` are here with the same names and meaning (see
    :meth:`reset`): a probe (or Atlantis) trial, dark delays, and a reversal. Not here: the
    visible-platform input (``cue_channel``), the reference-memory places and Atlantis draws.
    Lengths in pool radii, times in env steps.
    """

    pool_radius: float = 1.0
    platform_radius: float = 0.1
    platform_margin: float = 0.1
    v_max: float = 0.1
    trial_timeout: int = 60
    rest_steps: int = 3
    episode_steps: int = 200
    place_grid: int = 7
    place_sigma: float = 0.25
    release: str = "random"
    cue_channel: bool = False  # the visible-platform input is not in the standalone maze
    recall_cue_steps: int = 0  # the last steps of a dark delay show the recall cue ...
    recall_cue_level: float = 0.1  # ... every place cell at this activity
    recall_cue_input: str = "place_cells"  # or "channel": one more entry, last, lit instead

    def __post_init__(self) -> None:
        if self.cue_channel:
            raise ValueError("cue_channel: the standalone Brian2 maze has no visible-platform input")
        if self.recall_cue_input not in ("place_cells", "channel"):
            raise ValueError(f"recall_cue_input must be 'place_cells' or 'channel', got "
                             f"{self.recall_cue_input!r}")

    @property
    def max_trials(self) -> int:
        return self.episode_steps // (1 + self.rest_steps) + 1

    @property
    def platform_centre_radius(self) -> float:
        """Radius of the disk of allowed platform centres (pool radii)."""
        return self.pool_radius - self.platform_radius - self.platform_margin

    def centres(self) -> np.ndarray:
        """Place-cell centres [G^2, 2], x fastest."""
        g, r = self.place_grid, self.pool_radius
        axis = np.zeros(1) if g == 1 else np.linspace(-r, r, g)
        ys, xs = np.meshgrid(axis, axis, indexing="ij")
        return np.stack([xs.ravel(), ys.ravel()], axis=-1)

    def reset(self, batch: int, rng: np.random.Generator, platform: np.ndarray | None = None,
              release_angles: np.ndarray | None = None, *, probe_trial: int | np.ndarray | None = None,
              probe_steps: int | np.ndarray | None = None, dark_after_trial: int = -1,
              dark_steps: int | np.ndarray = 0, iti_dark_steps: int = 0, reversal_trial: int = -1,
              reversal_platform: str | np.ndarray = "opposite",
              reversal_displacement: tuple[float, float] | np.ndarray | None = None
              ) -> dict[str, np.ndarray]:
        """New episodes: state dict of [B, ...] arrays; ``state["platform"]`` [B, 2] is always the
        platform in force (it changes at a reversal).

        Protocols (the torch env's ``reset`` options; ints, or [B] per episode where marked):

        * ``probe_trial`` (int or [B]; -1 none): trial index whose swim has no platform (no reward,
          no contact); it runs to the time-out (latency ``trial_timeout``, reward 0), the swimmer
          is then put on the platform, which is back. ``probe_steps`` (int or [B], swim steps;
          default the whole trial): the platform rises after that many swim steps instead.
        * ``dark_after_trial`` (-1 none) and ``dark_steps`` (int or [B], env steps): after the rest
          that ends that trial, a delay with an all-zero observation and actions ignored.
          ``iti_dark_steps`` (env steps): such a delay after every trial (``dark_steps`` replaces
          it after trial ``dark_after_trial``). Dark steps count towards ``episode_steps``.
        * ``reversal_trial`` (1 .. max_trials - 1; -1 none): at the start of that trial the
          platform moves, for the rest of the episode, to ``reversal_platform``: "opposite"
          (``-platform``), "displacement" (``platform + reversal_displacement`` (dx, dy) or [B, 2],
          pool radii, pulled radially back onto the disk of allowed centres) or [B, 2] centres.
        """
        u = rng.random((batch, 2))
        radius = self.platform_centre_radius * np.sqrt(u[:, 0])
        drawn = np.stack([radius * np.cos(2 * np.pi * u[:, 1]), radius * np.sin(2 * np.pi * u[:, 1])], -1)
        u_rel = rng.random((batch, self.max_trials))
        if self.release == "cardinal":  # E, N, W, S
            angles = np.floor(4 * u_rel).clip(max=3) * np.pi / 2
        else:
            angles = 2 * np.pi * u_rel
        if release_angles is not None:
            given = np.asarray(release_angles, dtype=np.float64)
            given = np.broadcast_to(given, (batch, given.shape[-1]))
            m = min(given.shape[1], self.max_trials)
            angles = np.concatenate([given[:, :m], angles[:, m:]], axis=1)
        plat = drawn if platform is None else np.broadcast_to(np.asarray(platform, dtype=np.float64),
                                                              (batch, 2)).copy()
        zeros = np.zeros(batch, dtype=np.int64)
        pos = self._wall(angles[:, 0])
        probe = _int_steps("probe_trial", -1 if probe_trial is None else probe_trial, batch, -1)
        state = {"position": pos, "platform": plat, "release_angles": angles, "trial": zeros.copy(),
                 "trial_step": zeros.copy(), "rest_left": zeros.copy(), "prev_reward": np.zeros(batch),
                 "probe_trial": probe, "platform_present": probe != 0,
                 "probe_steps": _int_steps("probe_steps", self.trial_timeout if probe_steps is None
                                           else probe_steps, batch, 0),
                 "dark_after": _int_steps("dark_after_trial", dark_after_trial, 1, -1).repeat(batch),
                 "dark_steps": _int_steps("dark_steps", dark_steps, batch, 0),
                 "iti_dark_steps": _int_steps("iti_dark_steps", iti_dark_steps, 1, 0).repeat(batch),
                 "dark_left": zeros.copy()}
        reversal_to = self.reversal_centres(plat, reversal_trial, reversal_platform, reversal_displacement)
        return {**state, "reversal_trial": np.full(batch, reversal_trial, dtype=np.int64),
                "reversal_platform": reversal_to}

    def reversal_centres(self, platform: np.ndarray, reversal_trial: int,
                         reversal_platform: str | np.ndarray = "opposite",
                         displacement: tuple[float, float] | np.ndarray | None = None) -> np.ndarray:
        """Platform centres [B, 2] from the start of trial ``reversal_trial`` on (see :meth:`reset`);
        ``platform`` [B, 2] itself when ``reversal_trial`` is -1. The arguments are checked even then."""
        if isinstance(reversal_trial, bool) or not isinstance(reversal_trial, (int, np.integer)) \
                or not (reversal_trial == -1 or 1 <= reversal_trial < self.max_trials):
            raise ValueError(f"reversal_trial must be a trial index in 1..{self.max_trials - 1} "
                             f"(or -1 for none), got {reversal_trial!r}")
        if isinstance(reversal_platform, str):
            moved = self._reversal_mode(platform, reversal_platform, displacement)
        else:
            moved = self._check_centres(platform.shape[0], reversal_platform)
        return platform.copy() if reversal_trial == -1 else moved

    def _reversal_mode(self, platform: np.ndarray, mode: str,
                       displacement: tuple[float, float] | np.ndarray | None) -> np.ndarray:
        if mode not in REVERSAL_MODES:
            raise ValueError(f"reversal_platform must be one of {REVERSAL_MODES} or [B, 2] centres, "
                             f"got {mode!r}")
        if mode == "opposite":
            return -platform  # the mirror image through the pool centre is always allowed
        if displacement is None:
            raise ValueError("reversal_platform='displacement' needs reversal_displacement (dx, dy)")
        d = np.asarray(displacement, dtype=np.float64)
        if d.shape not in ((2,), (platform.shape[0], 2)) or not np.all(np.isfinite(d)):
            raise ValueError(f"reversal_displacement must be finite (dx, dy) or [B, 2], got {displacement!r}")
        moved = platform + d
        limit = self.platform_centre_radius
        norm = np.linalg.norm(moved, axis=-1, keepdims=True)
        return moved * (limit / np.maximum(norm, limit)) if limit > 0 else moved * 0

    def _check_centres(self, batch: int, centres: Any) -> np.ndarray:
        """Given reversal centres [B, 2] or [2], inside the disk of allowed centres."""
        p = np.asarray(centres, dtype=np.float64)
        if p.shape not in ((2,), (batch, 2)) or not np.all(np.isfinite(p)):
            raise ValueError(f"reversal_platform centres must be finite, of shape [{batch}, 2] or [2], "
                             f"got {centres!r}")
        if np.any(np.linalg.norm(p, axis=-1) > self.platform_centre_radius + 1e-6 * self.pool_radius):
            raise ValueError(f"reversal_platform centres must lie within {self.platform_centre_radius:.4g} "
                             f"of the pool centre, got {centres!r}")
        return np.broadcast_to(p, (batch, 2)).copy()

    def _wall(self, angle: np.ndarray) -> np.ndarray:
        return self.pool_radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)

    def observe(self, s: dict[str, np.ndarray]) -> np.ndarray:
        """Observation [B, G^2 + 2] (+ 1 with the recall cue on its own channel): place cells,
        platform contact, previous reward; all zeros in the dark but for the recall cue on its
        last ``recall_cue_steps`` steps (every place cell at ``recall_cue_level``, or the last
        entry with ``recall_cue_input = "channel"``)."""
        diff = s["position"][:, None, :] - self.centres()[None]
        cells = np.exp(-(diff * diff).sum(-1) / (2.0 * self.place_sigma * self.place_sigma))
        contact = ((s["rest_left"] > 0) & s["platform_present"]).astype(np.float64)
        parts = [cells, contact[:, None], s["prev_reward"][:, None]]
        channel = self.recall_cue_steps > 0 and self.recall_cue_input == "channel"
        if channel:
            parts.append(np.zeros_like(contact)[:, None])
        obs = np.concatenate(parts, axis=-1)
        obs = obs * (s["dark_left"] == 0)[:, None]  # times exactly 1.0 outside the dark
        if self.recall_cue_steps:
            cue = (s["dark_left"] > 0) & (s["dark_left"] <= self.recall_cue_steps)
            lit = slice(-1, None) if channel else slice(0, self.place_grid**2)
            obs[:, lit] += self.recall_cue_level * cue[:, None]
        return obs

    def _swim(self, old: np.ndarray, c: np.ndarray,
              action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Move by ``v_max`` times the clipped action, kept in the pool: (new [B, 2], closest
        point of the swim segment to the platform [B, 2], touched [B]: within platform_radius)."""
        R, pr = self.pool_radius, self.platform_radius
        a = np.clip(action, -1.0, 1.0)
        a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1.0)
        new = old + self.v_max * a
        new = new * (R / np.maximum(np.linalg.norm(new, axis=-1, keepdims=True), R))
        d = new - old
        dd = (d * d).sum(-1)
        moved = dd > 0
        t = np.where(moved, ((c - old) * d).sum(-1) / np.where(moved, dd, 1.0), 0.0).clip(0.0, 1.0)
        closest = old + t[:, None] * d
        return new, closest, ((closest - c) ** 2).sum(-1) <= pr * pr

    def _next_trial(self, s: dict[str, np.ndarray], trial_end: np.ndarray, swimming: np.ndarray,
                    in_dark: np.ndarray, rest_left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start [B]: the next trial starts with this step, dark_left [B] env steps). A trial
        starts after its predecessor's last rest step, or after the dark delay that follows it."""
        rest_done = (rest_left == 0) & (trial_end | (~swimming & ~in_dark))
        delay = np.where(s["trial"] == s["dark_after"], s["dark_steps"], s["iti_dark_steps"])
        enter_dark = rest_done & (delay > 0)
        dark_left = np.where(enter_dark, delay, np.where(in_dark, s["dark_left"] - 1, s["dark_left"]))
        return (rest_done & ~enter_dark) | (in_dark & (dark_left == 0)), dark_left

    def step(self, s: dict[str, np.ndarray],
             action: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One env step: (new state, info with reward, trial_end, latency, ended_trial, trial,
        platform in force [B, 2], platform_present and dark [B] after the step)."""
        old, c = s["position"], s["platform"]
        in_dark = s["dark_left"] > 0
        swimming = (s["rest_left"] == 0) & ~in_dark  # resting or in the dark: the action is ignored
        new, closest, touched = self._swim(old, c, action)
        trial_step = np.where(swimming, s["trial_step"] + 1, s["trial_step"])
        # an Atlantis probe's platform rises after probe_steps swim steps (a classic probe: never)
        risen = swimming & (s["trial"] == s["probe_trial"]) & (trial_step > s["probe_steps"])
        present = s["platform_present"] | risen
        reached = swimming & present & touched
        timed_out = swimming & ~reached & (trial_step >= self.trial_timeout)
        trial_end = reached | timed_out
        pos = np.where(swimming[:, None], new, old)
        pos = np.where(reached[:, None], closest, pos)
        pos = np.where(timed_out[:, None], c, pos)  # Morris protocol: placed on it (a probe's too)
        rest_left = np.where(trial_end, self.rest_steps,
                             np.where(swimming | in_dark, s["rest_left"], s["rest_left"] - 1))
        start, dark_left = self._next_trial(s, trial_end, swimming, in_dark, rest_left)
        trial = s["trial"] + start
        angles = s["release_angles"]
        angle = angles[np.arange(len(trial)), np.minimum(trial, angles.shape[1] - 1)]
        pos = np.where(start[:, None], self._wall(angle), pos)
        reverse = start & (trial == s["reversal_trial"])
        platform = np.where(reverse[:, None], s["reversal_platform"], c)
        # a probe's platform is back once it timed out; the next trial's is absent if it is the probe
        present = np.where(start, trial != s["probe_trial"], present | timed_out)
        info = {"reward": reached.astype(np.float64), "trial_end": trial_end,
                "latency": np.where(trial_end, trial_step, 0),
                "ended_trial": np.where(trial_end, s["trial"], -1), "trial": trial,
                "platform": platform, "platform_present": present, "dark": dark_left > 0}
        new_state = {**s, "position": pos, "platform": platform, "platform_present": present,
                     "trial": trial, "trial_step": np.where(start, 0, trial_step),
                     "rest_left": rest_left, "dark_left": dark_left, "prev_reward": info["reward"]}
        return new_state, info


class HeadsController:
    """Closed loop of :class:`BrianLSNN` with :class:`WaterMazeNP`: the readout's policy mean
    (deterministic) swims; records latency per trial, and position and platform in force
    ([B, 2] each, pool radii) after every env step (``positions``, ``platforms``, the reset's first).

    Args:
        net: the Brian2 network (B copies = B episodes).
        env: the maze rules. rng: draws of the episodes (and of Poisson input spikes).
        platform, release_angles: optional fixed episodes ([B, 2], [B, trials] radians).
        protocol: the protocol options of :meth:`WaterMazeNP.reset` (``probe_trial``,
            ``dark_steps``, ``reversal_trial``, ...).
    """

    def __init__(self, net: BrianLSNN, env: WaterMazeNP, rng: np.random.Generator,
                 platform: np.ndarray | None = None, release_angles: np.ndarray | None = None,
                 **protocol: Any) -> None:
        self.net, self.env, self.rng = net, env, rng
        self.state = env.reset(net.batch, rng, platform, release_angles, **protocol)
        self.latency = np.full((net.batch, env.max_trials), np.nan)
        self.positions = [self.state["position"].copy()]
        self.platforms = [self.state["platform"].copy()]
        self.reward = np.zeros(net.batch)
        self.steps = 0

    def _encode(self, obs: np.ndarray) -> np.ndarray:
        """obs [B, n_in] -> network input [k, B, n_in] (current or Poisson spikes)."""
        s = self.net.spec
        x = np.broadcast_to(obs, (s.ms_per_step, *obs.shape))
        if s.input_mode == "current":
            return x * s.input_scale
        p = np.clip(x * s.max_rate_hz * 1e-3, 0.0, 1.0)
        return (self.rng.random(p.shape) < p).astype(np.float64)

    def start(self) -> np.ndarray:
        return self._encode(self.env.observe(self.state))

    def step(self, zeta: np.ndarray) -> np.ndarray | None:
        action = self.net.readout(zeta)["mean"]
        self.state, info = self.env.step(self.state, action)
        self.steps += 1
        self.positions.append(self.state["position"].copy())
        self.platforms.append(self.state["platform"].copy())
        self.reward += info["reward"]
        b = np.nonzero(info["trial_end"])[0]
        self.latency[b, info["ended_trial"][b]] = info["latency"][b]
        return self._encode(self.env.observe(self.state))


def per_trial_latency(latency: np.ndarray, trials: int = 6) -> dict[str, Any]:
    """Median latency per trial index over episodes (NaN: not reached), and the one-shot ratio
    latency trial 1 / median latency over trials 2-4 (env steps)."""
    table = latency[:, :trials]
    med = [float(np.nanmedian(col)) if np.any(~np.isnan(col)) else None for col in table.T]
    later = table[:, 1:4].ravel()
    later = later[~np.isnan(later)]
    later_med = float(np.median(later)) if len(later) else None
    ratio = med[0] / later_med if med and med[0] is not None and later_med else None
    return {"latency_by_trial": med, "latency_trials2_4": later_med, "one_shot_ratio": ratio}


def run_episodes(spec: LSNNSpec, env: WaterMazeNP, episodes: int, seed: int = 0, *,
                 options: BiologyOptions | None = None, target: str = "numpy",
                 batch: int = 32, **protocol: Any) -> dict[str, Any]:
    """Closed-loop episodes of the numpy water maze, in batches of at most ``batch`` copies.

    ``protocol``: the options of :meth:`WaterMazeNP.reset` (``probe_trial``, ``probe_steps``,
    ``dark_after_trial``, ``dark_steps``, ``iti_dark_steps``, ``reversal_trial``,
    ``reversal_platform``, ``reversal_displacement``), the same for every episode; checked before
    any network is built. Returns latency [episodes, max_trials] (env steps, NaN: trial not
    finished; a probe trial reports ``trial_timeout``), platform [episodes, episode_steps + 1, 2]
    (the platform in force before and after every env step, pool radii), goals per episode and
    the per-trial summary of :func:`per_trial_latency`.
    """
    env.reset(1, np.random.default_rng(0), **protocol)  # a bad option fails here, not after a build
    rng = np.random.default_rng(seed)
    latencies, goals, platforms = [], [], []
    nets: dict[int, BrianLSNN] = {}
    for start in range(0, episodes, batch):
        size = min(batch, episodes - start)
        if size not in nets:  # one network per batch size; later batches restore it
            nets[size] = BrianLSNN(spec, size, options, target=target)
        ctrl = HeadsController(nets[size], env, rng, **protocol)
        nets[size].run_closed_loop(ctrl, env.episode_steps, seed=seed + start)
        latencies.append(ctrl.latency)
        goals.append(ctrl.reward)
        platforms.append(np.stack(ctrl.platforms, axis=1))
    latency = np.concatenate(latencies)
    return {"latency": latency, "goals_per_episode": float(np.concatenate(goals).mean()),
            "platform": np.concatenate(platforms), **per_trial_latency(latency)}


# ----------------------------------------------------------------------------- command line


def _add_protocol_flags(parser: argparse.ArgumentParser) -> None:
    """The protocol options of :meth:`WaterMazeNP.reset` as flags (trials 0-based, env steps)."""
    group = parser.add_argument_group("protocol (closed loop; trial indices are 0-based)")
    group.add_argument("--probe-trial", type=int, help="trial without platform (a probe)")
    group.add_argument("--probe-steps", type=int,
                       help="the probe's platform rises after this many swim steps (default: never)")
    group.add_argument("--dark-after-trial", type=int, default=-1,
                       help="a dark delay of --dark-steps env steps follows this trial's rest")
    group.add_argument("--dark-steps", type=int, default=0, help="env steps of that delay")
    group.add_argument("--iti-dark-steps", type=int, default=0,
                       help="env steps of dark after every trial")
    group.add_argument("--reversal-trial", type=int, default=-1,
                       help="the platform moves at the start of this trial (>= 1)")
    group.add_argument("--reversal", choices=REVERSAL_MODES,
                       help="where it moves (default: displacement with --displacement, else opposite)")
    group.add_argument("--displacement", type=float, nargs=2, metavar=("DX", "DY"),
                       help="the move of --reversal displacement (pool radii)")


def _protocol(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of :func:`_add_protocol_flags` as keyword arguments of :meth:`WaterMazeNP.reset`."""
    mode = args.reversal or ("displacement" if args.displacement is not None else "opposite")
    return {"probe_trial": args.probe_trial, "probe_steps": args.probe_steps,
            "dark_after_trial": args.dark_after_trial, "dark_steps": args.dark_steps,
            "iti_dark_steps": args.iti_dark_steps, "reversal_trial": args.reversal_trial,
            "reversal_platform": mode, "reversal_displacement": args.displacement}


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """The command line; returns the closed loop's :func:`run_episodes` result (None open loop)."""
    parser = argparse.ArgumentParser(description="Run the exported frozen LSNN in Brian2.")
    parser.add_argument("--weights", type=Path, default=Path(__file__).resolve().parent,
                        help="folder with weights.npz and params.json (default: this file's folder)")
    parser.add_argument("--target", choices=TARGETS, default="numpy")
    parser.add_argument("--episodes", type=int, default=4, help="closed-loop water-maze episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input", type=Path, help="open loop instead: x.npy [T, n_in] or [T, B, n_in]")
    parser.add_argument("--out", type=Path, help="open loop: write z (and v, A) here (.npz)")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--noise-sigma", type=float, default=0.0)
    parser.add_argument("--silenced-fraction", type=float, default=0.0)
    parser.add_argument("--integration", choices=INTEGRATIONS, default="discrete")
    parser.add_argument("--dt-ms", type=float, default=1.0)
    _add_protocol_flags(parser)
    args = parser.parse_args(argv)
    spec = LSNNSpec.load(args.weights)
    options = BiologyOptions(args.delay_ms, args.noise_sigma, args.silenced_fraction,
                             args.integration, args.dt_ms, args.seed)
    t0 = time.perf_counter()
    if args.input is not None:
        x = np.load(args.input, allow_pickle=False)
        net = BrianLSNN(spec, 1 if x.ndim == 2 else x.shape[1], options, target=args.target,
                        record_state=args.out is not None)
        out = net.run_input(x, seed=args.seed)
        if args.out is not None:
            np.savez(args.out, **out)
        print(f"{len(x)} ms, {int(out['z'].sum())} spikes, {time.perf_counter() - t0:.1f} s")
        return None
    env_params = json.loads((args.weights / PARAMS_FILE).read_text()).get("env", {})
    env = WaterMazeNP(**{k: v for k, v in env_params.items() if k in WaterMazeNP.__dataclass_fields__})
    protocol = _protocol(args)
    try:  # a bad protocol value is a usage error, reported before any network is built
        env.reset(1, np.random.default_rng(0), **protocol)
    except ValueError as error:
        parser.error(str(error))
    result = run_episodes(spec, env, args.episodes, args.seed,
                          options=options, target=args.target, **protocol)
    lat = ", ".join("-" if v is None else f"{v:g}" for v in result["latency_by_trial"])
    print(f"{args.episodes} episodes ({time.perf_counter() - t0:.1f} s): median latency by trial "
          f"[{lat}] env steps; trials 2-4 {result['latency_trials2_4']}; one-shot ratio "
          f"{result['one_shot_ratio']}; goals/episode {result['goals_per_episode']:.2f}")
    return result


if __name__ == "__main__":
    main()

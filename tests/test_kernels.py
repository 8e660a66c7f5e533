"""The compiled kernels' loading: thread-safe first use, the one-time fallback warning, no
CPU-specific cache entry another CPU could load, the no-grad forward against the others, and
their BLAS held at one thread.
(Their numerics against the equations: tests/test_neurons.py and tests/test_lsnn.py.)"""

import sys
import threading
import time
import warnings

import pytest
import torch

from snn_icl.models.lsnn import LSNN
from snn_icl.neurons import kernels_available
from snn_icl.neurons.kernels import numba_kernels as nk

torch.set_num_threads(1)


@pytest.fixture
def fresh_load(monkeypatch):
    """The loader as before its first use; its state is put back afterwards."""
    monkeypatch.delenv("SNN_ICL_NO_KERNELS", raising=False)
    monkeypatch.delenv("SNN_ICL_NO_C_KERNELS", raising=False)
    saved = (nk._loaded, nk._kernels, nk._failure)
    nk._loaded, nk._kernels, nk._failure = False, None, None
    yield
    nk._loaded, nk._kernels, nk._failure = saved


def _net_and_input(T=40):
    torch.manual_seed(0)
    net = LSNN(4, 6, 6).double()
    x = torch.rand(T, 3, 4, dtype=torch.float64) * 2.0
    return net, x


def test_two_threads_at_first_use_both_get_the_kernels(fresh_load, monkeypatch):
    compile_ = nk._compile
    calls = []

    def slow_compile():  # the first thread holds the lock long enough for the second to arrive
        calls.append(threading.get_ident())
        time.sleep(0.3)
        return compile_()

    monkeypatch.setattr(nk, "_compile", slow_compile)
    net, x = _net_and_input()
    barrier = threading.Barrier(2)
    results = [None, None]

    def worker(k):
        barrier.wait()
        with torch.no_grad():
            z, _ = net(x)
        results[k] = (nk.kernels_for(x), z)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning either
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(calls) == 1  # compiled once
    assert results[0][0] and results[1][0]
    assert torch.equal(results[0][1], results[1][1])


def test_fallback_warns_once_with_the_reason(fresh_load, monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    net, x = _net_and_input()
    with pytest.warns(RuntimeWarning) as caught:
        assert not kernels_available()
        z, _ = net(x)
        assert not kernels_available()
        z2, _ = net(x)
    ours = [w for w in caught if "compiled ALIF kernels cannot run" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "numba" in str(ours[0].message)
    assert type(z.grad_fn).__name__ == "ALIFSequenceBackward"  # the torch-ops path
    assert torch.equal(z, z2)


def test_compile_error_warns_and_other_errors_raise(fresh_load, monkeypatch):
    from numba.core.errors import TypingError

    def broken():
        raise TypingError("no such overload")

    monkeypatch.setattr(nk, "_compile", broken)
    with pytest.warns(RuntimeWarning, match="TypingError: no such overload"):
        assert not kernels_available()
    nk._loaded = False

    def bug():
        raise ValueError("a bug in the loader")

    monkeypatch.setattr(nk, "_compile", bug)
    with pytest.raises(ValueError, match="a bug in the loader"):  # not hidden
        kernels_available()


def test_no_warning_when_switched_off(fresh_load, monkeypatch):
    monkeypatch.setenv("SNN_ICL_NO_KERNELS", "1")
    net, x = _net_and_input()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not kernels_available()
        z, _ = net(x)
    assert type(z.grad_fn).__name__ == "ALIFSequenceBackward"


def test_no_cpu_specific_artifact_another_cpu_could_load():
    # No system compiler and no flags of ours (the C kernels' -march=native is gone): what is
    # cached is numba's, and numba keys it by the CPU.
    assert not hasattr(nk, "_C_FLAGS") and "subprocess" not in sys.modules.get(nk.__name__).__dict__
    if not kernels_available():
        pytest.skip("no compiled kernels")
    for dispatcher in nk._load()[:2]:
        cache = getattr(dispatcher, "_cache", None)
        if cache is None or not hasattr(cache, "_cache_file"):
            continue  # not cached (read-only install): nothing on disk
        magic = dispatcher.targetctx.codegen().magic_tuple()  # (triple, cpu name, cpu features)
        keys = list(cache._cache_file._load_index())
        assert keys, "the compiled loops are cached"
        # Every entry is keyed by the CPU name and features it was compiled for, so another CPU
        # (a shared home, a copied venv) looks it up, misses, and compiles its own.
        assert all(len(k[1]) == 3 and k[1][1] and k[1][2] for k in keys)
        assert any(k[1] == magic for k in keys)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_grad_forward_equals_the_autograd_forward(dtype):
    if not kernels_available():
        pytest.skip("no compiled kernels")
    torch.manual_seed(1)
    net = LSNN(5, 8, 8).to(dtype)
    x = torch.rand(30, 4, 5, dtype=dtype) * 2.0
    state = net.initial_state(4)
    state = type(state)(*(torch.rand_like(s) * 0.01 for s in state[:3]), torch.zeros_like(state.r))
    z, s, trace = net(x, state, record=True)
    assert z.requires_grad
    with torch.no_grad():
        z0, s0, trace0 = net(x, state, record=True)
        z1, s1 = net(x, state)
    assert z.sum() > 0
    assert torch.equal(z, z0) and torch.equal(z, z1)
    for a, b, c in zip(s, s0, s1):
        assert torch.equal(a, b) and torch.equal(a, c)
    for a, b in zip(trace, trace0):
        assert torch.equal(a, b)


@pytest.mark.skipif(not kernels_available(), reason="numba kernels not installed")
def test_the_kernels_blas_stays_on_one_thread_whatever_torch_uses(monkeypatch):
    """With torch on two threads the kernels' BLAS is still set to one (forward, no-grad forward
    and backward): two spinning thread pools on two cores made evaluation 4.5x slower
    (bench/eval_threads.py)."""
    forward_loop, backward_loop, set_threads = nk._load()
    asked = []

    def recording(n: int) -> None:
        asked.append(n)
        set_threads(n)

    monkeypatch.setattr(nk, "_kernels", (forward_loop, backward_loop, recording))
    torch.set_num_threads(2)
    net, x = _net_and_input()
    z, _ = net(x.requires_grad_())
    z.sum().backward()
    with torch.no_grad():
        net(x)
    assert len(asked) == 3 and set(asked) == {1}

"""snn-icl: one-shot place learning with frozen synapses in spiking networks and transformers.

The notebook API (:mod:`snn_icl.api`) is here: ``snn_icl.load``, ``snn_icl.run``.
"""

from importlib.metadata import version as _version

__version__ = _version("snn-icl")

__all__ = ["Episodes", "load", "run"]


def __getattr__(name: str):
    # Lazy, so that `import snn_icl` stays cheap.
    if name in __all__:
        from snn_icl import api

        return getattr(api, name)
    raise AttributeError(f"module 'snn_icl' has no attribute {name!r}")

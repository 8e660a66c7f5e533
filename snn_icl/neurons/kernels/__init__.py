"""Compiled kernels of the ALIF fast path (optional: the torch-ops path is always there)."""

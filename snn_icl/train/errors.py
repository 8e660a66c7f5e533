"""Errors of the training layer, importable without torch-heavy modules."""


class NonFiniteError(RuntimeError):
    """A NaN or inf appeared in the loss, the gradients or the weights."""

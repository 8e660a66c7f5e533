"""Errors of the training layer, importable without torch-heavy modules."""


class NonFiniteError(RuntimeError):
    """A NaN or inf appeared in the loss, the gradients or the weights."""


class HelperError(RuntimeError):
    """A helper process of data-parallel training ended before the training did."""


def one_line(err: BaseException) -> str:
    """An error as one line for a user: an OS error as its reason and the file it concerns,
    anything else as its message with the lines joined (the type's name if it has none)."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}{f' ({err.filename})' if err.filename else ''}"
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return " ".join(lines) if lines else type(err).__name__

"""A clean stop on SIGTERM (snn_icl.train.stop_signal): the first signal asks, a second one
stops at once, and the handler that was there before comes back."""

import os
import signal
import time

import pytest

from snn_icl.train import stop_signal


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs in the main thread at the next bytecode


def test_sigterm_while_training_asks_for_a_stop_and_a_second_stops_at_once():
    seen = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with stop_signal.stop_on_sigterm() as requested:
            assert requested() is None
            _deliver(signal.SIGTERM)
            assert requested() == "SIGTERM" and seen == []
            with pytest.raises(KeyboardInterrupt, match="SIGTERM again"):
                _deliver(signal.SIGTERM)
        assert stop_signal.requested() is None  # a later run in this process starts afresh
        _deliver(signal.SIGTERM)
        assert seen == [signal.SIGTERM]  # the previous handler is back
    finally:
        signal.signal(signal.SIGTERM, before)

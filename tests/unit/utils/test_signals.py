"""A signal stops training at the next batch boundary while the fit loop runs, and the job at once elsewhere."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest

from prodmatch.utils import signals
from prodmatch.utils.signals import Interrupted, fitting, loop_ended, loop_started


@pytest.fixture
def trainer():
    signals.stopping_signal.clear()
    yield SimpleNamespace(_signal_connector=SimpleNamespace(received_sigterm=False))
    signals.stopping_signal.clear()


def test_in_the_fit_loop_a_signal_asks_lightning_to_stop_at_the_next_batch_boundary(trainer):
    with fitting(trainer):
        loop_started(trainer)
        signals._handler(signal.SIGTERM, None)
        assert trainer._signal_connector.received_sigterm and signals.stopping_signal == [signal.SIGTERM]
        with pytest.raises(Interrupted):  # the same signal again: at once
            signals._handler(signal.SIGTERM, None)
    assert signals._looping == []


@pytest.mark.parametrize("where", ["before the loop", "after the loop"])
def test_outside_the_fit_loop_a_signal_stops_the_job_at_once(trainer, where):
    """The before-fit and fit-end evaluations run inside fit() but outside its loop: Lightning clears its flag as
    the loop starts and never looks at it after the loop, so a deferred stop there was lost (the run trained on)."""
    with fitting(trainer):
        if where == "after the loop":
            loop_started(trainer)
            loop_ended(trainer)
        with pytest.raises(Interrupted) as info:
            signals._handler(signal.SIGTERM, None)
    assert info.value.code == 128 + signal.SIGTERM and not trainer._signal_connector.received_sigterm

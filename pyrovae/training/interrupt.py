"""Stopping training cleanly on SIGINT (Ctrl-C) and SIGTERM (what cluster schedulers
send before they kill a job).

While :meth:`pyrovae.training.Trainer.fit` runs, :class:`StopRequest` replaces the
handlers of both signals with one that only records the request. The training loop
looks at the request after every optimizer step (where the model, the optimizer and
the random-number streams are consistent), writes a checkpoint of that exact position
(mid-epoch, as a time budget that runs out does) and raises
:class:`TrainingInterrupted`; ``pyrovae train --resume`` then continues exactly where
training stopped. A second Ctrl-C while the first is being handled stops at once (plain
``KeyboardInterrupt``; the last checkpoint is kept); a repeated SIGTERM changes nothing
(a scheduler may signal both a launcher and its workers, and a launcher forwards the
signal too). The previous handlers are restored when ``fit`` returns or raises.

Signal handlers can only be installed from the main thread; ``fit`` in another thread
leaves the handlers alone (Ctrl-C then interrupts as Python does by default).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from ..errors import TrainingInterrupted

__all__ = ["STOP_SIGNALS", "StopRequest", "TrainingInterrupted", "signal_name"]

logger = logging.getLogger(__name__)

#: The signals that request a clean stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # pragma: no cover
        return f"signal {signum}"


class StopRequest:
    """Records SIGINT / SIGTERM while installed (a context manager; see the module
    docstring). ``signum`` is the first signal received, else None."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def stopped_by(self) -> int:
        """The signal received; SIGTERM for a rank of a data-parallel run that stops
        because another rank received one."""
        return self.signum if self.signum is not None else int(signal.SIGTERM)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:  # Ctrl-C twice: stop now
                raise KeyboardInterrupt
            return
        self.signum = signum
        logger.info("%s received: stopping after the current step", signal_name(signum))

    def __enter__(self) -> StopRequest:
        self.signum = None
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # ignored stays ignored
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

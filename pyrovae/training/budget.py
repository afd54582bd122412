"""The time budget: seconds spent on a clock, over every session of a run.

A :class:`BudgetClock` counts the seconds training has used on its clock
(:data:`CLOCKS`: ``"wall"``, elapsed time, or ``"cpu"``, the process's CPU time over all
its threads, which other work on the machine does not inflate), carried across resumed
sessions in the checkpoint. The trainer reads it when training starts, after every step
while a budget is set, at every checkpoint (the time used is saved), at a rollback and
when training ends; ``tests`` replace the clocks in :data:`CLOCKS` by fake ones that
advance one "second" per read, so a budget is a number of reads whatever the
machine's speed.
"""

from __future__ import annotations

import time

#: The clocks a budget can be counted on (tests replace the entries).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class BudgetClock:
    """Seconds used on clock ``clock`` against an optional ``budget``.

    Attributes
    ----------
    used : float
        Seconds used by earlier sessions and, once :meth:`stop` is called, this one.
    """

    def __init__(self, budget: float | None, clock: str) -> None:
        self.budget = None if budget is None else float(budget)
        self.clock = clock
        self.used = 0.0
        self._start: float | None = None

    def start(self) -> None:
        """Start counting this session (one read)."""
        self._start = CLOCKS[self.clock]()

    def elapsed(self) -> float:
        """Seconds used so far, this session's included (a read while running)."""
        if self._start is None:
            return self.used
        return self.used + CLOCKS[self.clock]() - self._start

    def out_of_time(self) -> bool:
        """Whether the budget is spent (no read without a budget)."""
        return self.budget is not None and self.elapsed() >= self.budget

    def stop(self) -> None:
        """Stop counting: :attr:`used` includes this session."""
        self.used = self.elapsed()
        self._start = None

    def restart(self, used: float) -> None:
        """Count on from ``used`` seconds, starting now."""
        self.used = float(used)
        self.start()

    def load(self, used: float, clock: str) -> None:
        """Take over the time a checkpoint records, if it was counted on the same clock."""
        if clock == self.clock:
            self.used = float(used)

"""Progress bars of the long analyses (importance sampling, NUTS chains, simulation-based
calibration, comparisons over runs).

Every analysis function that can run for minutes takes ``progress`` (default False) and
draws a tqdm bar on stderr only when it is True; the command line decides (it passes
True on a terminal unless ``--no-progress`` is given). A bar never changes a result: the
work is split the same way with or without it.
"""

from __future__ import annotations

from collections.abc import Iterable

from tqdm.auto import tqdm


def progress_bar(
    iterable: Iterable | None = None,
    *,
    enabled: bool,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    leave: bool = True,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to ``update`` by hand up to ``total``),
    silent unless ``enabled``."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        disable=not enabled,
        dynamic_ncols=True,
    )

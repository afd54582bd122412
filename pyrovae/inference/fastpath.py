r"""Importance log-weights without Pyro's traces where the family has a direct form, and
chunks of draws sized for the processor's cache.

:func:`pyrovae.inference.loglik.log_likelihood` needs, for every data point x_n and every
draw z_{n,k} ~ q(z|x_n), the log-weight log p(x_n, z_{n,k}) - log q(z_{n,k}|x_n). The
general way reads it off Pyro traces of the model and guide run in a particles plate
(:func:`pyrovae.objectives.iwae.vectorized_traces`). A family whose model and guide are
fixed compositions of its distributions (the VAE: z ~ q(z|x), then log p(x|z) + log p(z)
- log q(z|x)) computes the same numbers from those distributions directly
(``module.direct_log_weights``), from the same random draws, without the handlers and
the per-site bookkeeping, and builds the guide's and the prior's distributions once per
data batch rather than once per chunk of draws. Families without a direct form (the
hierarchical VAE, a subclass that changes the VAE's model or guide) use the traces, and
the reason is logged once per call. With an observation mask, the VAE's direct form
scores log p(x_obs | z) and q(z | x_obs, mask) as its traces do; a family whose direct
form takes no mask falls back to the traces.

Chunks. Scoring a chunk makes several elementwise passes over its decoder outputs
(draws x data points x 784 logits for MNIST); when those outputs fit in the processor's
cache the passes do not wait on main memory. :func:`cache_chunk` bounds a chunk's
decoder output to :data:`CHUNK_BYTES`, on both paths, so that they draw the same z from
the same seed; the memory budget of ``log_likelihood`` still bounds it from above.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable

import torch

from ..data.batch import as_batch
from ..objectives.iwae import log_weights, vectorized_traces

logger = logging.getLogger(__name__)

#: Rows (draws x data points) of decoder output per chunk for 784 outputs per row: 6 MB
#: of float32, within the L3 cache and about the fastest on the machine of
#: docs/benchmarks.md (1024 to 4096 rows were within a few per cent on one thread).
CHUNK_ROWS = 2048

#: Bytes of float32 decoder output per chunk (:data:`CHUNK_ROWS` rows of 784 values).
CHUNK_BYTES = CHUNK_ROWS * 784 * 4

#: Bytes of the one allocation that :func:`retain_freed_memory` makes and frees: just
#: under glibc's ceiling for its dynamic mmap threshold (32 MiB on 64-bit systems).
RETAIN_BYTES = 32 * 2**20 - 2**16


def cache_chunk(module, batch: int) -> int:
    """Draws per chunk for ``batch`` data points whose decoder outputs take about
    :data:`CHUNK_BYTES` (at least one draw)."""
    width = math.prod(module.data_shape) * module.likelihood.param_channels
    rows = max(1, CHUNK_BYTES // (4 * width))
    return max(1, rows // max(1, int(batch)))


def retain_freed_memory() -> None:
    """Let the C allocator keep freed chunk-sized buffers for reuse instead of returning
    them to the system, by allocating and freeing one buffer of :data:`RETAIN_BYTES`.

    glibc's ``malloc`` serves a request above its mmap threshold (128 KiB at start) with
    fresh pages from ``mmap``, and trims the heap when more than twice the threshold lies
    free at its top; freeing an mmap-ed block of up to 32 MiB raises the threshold to
    that block's size. Each chunk of importance draws allocates and frees a few buffers
    of decoder outputs, megabytes each: at the starting threshold they were fresh pages
    in every chunk, and the page faults of first touching them took a fifth of the
    evaluation time. After this call buffers of up to 32 MiB come from the heap and up
    to 64 MiB of freed memory stays with the process for the next chunk. Under other
    allocators it is one untouched allocation.
    """
    buffer = torch.empty(RETAIN_BYTES, dtype=torch.uint8)
    del buffer


def _traced(module, x: torch.Tensor, mask=None) -> Callable[[int], torch.Tensor]:
    data = x if mask is None else as_batch(x).replace(mask=mask)

    def chunk(k: int) -> torch.Tensor:
        log_w, _, _ = log_weights(*vectorized_traces(module.model, module.guide, data, k))
        return log_w.reshape(k, len(x))

    return chunk


class LogWeightChunks:
    """Log-weights of chunks of importance draws for one module, direct where possible.

    Parameters
    ----------
    module : LatentModule
        The model family.
    direct : bool
        Use the family's direct form when it has one (``False``: always the traces).

    Attributes
    ----------
    reason : str or None
        Why the traces are used, once they are.
    """

    def __init__(self, module, direct: bool = True) -> None:
        self.module = module
        self.direct = bool(direct)
        self.reason: str | None = None if direct else "the direct path was switched off"
        retain_freed_memory()

    def sampler(self, x: torch.Tensor, mask=None) -> Callable[[int], torch.Tensor]:
        """A function ``k -> log w`` of shape ``(k, B)`` for the rows of ``x``: ``k``
        fresh draws per row and their log-weights at beta = 1. With an observation
        ``mask``, the weights of p(x_obs, z) / q(z|x_obs): the direct form when the
        family's takes a mask, else the traces (which score the mask as the model does)."""
        if self.direct:
            direct = self.module.direct_log_weights
            if mask is not None and "mask" not in inspect.signature(direct).parameters:
                return _traced(self.module, x, mask)  # a direct form without masks
            try:
                return direct(x) if mask is None else direct(x, mask=mask)
            except NotImplementedError as exc:
                self.direct = False
                self.reason = str(exc)
                logger.info("log p(x) through Pyro traces: %s", self.reason)
        return _traced(self.module, x, mask)

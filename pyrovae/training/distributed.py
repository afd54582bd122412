r"""Data-parallel training with ``torch.distributed`` (DistributedDataParallel).

W processes ("ranks") each hold a full copy of the model and optimizer. Every rank
draws the *same* permutation of the training rows each epoch from the shared seed
(the trainer's shuffling generator), reads the same global minibatch and keeps its
own slice of it: rank r takes positions r, r + W, r + 2W, ... of global batch i, so
the union over ranks of the local batches i is exactly the single-process batch i.
A per-minibatch transform that draws random numbers (dynamic binarization) is applied
to the global batch before slicing, on every rank, so the draws and the shuffling
stream stay identical on all ranks and equal to a single-process run's.

Scaling of the minibatch loss
-----------------------------
The SVI step of one process on a global batch :math:`\mathcal B` of size B
minimises the per-data-point loss (the Pyro objective over the ``data`` plate,
summed over the batch and divided by B; ``N`` times it is the usual estimate of the
full-data negative ELBO with subsample scale N / B):

.. math::  L = \frac1B \sum_{n \in \mathcal B} \ell_n, \qquad
           g = \nabla L = \frac1B \sum_{n \in \mathcal B} \nabla \ell_n .

Rank r holds :math:`\mathcal B_r` (size :math:`B_r`, :math:`\sum_r B_r = B`) and
backpropagates

.. math::  L_r = \frac{W}{B} \sum_{n \in \mathcal B_r} \ell_n .

DDP all-reduces the gradients and divides by W, so every rank receives

.. math::  \bar g = \frac1W \sum_r \nabla L_r
                  = \frac1W \cdot \frac WB \sum_r \sum_{n \in \mathcal B_r} \nabla \ell_n
                  = \frac1B \sum_{n \in \mathcal B} \nabla \ell_n = g ,

the single-process gradient of the same global batch, whatever B (it need not be
divisible by W; the last batch of an epoch usually is not). Had each rank divided by
its own :math:`B_r` (subsample scale :math:`N / B_r`, the textbook per-rank
estimate), the average :math:`\frac1W \sum_r \frac{1}{B_r} \sum_{\mathcal B_r}
\nabla\ell_n` would equal g only when all :math:`B_r = B / W`, and would overweight
the rows of short slices otherwise. A rank whose slice is empty (a last batch with
fewer than W rows) runs the objective on one row with weight 0, so it still joins
the all-reduce and contributes nothing.

Identical gradients and identical optimizer states give identical Adam updates:
the parameters stay bitwise equal on all ranks (DDP also broadcasts rank 0's
parameters when it wraps the model). The Monte Carlo noise is *not* shared: rank 0
keeps the run's seeded stream and rank r > 0 draws from its own stream seeded from
(seed, r) (:func:`rank_seed`), so the W slices use independent draws as one process
would. The distributed gradient therefore has the single-process gradient's
distribution, but not its value draw for draw: a VAE's loss trajectory agrees with a
single-process run only statistically, while models without sampled latents (the
autoencoder) agree up to floating-point summation order
(``tests/training/test_distributed.py``).

Metrics are sums over rows, all-reduced (summed) over ranks at the end of each epoch,
so they are the global means. Validation is sharded the same way (rank r evaluates
batches r, r + W, ...). Every rank then holds the same numbers and takes the same
early-stopping decision; rank 0's decision is broadcast as well, so all ranks always
stop together. Divergence and time-budget flags are all-reduced (max) after every
step. Only rank 0 writes files (metrics, checkpoints, ``run.json``) and shows the
progress bar; checkpoints hold every rank's random-number state, so a resumed run
with the same number of ranks continues exactly.

Launching: under ``torchrun`` (environment variables ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) :func:`init_from_env` joins the
process group; ``pyrovae train --nproc N`` starts N such processes itself
(:func:`launch`). The backend is ``nccl`` on CUDA (one GPU per rank, ``cuda:LOCAL_RANK``)
and ``gloo`` on CPU; the code path is the same.

References
----------
Li, S. et al. (2020). PyTorch Distributed: Experiences on Accelerating Data Parallel
Training. VLDB 13(12). https://arxiv.org/abs/2006.15704
Goyal, P. et al. (2017). Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour.
https://arxiv.org/abs/1706.02677 (the global batch is what matters for the update).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.batch import as_batch
from ..errors import ConfigError

logger = logging.getLogger(__name__)

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a process group.

    Attributes
    ----------
    rank, world_size, local_rank : int
        Global rank, number of ranks, rank on this machine.
    backend : str
        ``"gloo"`` or ``"nccl"``.
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes files)."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """The device collectives run on (the rank's GPU under nccl, else the CPU)."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def _dist():
    import torch.distributed as dist

    return dist


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when not launched by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(
            f"WORLD_SIZE must be an integer; got {os.environ['WORLD_SIZE']!r}"
        ) from None


def backend_for(device: str | torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def current() -> DistContext | None:
    """The default process group, if one with more than one rank is initialised."""
    dist = _dist()
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size()
    if world <= 1:
        return None
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistContext(dist.get_rank(), world, local, dist.get_backend())


def init_from_env(device: str | torch.device = "cpu") -> DistContext | None:
    """Join the process group described by torchrun's environment variables.

    Returns None when the environment describes a single process (no torchrun, or
    ``WORLD_SIZE=1``). The backend is chosen from ``device`` (:func:`backend_for`);
    under nccl the rank's GPU ``cuda:LOCAL_RANK`` becomes the current device.
    """
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        return current()
    if env_world_size() <= 1:
        return None
    missing = [v for v in ENV_VARS if v not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE is set but {', '.join(missing)} is not; launch with torchrun "
            "or pyrovae train --nproc N"
        )
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed")
    backend = backend_for(device)
    local = int(os.environ["LOCAL_RANK"])
    if backend == "nccl":
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s); "
                "use at most one process per GPU"
            )
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend, init_method="env://")
    global _JOINED_FROM_ENV
    _JOINED_FROM_ENV = True
    ctx = current()
    if ctx is not None:
        logger.debug("joined process group: rank %d of %d (%s)", ctx.rank, ctx.world_size, backend)
    return ctx


#: Whether this process joined a process group from the environment (a rank of
#: torchrun or of :func:`launch`).
_JOINED_FROM_ENV = False


def joined_from_env() -> bool:
    """Whether :func:`init_from_env` made this process a rank of a process group."""
    return _JOINED_FROM_ENV


def end_rank(status: int) -> None:
    """End a rank's process with ``status`` once its work is done and its files are
    written, without the interpreter's shutdown.

    Destroying torch.distributed's C++ objects at interpreter exit has aborted ranks
    ("terminate called without an active exception", signal 6), which the launcher
    (torchrun or :func:`launch`) reports as a failed rank. Logging and the standard
    streams are flushed first.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(status))


def shutdown() -> None:
    """Leave the default process group (if any)."""
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """A 63-bit seed for rank ``rank``'s Monte Carlo stream, derived from ``seed``."""
    digest = hashlib.sha256(f"pyrovae:{int(seed)}:{int(rank)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# -- collectives ------------------------------------------------------------------


def any_flags(ctx: DistContext, *flags: bool) -> list[bool]:
    """Each flag OR-ed over all ranks (one small all-reduce)."""
    dist = _dist()
    t = torch.tensor([float(bool(f)) for f in flags], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def sum_values(ctx: DistContext, values: list[float]) -> list[float]:
    """Each number summed over all ranks (float64)."""
    dist = _dist()
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """``obj`` as rank 0 has it, on every rank."""
    box = [obj]
    _dist().broadcast_object_list(box, src=0, device=ctx.device)
    return box[0]


def gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    out: list[Any] = [None] * ctx.world_size
    _dist().all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext | None) -> None:
    """Wait for all ranks (no-op without a process group)."""
    if ctx is not None:
        if ctx.backend == "nccl":
            _dist().barrier(device_ids=[ctx.local_rank])
        else:
            _dist().barrier()


def parameters_agree(ctx: DistContext, module: nn.Module) -> bool:
    """Whether every rank holds bitwise the same parameters (rank 0's are broadcast)."""
    dist = _dist()
    mine = [p.detach().reshape(-1) for p in module.parameters()]
    if not mine:
        return True
    flat = torch.cat(mine).to(ctx.device)
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    same = torch.tensor([float(torch.equal(flat, ref))], device=ctx.device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())


# -- the model wrapper ---------------------------------------------------------------


class ObjectiveModule(nn.Module):
    """The SVI objective as an ``nn.Module``, so that DDP can wrap it.

    ``forward(batch, divisor, beta)`` runs the Pyro model and guide on the local
    minibatch at KL weight ``beta`` (tracing, sampling and log-densities all inside the
    forward) and returns ``(loss / divisor, loss_terms)``; the caller backpropagates the
    first element (:func:`~pyrovae.training.step.train_step` takes it as its
    ``forward``). The parameters are the wrapped module's, so the optimizer,
    checkpoints and the estimator keep using ``module`` itself.
    """

    def __init__(self, module: nn.Module, objective) -> None:
        super().__init__()
        self.module = module
        self.objective = objective

    def forward(self, batch, divisor: float, beta: float = 1.0):
        terms = self.objective(self.module.model, self.module.guide, batch, beta=beta)
        return terms.loss / divisor, terms


def _unused_parameters(module: nn.Module, objective, batch) -> list[str]:
    """Names of parameters the objective's gradient does not reach (probe on 2 rows;
    the random-number streams and the gradients are left as they were)."""
    batch = as_batch(batch)[:2]
    devices = [batch.x.device] if batch.x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        terms = objective(module.model, module.guide, batch)
        params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(
            terms.loss, [p for _, p in params], allow_unused=True, retain_graph=False
        )
    return [n for (n, _), g in zip(params, grads, strict=True) if g is None]


def wrap(module: nn.Module, objective, ctx: DistContext, probe) -> nn.Module:
    """``DistributedDataParallel`` around :class:`ObjectiveModule` (module, objective).

    ``probe`` (a batch of a few rows of data) finds parameters the objective does not use, which
    DDP must be told about; there are none for the built-in components.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    unused = _unused_parameters(module, objective, probe)
    if unused:
        logger.debug("parameters without gradient (find_unused_parameters): %s", unused)
    device_ids = [ctx.local_rank] if ctx.backend == "nccl" else None
    # buffers are constants during training: no broadcast before every forward
    params = inspect.signature(DDP.__init__).parameters
    no_sync = {
        "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": False
    }
    return DDP(
        ObjectiveModule(module, objective),
        device_ids=device_ids,
        find_unused_parameters=bool(unused),
        **no_sync,
    )


# -- launching ------------------------------------------------------------------------


#: Set for the ranks that :func:`launch` starts: every rank, rank 0 included, is a
#: client of the rendezvous store that the launching process hosts (torchrun's
#: elastic agent sets the same variable for the same arrangement).
AGENT_STORE_VAR = "TORCHELASTIC_USE_AGENT_STORE"


def host_rendezvous_store():
    """A ``TCPStore`` server on 127.0.0.1 at a port the operating system picks.

    The port is bound when the store is made and stays bound while the store lives,
    so no other process can take it between choosing it and using it (choosing a free
    port, closing it and handing its number to the ranks races with any other process
    that binds a port meanwhile, e.g. a parallel test run). Its ``port`` attribute is
    the port number.
    """
    from torch.distributed import TCPStore

    return TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)


def _entry(local_rank: int, world: int, port: int, threads: int, fn: Callable, args) -> None:
    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        **{AGENT_STORE_VAR: "True"},
    )
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        status = int(fn(*args) or 0)
    except SystemExit as exc:  # fn's own exit status (a stop by SIGTERM: 143)
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        status = 130
    except BaseException:
        traceback.print_exc()
        status = 1
    end_rank(status)  # the rank's work is over and fn left the process group


def launch(nproc: int, fn: Callable, *args: Any, grace: float = 30.0) -> int:
    """Run ``fn(*args)`` in ``nproc`` new processes set up as torchrun would (one machine).

    ``fn`` must be importable (a module-level function). Each process gets ``RANK``,
    ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` and, unless
    ``OMP_NUM_THREADS`` is set, an equal share of the CPU cores as torch threads;
    ``fn`` joins the group with :func:`init_from_env` and returns an exit status.
    The rendezvous store is hosted by this process on a port it holds until the ranks
    end (:func:`host_rendezvous_store`), as torchrun's agent does.
    Returns 0 when every process succeeded, else the status of the first that failed.
    The others are given ``grace`` seconds to end by themselves (they usually fail the
    same way, or notice the lost peer), then terminated.

    While the processes run, a SIGTERM sent to this one is passed on to them (each
    checkpoints and stops, :mod:`pyrovae.training.interrupt`), and Ctrl-C, which the
    terminal sends to them as well, no longer ends this process before they have.
    """
    import multiprocessing

    nproc = int(nproc)
    if nproc < 1:
        raise ConfigError(f"nproc must be a positive integer; got {nproc}")
    threads = 0
    if "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // nproc)
    spawn = multiprocessing.get_context("spawn")
    store = host_rendezvous_store()
    procs = [
        spawn.Process(target=_entry, args=(r, nproc, store.port, threads, fn, args), daemon=True)
        for r in range(nproc)
    ]
    status, deadline = 0, None
    forwarding = _forward_stop_signals(procs)
    try:
        for proc in procs:
            proc.start()
        while any(p.is_alive() for p in procs):
            procs[0].join(0.05)
            if status == 0:
                failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if failed:
                    status = failed[0] if failed[0] > 0 else 1  # < 0: killed by a signal
                    deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                logger.warning("terminating the remaining training processes")
                break
    finally:
        forwarding()
        for proc in procs:
            if proc.pid is not None:
                if proc.is_alive():
                    proc.terminate()
                proc.join()
        del store  # the ranks are gone: release the port
    if status == 0:
        failed = [p.exitcode for p in procs if p.exitcode != 0]
        status = (failed[0] if failed[0] > 0 else 1) if failed else 0
    return status


def _forward_stop_signals(procs) -> Callable[[], None]:
    """Pass SIGTERM on to ``procs`` and let Ctrl-C reach them alone (the terminal sends
    it to the whole process group) until the returned function restores the handlers.
    Only from the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def forward(signum, frame) -> None:
        logger.info("passing %s on to the training processes", signal.Signals(signum).name)
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    previous = {}
    for sig, handler in ((signal.SIGTERM, forward), (signal.SIGINT, lambda *_: None)):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore

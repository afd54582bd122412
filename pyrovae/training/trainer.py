"""The training loop shared by every model family (VAE, AE, DAE).

Per epoch: shuffled minibatches, one SVI step each, the KL weight beta set from the
schedule at the middle of every step; then a validation pass, a row of metrics, a
checkpoint (atomic, the previous one kept) and the early stopping check. The best
weights by validation loss are kept and restored at the end. All state needed to
resume (weights, optimizer, RNG streams, history, early-stopping counters, the
position inside an epoch) is plain data in the checkpoint, so a resumed run
continues exactly where an uninterrupted run would be.

Metrics per epoch (per data point, in nats): ``loss`` (the beta-weighted
objective), ``elbo`` = recon - KL (beta = 1), ``recon`` = E_q[log p(x|z)],
``kl`` = KL(q(z|x) || p(z)); for autoencoders ``kl`` = 0 and ``elbo`` is NaN;
``seconds`` and ``cpu_seconds`` are the epoch's wall-clock and process CPU time;
``lr`` is the learning rate in use.

A time budget (``time_budget`` seconds on the ``budget_clock``: ``"wall"`` or
``"cpu"``, the process's CPU time over all threads) is checked after every step;
once spent, the epoch in progress ends early, is validated and checkpointed,
and training stops. The time used is part of the checkpoint, so a resumed run
spends what is left of its budget (or of a larger one).

``checkpoint_every`` > 0 also writes a checkpoint every that many steps inside an
epoch (the shuffling stream's state at the start of the epoch, the number of
batches done and the partial sums are stored, so resuming from it replays the
epoch's permutation and continues bit for bit).

Divergence: after each backward pass the loss and the sum of the gradients are checked
(:func:`~pyrovae.training.step.step_is_finite`); on a NaN or infinity the optimizer
step is skipped, so the weights never see it, and then, by ``on_divergence``:
``"stop"`` (default) raises :class:`TrainingError` with one line (the last good
checkpoint stays on disk); ``"rollback"`` restores the state of the last checkpoint
(weights, optimizer, RNG streams, history; kept in memory), multiplies the learning
rate by ``rollback_lr_factor`` and continues, at most ``divergence_retries`` times
per run. A checkpoint is never written with non-finite weights or optimizer state.

Several processes: with ``distributed`` (a
:class:`~pyrovae.training.distributed.DistContext`) the step runs through
DistributedDataParallel on each rank's slice of every global minibatch; see
:mod:`pyrovae.training.distributed` for the arithmetic.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import torch

from .. import config
from ..config import check_value
from ..data import TensorBatches
from ..errors import PyrovaeError
from ..objectives import BetaSchedule, LossTerms, Objective
from ..runs import hold, write_metrics
from ..runs.metrics import METRIC_COLUMNS
from ..runs.names import CHECKPOINT
from . import distributed as D
from .callbacks import EarlyStopping
from .checkpoint import remove_stale_temporaries, save_checkpoint
from .interrupt import StopRequest, TrainingInterrupted, signal_name
from .precision import autocast_networks
from .provenance import record_session
from .step import eval_step, step_is_finite

logger = logging.getLogger(__name__)

__all__ = ["CLOCKS", "DIVERGENCE_POLICIES", "METRIC_COLUMNS", "Trainer", "TrainingError"]

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}

#: What to do when the loss or a gradient becomes NaN or infinite.
DIVERGENCE_POLICIES = config.DIVERGENCE_POLICIES


class TrainingError(PyrovaeError, RuntimeError):
    """Training cannot continue (for example the loss became NaN)."""


class _Rollback(Exception):
    """Internal: the state was rolled back; restart the epoch loop."""


class _Sums:
    """Running sums of loss terms over an epoch (tensors: no per-step sync)."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.recon = 0.0
        self.kl = 0.0
        self.n = 0

    def add(self, terms: LossTerms, n: int) -> None:
        self.loss = self.loss + terms.loss.detach()
        self.recon = self.recon + terms.recon.sum()
        self.kl = self.kl + terms.kl.sum()
        self.n += n

    def values(self, ctx: D.DistContext | None = None) -> list[float]:
        """``[loss, recon, kl, n]`` as floats, summed over ranks under ``ctx``."""
        out = [float(self.loss), float(self.recon), float(self.kl), float(self.n)]
        return D.sum_values(ctx, out) if ctx is not None else out

    def load(self, values: list[float]) -> None:
        self.loss, self.recon, self.kl = (float(v) for v in values[:3])
        self.n = int(values[3])

    def means(self, has_kl: bool, ctx: D.DistContext | None = None) -> dict[str, float]:
        loss, recon, kl, n = self.values(ctx)
        n = max(n, 1)
        recon, kl = recon / n, kl / n
        return {
            "loss": loss / n,
            "elbo": recon - kl if has_kl else math.nan,
            "recon": recon,
            "kl": kl,
        }


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _all_finite(tensors) -> bool:
    return all(
        bool(torch.isfinite(t).all())
        for t in tensors
        if isinstance(t, torch.Tensor) and t.is_floating_point()
    )


class Trainer:
    """Fit a model family's Pyro program by SVI.

    Parameters
    ----------
    module : LatentModule
        Model and guide (``module.model``, ``module.guide``); ``module.beta`` is set here.
    objective : Objective
        ELBO estimator.
    schedule : BetaSchedule
        beta as a function of fractional epoch.
    optimizer : torch.optim.Optimizer
        Over ``module.parameters()``.
    epochs, batch_size, patience : int
        Budget, minibatch size (the global one, over all ranks), early-stopping
        patience (0: off).
    seed : int
        Seeds the minibatch shuffling stream (and the other ranks' Monte Carlo streams).
    run_dir : path, optional
        Where ``metrics.csv`` and ``checkpoint.pt`` are written each epoch.
    payload : callable, optional
        Returns the plain data (config, component names) stored with each checkpoint.
    progress : bool
        Show a tqdm progress bar over epochs.
    transform : callable, optional
        ``transform(batch, generator)`` applied to each training minibatch, drawing
        from the trainer's seeded stream (dynamic binarization).
    time_budget : float, optional
        Stop once this many seconds of training have been spent (all sessions of a
        resumed run together), checked after every step.
    budget_clock : {"wall", "cpu"}
        The clock the budget is counted on: wall-clock time, or the process's CPU
        time summed over its threads (robust to other work on the machine).
    amp : bool
        Run the network bodies in bfloat16 autocast on the module's device
        (:mod:`pyrovae.training.precision`); the caller decides where that is allowed.
    checkpoint_every : int
        Also checkpoint every this many steps inside an epoch (0: at epoch ends only).
    on_divergence : {"stop", "rollback"}
        What to do when the loss or a gradient is NaN or infinite.
    divergence_retries : int
        Rollbacks allowed per run.
    rollback_lr_factor : float
        The learning rate is multiplied by this at each rollback.
    lr_decay_patience : int
        Multiply the learning rate by ``lr_decay_factor`` after every this many
        epochs without a better monitored loss (0: never), as
        ``torch.optim.lr_scheduler.ReduceLROnPlateau`` does; the count is early
        stopping's, so set ``patience`` to a multiple of it to give each decayed rate
        its time.
    lr_decay_factor : float
        In (0, 1).
    distributed : DistContext, optional
        Train data-parallel in this process group.
    """

    def __init__(
        self,
        module,
        objective: Objective,
        schedule: BetaSchedule,
        optimizer: torch.optim.Optimizer,
        epochs: int,
        batch_size: int,
        patience: int = 30,
        seed: int = 0,
        run_dir: str | Path | None = None,
        payload: Callable[[], dict] | None = None,
        progress: bool = False,
        transform: Callable | None = None,
        time_budget: float | None = None,
        budget_clock: str = "wall",
        amp: bool = False,
        checkpoint_every: int = 0,
        on_divergence: str = "stop",
        divergence_retries: int = 3,
        rollback_lr_factor: float = 0.5,
        lr_decay_patience: int = 0,
        lr_decay_factor: float = 0.5,
        distributed: D.DistContext | None = None,
    ) -> None:
        self.module = module
        self.objective = objective
        self.schedule = schedule
        self.optimizer = optimizer
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.stopper = EarlyStopping(patience)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.payload = payload or dict
        self.progress = progress
        self.transform = transform
        for name, value in (
            ("budget_clock", budget_clock),
            ("on_divergence", on_divergence),
            ("lr_decay_patience", lr_decay_patience),
            ("lr_decay_factor", lr_decay_factor),
        ):
            check_value(name, value)
        self.time_budget = None if time_budget is None else float(time_budget)
        self.budget_clock = budget_clock
        self.amp = bool(amp)
        self.checkpoint_every = int(checkpoint_every)
        self.on_divergence = on_divergence
        self.divergence_retries = int(divergence_retries)
        self.rollback_lr_factor = float(rollback_lr_factor)
        self.lr_decay_patience = int(lr_decay_patience)
        self.lr_decay_factor = float(lr_decay_factor)
        self.dist = distributed
        self.time_used = 0.0  # seconds on the budget clock, over all sessions
        self.budget_spent = False
        self._clock_start: float | None = None
        self.epoch = 0
        self.step = 0  # optimizer steps taken (or skipped) over all sessions
        self.history: list[dict] = []
        self.best_state: dict | None = None
        self.best_epoch = 0
        self.stopped_early = False
        self.lr_scale = 1.0
        self.rollbacks: list[dict] = []
        self._base_lrs = [g["lr"] for g in optimizer.param_groups]
        self._resume_partial: dict | None = None  # mid-epoch state to resume from
        self._progress_state: dict | None = None  # mid-epoch state to checkpoint
        self._rng_restored = False
        # Set when fit() returns: the last training weights and random-number state,
        # which checkpoints written after fit (with the best weights loaded) keep,
        # so that a resumed run continues from where training stopped.
        self._last_module: dict | None = None
        self._last_rng: dict | None = None
        self._snapshot: dict | None = None
        self._ddp = None
        self._stop = StopRequest()  # installed while fit() runs

    # -- helpers -------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The device of the module's parameters."""
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0, or the only process)."""
        return self.dist is None or self.dist.is_main

    def _amp(self):
        if not self.amp:
            return contextlib.nullcontext()
        return autocast_networks(self.module, self.device.type, torch.bfloat16)

    def _apply_lr(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self._base_lrs, strict=True):
            group["lr"] = base * self.lr_scale

    @property
    def learning_rate(self) -> float:
        """The learning rate in use (of the first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _transform(self, xb: torch.Tensor) -> torch.Tensor:
        # The shuffling generator lives on the CPU: draw there, whatever the device.
        if xb.device.type == "cpu":
            return self.transform(xb, self.generator)
        return self.transform(xb.cpu(), self.generator).to(xb.device)

    # -- passes --------------------------------------------------------------
    def _step(self, xb: torch.Tensor) -> tuple[LossTerms, int, bool]:
        """One SVI step on global batch ``xb`` (this rank's slice of it under DDP).

        Returns the loss terms of the local rows, their number and whether the loss
        and gradients were finite (if not, the optimizer step was skipped).
        """
        ctx = self.dist
        if ctx is None:
            local, n_local, divisor = xb, xb.shape[0], xb.shape[0]
        else:
            local = xb[ctx.rank :: ctx.world_size]
            n_local, divisor = local.shape[0], xb.shape[0] / ctx.world_size
            if n_local == 0:  # join the all-reduce with a zero contribution
                local = xb[:1]
        self.optimizer.zero_grad(set_to_none=True)
        if self._ddp is not None:
            scaled, terms = self._ddp(local, divisor)
        else:
            terms = self.objective(self.module.model, self.module.guide, local)
            scaled = terms.loss / divisor
        if n_local == 0:
            scaled = scaled * 0.0
        scaled.backward()
        finite = step_is_finite(scaled, self._params)
        if finite:
            self.optimizer.step()
        return terms, n_local, finite

    def _train_epoch(self, x) -> dict[str, float] | None:
        self.module.train()
        ctx = self.dist
        batches = TensorBatches(x, self.batch_size, shuffle=True, generator=self.generator)
        n_batches = len(batches)
        partial, self._resume_partial = self._resume_partial, None
        if partial is not None:
            self.generator.set_state(partial["shuffle_start"])
        start = self.generator.get_state()
        it = iter(batches)
        sums = _Sums()
        first = 0
        if partial is not None:
            first = int(partial["batch"])
            for _ in range(first):  # draws the epoch's permutation again
                next(it)
            self.generator.set_state(partial["shuffle"])
            ranks = [partial["sums"]] if partial.get("local") else partial["sums_ranks"]
            if ctx is not None and len(ranks) == ctx.world_size:
                sums.load(ranks[ctx.rank])  # each rank its own: the same rounding
            elif ctx is None or ctx.is_main:
                sums.load([sum(column) for column in zip(*ranks, strict=True)])
            logger.info("resuming epoch %d at step %d of %d", self.epoch + 1, first, n_batches)
        device = self.device
        for i in range(first, n_batches):
            xb = next(it)
            if self.transform is not None:
                xb = self._transform(xb)
            if xb.device != device:
                xb = xb.to(device, non_blocking=True)
            self.module.beta = self.schedule(self.epoch + (i + 0.5) / n_batches)
            terms, n_local, finite = self._step(xb)
            diverged, out_of_time = not finite, self._out_of_time()
            stop = self._stop.requested
            if ctx is not None:
                diverged, out_of_time, stop = D.any_flags(ctx, diverged, out_of_time, stop)
            if diverged:
                self._diverged(i, n_batches, terms)
            if n_local:
                sums.add(terms, n_local)
            self.step += 1
            if out_of_time:
                self.budget_spent = True
                logger.info(
                    "time budget of %.0f s spent in epoch %d", self.time_budget, self.epoch + 1
                )
                if i + 1 < n_batches:
                    # Stop inside the epoch: save the position (a mid-epoch checkpoint)
                    # so that a resume with a larger budget continues this epoch where
                    # it stopped and trains exactly what an uninterrupted run would;
                    # the unfinished epoch is neither validated nor counted. Later
                    # checkpoints of this session keep the position too.
                    self._resume_partial = self._partial_epoch(i + 1, start, sums)
                    if self.run_dir is not None:
                        self.save(self.run_dir / CHECKPOINT)
                    return None
                break
            if stop and i + 1 < n_batches:  # SIGINT / SIGTERM: checkpoint this position
                self._resume_partial = self._partial_epoch(i + 1, start, sums)
                raise self._interrupt()
            if (
                self.checkpoint_every > 0
                and self.step % self.checkpoint_every == 0
                and i + 1 < n_batches
            ):
                self._save_progress(i + 1, start, sums)
                self._take_snapshot()
        return sums.means(self.module.has_latent_sites, ctx)

    def _save_progress(self, batch: int, shuffle_start, sums) -> None:
        """Write a mid-epoch checkpoint: the next step is step ``batch`` of this epoch."""
        if self.run_dir is None:
            return
        self._progress_state = {"batch": batch, "shuffle_start": shuffle_start, "sums": sums}
        try:
            self.save(self.run_dir / CHECKPOINT)
        finally:
            self._progress_state = None

    def _elapsed(self) -> float:
        """Budget-clock seconds used so far, this session's included."""
        if self._clock_start is None:
            return self.time_used
        return self.time_used + CLOCKS[self.budget_clock]() - self._clock_start

    def _out_of_time(self) -> bool:
        return self.time_budget is not None and self._elapsed() >= self.time_budget

    def evaluate(self, x, beta: float | None = None) -> dict[str, float]:
        """Mean loss terms on ``x`` (no gradients, eval mode; sharded over ranks)."""
        was_training = self.module.training
        self.module.eval()
        if beta is not None:
            self.module.beta = beta
        ctx = self.dist
        rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
        size, n, device = max(self.batch_size, 512), x.shape[0], self.device
        sums = _Sums()
        with pyro.validation_enabled(False), self._amp():
            for j in range(rank, -(-n // size), world):
                xb = x[j * size : min((j + 1) * size, n)]
                if xb.device != device:
                    xb = xb.to(device, non_blocking=True)
                sums.add(eval_step(self.module, self.objective, xb), xb.shape[0])
        self.module.train(was_training)
        return sums.means(self.module.has_latent_sites, ctx)

    # -- divergence ----------------------------------------------------------
    def _diverged(self, i: int, n_batches: int, terms: LossTerms) -> None:
        """Stop with one line, or roll back to the last good state (raises _Rollback)."""
        loss = float(terms.loss.detach())
        what = f"the loss became {loss}" if not math.isfinite(loss) else "a gradient became NaN/inf"
        where = f"epoch {self.epoch + 1}, step {i + 1} of {n_batches}"
        tried = len(self.rollbacks)
        if self.on_divergence == "stop":
            raise TrainingError(
                f"training diverged in {where}: {what} (the step was skipped, the weights are "
                "finite); the last good checkpoint is kept; lower --learning-rate or use "
                "--on-divergence rollback"
            )
        if tried >= self.divergence_retries or self._snapshot is None:
            raise TrainingError(
                f"training diverged in {where} ({what}) after {tried} rollback(s) with the "
                f"learning rate lowered to {self.learning_rate:g}; giving up (the last good "
                "checkpoint is kept)"
            )
        spent = self._elapsed()
        rollbacks = [*self.rollbacks]
        scale = self.lr_scale * self.rollback_lr_factor
        snap = copy.deepcopy(self._snapshot)
        self.module.load_state_dict(snap["module"])
        self.load_state_dict(snap["trainer"])
        self.lr_scale = scale
        self._apply_lr()
        rollbacks.append(
            {"epoch": self.epoch, "step": self.step, "diverged_at": where, "lr": self.learning_rate}
        )
        self.rollbacks = rollbacks
        self.time_used, self._clock_start = spent, CLOCKS[self.budget_clock]()
        (logger.warning if self.is_main else logger.debug)(
            "training diverged in %s (%s); rolled back to step %d (epoch %d) with the "
            "learning rate lowered to %g (rollback %d of at most %d)",
            where,
            what,
            self.step,
            self.epoch,
            self.learning_rate,
            len(rollbacks),
            self.divergence_retries,
        )
        raise _Rollback

    def _take_snapshot(self) -> None:
        """Keep the current state in memory as the rollback target."""
        if self.on_divergence != "rollback":
            return
        self._snapshot = copy.deepcopy(
            {"module": self.module.state_dict(), "trainer": self.state_dict(gather=False)}
        )

    # -- main loop -----------------------------------------------------------
    def fit(self, x_train, x_val=None) -> list[dict]:
        """Train until ``epochs`` or early stopping; restore the best weights.

        While it trains, the run folder is held (:func:`pyrovae.runs.hold`: a second
        writer fails) and SIGINT / SIGTERM stop training after the current step with a
        checkpoint of that position (:mod:`pyrovae.training.interrupt`).

        Raises
        ------
        RunLockedError
            Another process trains into ``run_dir``.
        TrainingInterrupted
            On SIGINT or SIGTERM, after the checkpoint is written.
        """
        with hold(self.run_dir if self.is_main else None), self._stop:
            return self._fit(x_train, x_val)

    def _interrupt(self) -> TrainingInterrupted:
        """Checkpoint the current position (mid-epoch if ``_resume_partial`` is set) and
        return the exception that ends training on the signal received."""
        signum = self._stop.stopped_by
        name = signal_name(signum)
        where = (
            f"in epoch {self.epoch + 1}"
            if self._resume_partial is not None
            else f"after epoch {self.epoch}"
        )
        stopped = f"training stopped by {name} at step {self.step}, {where}"
        if self.run_dir is None:
            message = f"{stopped}; no run folder, nothing saved"
        else:
            self.save(self.run_dir / CHECKPOINT)
            message = f"{stopped}; the checkpoint in {str(self.run_dir)!r} holds this position"
        return TrainingInterrupted(signum, message)

    def _fit(self, x_train, x_val=None) -> list[dict]:
        from tqdm.auto import tqdm

        ctx = self.dist
        has_val = x_val is not None and x_val.shape[0] > 0
        self._params = [p for p in self.module.parameters() if p.requires_grad]
        bar = tqdm(
            total=self.epochs,
            initial=self.epoch,
            disable=not (self.progress and self.is_main),
            unit="epoch",
            dynamic_ncols=True,
        )
        self.budget_spent = self._out_of_time()
        if self.run_dir is not None and self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for tmp in remove_stale_temporaries(self.run_dir):
                logger.debug("removed %s, left by an interrupted write", tmp)
            record_session(
                self.run_dir,
                from_epoch=self.epoch,
                time_used=self.time_used,
                time_budget=self.time_budget,
                budget_clock=self.budget_clock,
                world_size=ctx.world_size if ctx is not None else 1,
                device=str(self.device),
                amp=self.amp,
            )
            if self.history:  # drop rows of epochs that a crash lost
                self.write_metrics()
        if ctx is not None:
            if not self._rng_restored and ctx.rank > 0:
                self._seed_rank_stream()
            probe = x_train[:2]
            with pyro.validation_enabled(False):
                self._ddp = D.wrap(self.module, self.objective, ctx, probe.to(self.device))
        self._last_module = self._last_rng = None
        self._apply_lr()
        self._clock_start = CLOCKS[self.budget_clock]()
        self._take_snapshot()
        try:
            while self.epoch < self.epochs and not self.stopped_early and not self.budget_spent:
                stop = self._stop.requested  # a signal after an epoch's last step
                if ctx is not None:
                    stop = D.any_flags(ctx, stop)[0]
                if stop:
                    raise self._interrupt()
                try:
                    self._epoch(x_train, x_val, has_val, bar)
                except _Rollback:
                    bar.reset(total=self.epochs)
                    bar.update(self.epoch)
        finally:
            self.time_used = self._elapsed()
            self._clock_start = None
            self._ddp = None
            bar.close()
        if ctx is not None and not D.parameters_agree(ctx, self.module):
            raise TrainingError("the ranks' parameters differ after training (a bug; report it)")
        if self.stopped_early:
            logger.info("early stopping after epoch %d (best %d)", self.epoch, self.best_epoch)
        self._last_rng = {**_rng_state(self.device), "shuffle": self.generator.get_state()}
        if self.best_state is not None:
            self._last_module = copy.deepcopy(self.module.state_dict())
            self.module.load_state_dict(self.best_state)
        return self.history

    def _seed_rank_stream(self) -> None:
        seed = D.rank_seed(self.seed * 1_000_003 + self.step, self.dist.rank)
        torch.manual_seed(seed)  # also seeds every CUDA device

    def _epoch(self, x_train, x_val, has_val: bool, bar) -> None:
        ctx = self.dist
        t0, c0 = time.perf_counter(), time.process_time()
        with pyro.validation_enabled(False), self._amp():
            train = self._train_epoch(x_train)
        if train is None:  # the time budget ran out inside the epoch (checkpointed)
            return
        beta = self.schedule(self.epoch + 1)
        val = self.evaluate(x_val, beta) if has_val else {k: math.nan for k in train}
        if not math.isfinite(train["loss"]):
            raise TrainingError(
                f"the training loss became {train['loss']} in epoch {self.epoch + 1}; "
                "lower --learning-rate or check the data (the last good checkpoint "
                "is kept)"
            )
        self.epoch += 1
        row = {"epoch": self.epoch, "beta": beta}
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        row["seconds"] = time.perf_counter() - t0
        row["cpu_seconds"] = time.process_time() - c0
        row["lr"] = self.learning_rate
        self.history.append(row)
        monitored = val["loss"] if has_val else train["loss"]
        if self.stopper.update(monitored, self.schedule.settled(self.epoch)):
            self.best_state = copy.deepcopy(self.module.state_dict())
            self.best_epoch = self.epoch
        elif self.lr_decay_patience and self.stopper.bad_epochs % self.lr_decay_patience == 0:
            self.lr_scale *= self.lr_decay_factor
            self._apply_lr()
            logger.info(
                "epoch %d: no better loss for %d epochs; learning rate now %.3g",
                self.epoch,
                self.stopper.bad_epochs,
                self.learning_rate,
            )
        self.stopped_early = self.stopper.should_stop
        if ctx is not None:  # every rank has the same numbers; make sure they agree
            self.stopped_early = bool(D.broadcast_object(ctx, self.stopped_early))
        logger.debug("epoch %d: %s", self.epoch, row)
        bar.update(1)
        bar.set_postfix(loss=f"{train['loss']:.2f}", val=f"{val['loss']:.2f}", beta=f"{beta:.3g}")
        if self.run_dir is not None:
            if self.is_main:
                self.write_metrics()
            self.save(self.run_dir / CHECKPOINT)
        self._take_snapshot()

    # -- persistence ---------------------------------------------------------
    def write_metrics(self) -> None:
        """Rewrite ``metrics.csv`` from the history (atomic; consistent after resume)."""
        write_metrics(self.run_dir, self.history)

    def state_dict(self, gather: bool = True) -> dict:
        """Everything needed to resume, as plain data and tensors.

        Under ``distributed`` with ``gather`` (a collective: every rank must call it)
        the random-number states of all ranks are included and the partial sums of an
        epoch in progress are summed over ranks; without ``gather`` the state is this
        rank's own (the in-memory rollback target).
        """
        ctx = self.dist if gather else None
        device = self.device
        rng = {**_rng_state(device), "shuffle": self.generator.get_state()}
        if ctx is not None:
            rng["ranks"] = D.gather_objects(ctx, _rng_state(device))
        partial = self._resume_partial  # loaded, not yet resumed from
        if self._progress_state is not None:
            partial = self._partial_epoch(**self._progress_state, gather=gather)
        return {
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_module": self.best_state,
            "stopped_early": self.stopped_early,
            "time_used": self._elapsed(),
            "budget_clock": self.budget_clock,
            "early_stopping": self.stopper.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "partial_epoch": partial,
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "world_size": self.dist.world_size if self.dist is not None else 1,
            "rng_local": ctx is None and self.dist is not None,
            # Checkpoints without this flag (written by earlier development versions)
            # stored the best weights as `module` after fit and counted a budget-stopped
            # epoch as done, so resuming them does not continue the run exactly.
            "resume_exact": True,
        }

    def _partial_epoch(self, batch: int, shuffle_start, sums, gather: bool = True) -> dict:
        """The position in an unfinished epoch, as saved in a checkpoint: the next step
        is step ``batch``; under ``distributed`` with ``gather`` (a collective) the
        partial sums of every rank are included."""
        ctx = self.dist if gather else None
        return {
            "batch": batch,
            "shuffle_start": shuffle_start,
            "shuffle": self.generator.get_state(),
            "sums": sums.values(),
            "sums_ranks": (
                D.gather_objects(ctx, sums.values()) if ctx is not None else [sums.values()]
            ),
            "local": not gather and self.dist is not None,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict` (the module's weights are restored by the caller)."""
        self.epoch = int(state["epoch"])
        self.step = int(state.get("step", 0))
        self.history = list(state["history"])
        self.best_epoch = int(state["best_epoch"])
        self.best_state = state["best_module"]
        self.stopped_early = bool(state["stopped_early"])
        if state.get("budget_clock", self.budget_clock) == self.budget_clock:
            self.time_used = float(state.get("time_used", 0.0))
        self.stopper.load_state_dict(state["early_stopping"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.rollbacks = list(state.get("rollbacks", []))
        self._apply_lr()
        self._resume_partial = state.get("partial_epoch")
        rng = state["rng"]
        self.generator.set_state(rng["shuffle"])
        device, ctx = self.device, self.dist
        ranks = rng.get("ranks")
        if ctx is None:
            own = rng  # rank 0's stream, or the only one
        elif ranks is None:  # this rank's own snapshot, or a single-process checkpoint
            own = rng if state.get("rng_local") or ctx.is_main else None
        elif len(ranks) == ctx.world_size:
            own = ranks[ctx.rank]
        else:
            own = rng if ctx.is_main else None
        if own is not None:
            _set_rng_state(own, device)
        self._rng_restored = own is not None
        saved_world = len(ranks) if ranks else int(state.get("world_size", 1))
        world = ctx.world_size if ctx is not None else 1
        if saved_world != world and not state.get("rng_local"):
            logger.warning(
                "the checkpoint was written by %d process(es) and is resumed by %d: the "
                "data order is the same, the Monte Carlo draws are not",
                saved_world,
                world,
            )

    def save(self, path: str | Path) -> None:
        """Atomically write a resumable checkpoint, keeping the previous one (rank 0
        writes; under ``distributed`` every rank must call this). Refuses non-finite
        weights or optimizer state."""
        state = self.state_dict()
        loaded = self.module.state_dict()
        module_state = loaded
        if self._last_module is not None:  # after fit: the best weights are loaded
            module_state = self._last_module
        if self._last_rng is not None and self.dist is None:
            state["rng"] = self._last_rng
        best = state.get("best_module") or {}
        weights = [*module_state.values(), *loaded.values(), *best.values()]
        if not _all_finite(weights) or not _all_finite(
            t for s in self.optimizer.state.values() for t in s.values()
        ):
            raise TrainingError(
                "refusing to write a checkpoint with non-finite weights or optimizer state; "
                "the last good checkpoint is kept"
            )
        if not self.is_main:
            return
        save_checkpoint(
            path,
            {**self.payload(), "module": module_state, "trainer": state},
            keep_previous=True,
        )

"""The training loop shared by every model family (VAE, HVAE, AE, DAE).

Per epoch: shuffled minibatches (:class:`~pyrovae.data.Batch`), one SVI step each
(:func:`~pyrovae.training.step.train_step`) at the KL weight beta that the schedule gives
at the middle of the step, passed to the objective as an argument; then a validation
pass and a row of metrics. Everything else is a callback
(:mod:`pyrovae.training.callbacks`): early stopping and the best weights, plateau
decay, divergence rollback, ``metrics.csv``, checkpoints, ``run.json`` and the progress
bar. The best weights (kept by early stopping) are restored at the end. All state
needed to resume (weights, optimizer, RNG streams, history, the callbacks' state, the
position inside an epoch) is plain data in the checkpoint
(:mod:`pyrovae.training.persistence`), so a resumed run continues exactly where an
uninterrupted run would be.

Metrics per epoch (per data point, in nats): ``loss`` (the beta-weighted
objective), ``elbo`` = recon - KL (beta = 1), ``recon`` = E_q[log p(x|z)],
``kl`` = KL(q(z|x) || p(z)); for autoencoders ``kl`` = 0 and ``elbo`` is NaN;
``seconds`` and ``cpu_seconds`` are the epoch's wall-clock and process CPU time;
``lr`` is the learning rate in use.

The loop itself keeps three guarantees:

* **Time budget** (``time_budget`` seconds on the ``budget_clock``,
  :mod:`pyrovae.training.budget`), checked after every step. Once spent, the epoch in
  progress ends: at its last step it is validated and counted; inside it, the position
  is checkpointed (the unfinished epoch is neither validated nor counted) so that a
  resume with a larger budget continues it bit for bit.
* **Divergence**: a step whose loss or gradient is NaN or infinite is skipped
  (:func:`~pyrovae.training.step.step_is_finite`), so the weights never see it; the
  callbacks are told (the rollback callback restores the last save point), and if none
  restores a state, training stops with one line (the last good checkpoint stays on
  disk). A checkpoint is never written with non-finite weights or optimizer state.
* **Signals**: while :meth:`Trainer.fit` runs, the run folder is held (one writer) and
  SIGINT / SIGTERM stop training after the current step with a checkpoint of that
  position (:mod:`pyrovae.training.interrupt`).

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
from collections.abc import Callable, Sequence
from pathlib import Path

import pyro
import torch

from .. import config
from ..data import TensorBatches
from ..data.batch import Batch, as_batch
from ..objectives import BetaSchedule, LossTerms, Objective
from ..runs import hold
from ..runs.metrics import METRIC_COLUMNS
from ..runs.names import CHECKPOINT
from . import distributed as D
from .budget import CLOCKS, BudgetClock
from .callbacks import Callback, Divergence, Rollback, TrainingError
from .interrupt import StopRequest, TrainingInterrupted, signal_name
from .options import TrainingOptions
from .persistence import ResumableState
from .precision import autocast_networks
from .state import EpochPosition, EpochSums, rng_state
from .step import eval_step, train_step

logger = logging.getLogger(__name__)

__all__ = [
    "CLOCKS",
    "DIVERGENCE_POLICIES",
    "METRIC_COLUMNS",
    "Trainer",
    "TrainingError",
    "TrainingOptions",
]

#: What to do when the loss or a gradient becomes NaN or infinite.
DIVERGENCE_POLICIES = config.DIVERGENCE_POLICIES


class Trainer(ResumableState):
    """Fit a model family's Pyro program by SVI.

    Parameters
    ----------
    module : LatentModule
        Model and guide (``module.model``, ``module.guide``).
    objective : Objective
        ELBO estimator, called as ``objective(model, guide, batch, beta=beta)``.
    schedule : BetaSchedule
        beta as a function of fractional epoch.
    optimizer : torch.optim.Optimizer
        Over ``module.parameters()``.
    options : TrainingOptions
        Epochs, the global minibatch size (over all ranks), the seed of the shuffling
        stream (and of the other ranks' Monte Carlo streams), the time budget, amp;
        the other options are the callbacks'.
    callbacks : sequence of Callback
        Run in this order at each event (:func:`~pyrovae.training.callbacks.
        standard_callbacks` builds the estimators' list).
    run_dir : path, optional
        The run folder: held while training, where checkpoints go (the callbacks
        write the other files).
    payload : callable, optional
        Returns the plain data (config, component names) stored with each checkpoint.
    transform : callable, optional
        ``transform(x, generator)`` applied to the data of each training minibatch,
        drawing from the trainer's seeded stream (dynamic binarization).
    distributed : DistContext, optional
        Train data-parallel in this process group.
    """

    def __init__(
        self,
        module,
        objective: Objective,
        schedule: BetaSchedule,
        optimizer: torch.optim.Optimizer,
        options: TrainingOptions,
        callbacks: Sequence[Callback] = (),
        *,
        run_dir: str | Path | None = None,
        payload: Callable[[], dict] | None = None,
        transform: Callable | None = None,
        distributed: D.DistContext | None = None,
    ) -> None:
        self.module, self.objective, self.schedule = module, objective, schedule
        self.optimizer, self.options = optimizer, options
        self.callbacks = list(callbacks)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.payload = payload or dict
        self.transform = transform
        self.dist = distributed
        self.amp = bool(options.amp)
        self.generator = torch.Generator().manual_seed(int(options.seed))
        self.clock = BudgetClock(options.time_budget, options.budget_clock)
        self.budget_spent = False
        self.epoch = 0
        self.step = 0  # optimizer steps taken (or skipped) over all sessions
        self.history: list[dict] = []
        self.monitored = math.nan  # the loss early stopping watches, of the last epoch
        self.best_state: dict | None = None
        self.best_epoch = 0
        self.stopped_early = False
        self.lr_scale = 1.0
        self.rollbacks: list[dict] = []
        self._base_lrs = [g["lr"] for g in optimizer.param_groups]
        self._resume_partial: dict | None = None  # a saved position, not yet resumed
        self._position: EpochPosition | None = None  # of the epoch in progress
        self._rng_restored = False
        # Set when fit() returns: the last training weights and random-number state,
        # which checkpoints written after fit (with the best weights loaded) keep,
        # so that a resumed run continues from where training stopped.
        self._last_module: dict | None = None
        self._last_rng: dict | None = None
        self._ddp = None
        self._params: list[torch.Tensor] = []
        self._stop = StopRequest()  # installed while fit() runs
        # The splits being fitted, while fit() runs (for callbacks that look at the data)
        self.train_data: Batch | None = None
        self.val_data: Batch | None = None

    # -- what callbacks read and call ---------------------------------------------------
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

    @property
    def time_used(self) -> float:
        """Seconds used on the budget clock, over all sessions (this one once it ends)."""
        return self.clock.used

    @property
    def mid_epoch(self) -> bool:
        """Whether steps of the epoch in progress remain."""
        return self._position is not None and self._position.unfinished

    @property
    def learning_rate(self) -> float:
        """The learning rate in use (of the first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr_scale(self, scale: float) -> None:
        """Use the initial learning rates times ``scale``."""
        self.lr_scale = float(scale)
        self._apply_lr()

    def broadcast(self, value):
        """``value`` as rank 0 has it (itself without a process group)."""
        return value if self.dist is None else D.broadcast_object(self.dist, value)

    def callback(self, cls: type[Callback]) -> Callback | None:
        """The first callback of type ``cls``, or None."""
        return next((cb for cb in self.callbacks if isinstance(cb, cls)), None)

    def checkpoint(self) -> None:
        """Write the checkpoint into the run folder, if there is one (every rank calls
        it under ``torch.distributed``)."""
        if self.run_dir is not None:
            self.save(self.run_dir / CHECKPOINT)

    def snapshot(self) -> dict:
        """The state as a checkpoint holds it, in memory (this rank's own)."""
        state = {"module": self.module.state_dict(), "trainer": self.state_dict(gather=False)}
        return copy.deepcopy(state)

    def restore(self, snapshot: dict) -> None:
        """Go back to :meth:`snapshot`'s state; the budget keeps the time spent since."""
        spent = self.clock.elapsed()
        snapshot = copy.deepcopy(snapshot)
        self.module.load_state_dict(snapshot["module"])
        self.load_state_dict(snapshot["trainer"])
        self.clock.restart(spent)

    def _apply_lr(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self._base_lrs, strict=True):
            group["lr"] = base * self.lr_scale

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def _amp(self):
        if not self.amp:
            return contextlib.nullcontext()
        return autocast_networks(self.module, self.device.type, torch.bfloat16)

    # -- the loop ---------------------------------------------------------------------
    def fit(self, x_train, x_val=None) -> list[dict]:
        """Train until ``epochs``, early stopping or the budget; restore the best weights.

        ``x_train`` and ``x_val`` are tensors, data sets read on demand or
        :class:`~pyrovae.data.Batch` objects holding a whole split with its labels.

        Raises
        ------
        RunLockedError
            Another process trains into ``run_dir``.
        TrainingInterrupted
            On SIGINT or SIGTERM, after the checkpoint is written.
        TrainingError
            The loss diverged (and no callback rolled back).
        """
        with hold(self.run_dir if self.is_main else None), self._stop:
            return self._fit(as_batch(x_train), x_val)

    def _fit(self, train: Batch, x_val) -> list[dict]:
        val = as_batch(x_val) if x_val is not None and len(x_val) > 0 else None
        self._params = [p for p in self.module.parameters() if p.requires_grad]
        self.budget_spent = self.clock.out_of_time()
        self._join_ranks(train)
        self._last_module = self._last_rng = None
        self._apply_lr()
        self.clock.start()
        self.train_data, self.val_data = train, val
        try:
            self._call("on_fit_start")
            while (
                self.epoch < self.options.epochs
                and not self.stopped_early
                and not self.budget_spent
            ):
                stop = self._stop.requested  # a signal after an epoch's last step
                if self.dist is not None:
                    stop = D.any_flags(self.dist, stop)[0]
                if stop:
                    raise self._interrupt()
                with contextlib.suppress(Rollback):  # restarts from the restored state
                    self._epoch(train, val)
        finally:
            self.clock.stop()
            self._ddp = None
            try:
                self._call("on_fit_end")
            finally:
                self.train_data = self.val_data = None
        if self.dist is not None and not D.parameters_agree(self.dist, self.module):
            raise TrainingError("the ranks' parameters differ after training (a bug; report it)")
        if self.stopped_early:
            logger.info("early stopping after epoch %d (best %d)", self.epoch, self.best_epoch)
        self._last_rng = {**rng_state(self.device), "shuffle": self.generator.get_state()}
        if self.best_state is not None:
            self._last_module = copy.deepcopy(self.module.state_dict())
            self.module.load_state_dict(self.best_state)
        return self.history

    def _join_ranks(self, train: Batch) -> None:
        """Under ``torch.distributed``: seed this rank's Monte Carlo stream (unless a
        checkpoint restored it) and wrap the objective in DistributedDataParallel."""
        ctx = self.dist
        if ctx is None:
            return
        if not self._rng_restored and ctx.rank > 0:
            torch.manual_seed(D.rank_seed(self.options.seed * 1_000_003 + self.step, ctx.rank))
        with pyro.validation_enabled(False):
            probe = train[:2].to(self.device)
            self._ddp = D.wrap(self.module, self.objective, ctx, probe)

    def _epoch(self, train: Batch, val: Batch | None) -> None:
        """One epoch: train, validate, append the row, run the callbacks."""
        t0, c0 = time.perf_counter(), time.process_time()
        with pyro.validation_enabled(False), self._amp():
            sums = self._train_epoch(train)
        if sums is None:  # the time budget ran out inside the epoch (checkpointed)
            return
        has_kl = self.module.has_latent_sites
        means = sums.means(has_kl, self.dist)
        beta = self.schedule(self.epoch + 1)
        val_means = self.evaluate(val, beta) if val is not None else dict.fromkeys(means, math.nan)
        if not math.isfinite(means["loss"]):
            raise TrainingError(
                f"the training loss became {means['loss']} in epoch {self.epoch + 1}; "
                "lower --learning-rate or check the data (the last good checkpoint "
                "is kept)"
            )
        self.epoch += 1
        row = {"epoch": self.epoch, "beta": beta}
        row.update({f"train_{k}": v for k, v in means.items()})
        row.update({f"val_{k}": v for k, v in val_means.items()})
        row["seconds"] = time.perf_counter() - t0
        row["cpu_seconds"] = time.process_time() - c0
        row["lr"] = self.learning_rate
        self.history.append(row)
        self.monitored = val_means["loss"] if val is not None else means["loss"]
        logger.debug("epoch %d: %s", self.epoch, row)
        self._call("on_epoch_end")

    def _train_epoch(self, train: Batch) -> EpochSums | None:
        """The epoch's steps; None if the budget ran out before its last step."""
        self.module.train()
        batches = TensorBatches(train, self.options.batch_size, True, self.generator)
        it, position = self._begin_epoch(batches)
        self._position = position
        try:
            for i in range(position.batch, position.n_batches):
                batch = self._prepare(next(it))
                beta = self.schedule(self.epoch + (i + 0.5) / position.n_batches)
                terms, n_local, finite = self._step(batch, beta)
                diverged, out_of_time = not finite, self.clock.out_of_time()
                stop = self._stop.requested
                if self.dist is not None:
                    diverged, out_of_time, stop = D.any_flags(
                        self.dist, diverged, out_of_time, stop
                    )
                if diverged:
                    self._diverged(i, position.n_batches, terms)
                if n_local:
                    position.sums.add(terms, n_local)
                self.step += 1
                position.batch = i + 1
                if out_of_time:
                    return self._budget_spent()
                if stop and position.unfinished:  # SIGINT / SIGTERM: checkpoint this position
                    self._freeze_position()
                    raise self._interrupt()
                self._call("on_step_end")
        finally:
            self._position = None
        return position.sums

    def _begin_epoch(self, batches: TensorBatches) -> tuple:
        """The epoch's batch iterator and position: its start, or a saved position
        (the epoch's permutation drawn again and the steps done skipped)."""
        ctx = self.dist
        partial, self._resume_partial = self._resume_partial, None
        if partial is not None:
            self.generator.set_state(partial["shuffle_start"])
        position = EpochPosition(0, len(batches), self.generator.get_state(), EpochSums())
        it = iter(batches)
        if partial is None:
            return it, position
        position.batch = int(partial["batch"])
        for _ in range(position.batch):  # draws the epoch's permutation again
            next(it)
        self.generator.set_state(partial["shuffle"])
        ranks = partial["sums_ranks"]
        if partial.get("local"):  # this rank's own snapshot
            position.sums.load(partial["sums"])
        elif ctx is not None and len(ranks) == ctx.world_size:
            position.sums.load(ranks[ctx.rank])  # each rank its own: the same rounding
        elif ctx is None or ctx.is_main:
            position.sums.load([sum(column) for column in zip(*ranks, strict=True)])
        logger.info(
            "resuming epoch %d at step %d of %d", self.epoch + 1, position.batch, len(batches)
        )
        return it, position

    def _prepare(self, batch: Batch) -> Batch:
        """The training minibatch transformed (on the CPU, where the shuffling stream
        draws) and on the module's device."""
        if self.transform is not None:
            x = batch.x
            if x.device.type == "cpu":
                x = self.transform(x, self.generator)
            else:
                x = self.transform(x.cpu(), self.generator).to(x.device)
            batch = batch.replace(x=x)
        if self.options.mask_rate > 0:
            batch = self.drop_entries(batch)
        return batch.to(self.device, non_blocking=True)

    def drop_entries(self, batch: Batch) -> Batch:
        """``batch`` with each observed entry dropped from its mask with probability
        ``options.mask_rate`` (``--mask-rate``), on top of the entries already missing:
        the draws come from the trainer's generator (on the CPU), whose state the
        checkpoints keep, so a resumed run drops the same entries."""
        drop = torch.rand(tuple(batch.x.shape), generator=self.generator) < self.options.mask_rate
        keep = ~drop.to(batch.x.device)
        mask = keep if batch.mask is None else batch.mask & keep
        return batch.replace(mask=mask)

    def _step(self, batch: Batch, beta: float) -> tuple[LossTerms, int, bool]:
        """One SVI step on global batch ``batch`` (this rank's slice of it under DDP).

        Returns the loss terms of the local rows, their number and whether the loss
        and gradients were finite (if not, the optimizer step was skipped).
        """
        ctx = self.dist
        if ctx is None:
            local, divisor = batch, len(batch)
        else:
            local = batch[ctx.rank :: ctx.world_size]
            divisor = len(batch) / ctx.world_size
            if len(local) == 0:  # join the all-reduce with a zero contribution
                local, divisor = batch[:1], math.inf
        n_local = len(local) if divisor != math.inf else 0
        terms = train_step(
            self.module,
            self.objective,
            self.optimizer,
            local,
            beta,
            divisor=divisor,
            forward=self._ddp,
            params=self._params,
        )
        return terms, n_local, terms.finite

    def _budget_spent(self) -> EpochSums | None:
        """The time budget ran out after a step: note it; inside the epoch, save the
        position (a mid-epoch checkpoint) so that a resume with a larger budget
        continues this epoch exactly where it stopped. Returns None when the epoch is
        left unfinished (it is neither validated nor counted)."""
        self.budget_spent = True
        logger.info("time budget of %.0f s spent in epoch %d", self.clock.budget, self.epoch + 1)
        if not self.mid_epoch:
            return self._position.sums
        self._freeze_position()  # later checkpoints of this session keep it too
        self.checkpoint()
        return None

    def _freeze_position(self) -> None:
        """Keep the current position as the one to resume from (the epoch stops)."""
        self._resume_partial = self._partial_epoch(self._position)
        self._position = None

    def evaluate(self, x, beta: float | None = None) -> dict[str, float]:
        """Mean loss terms on ``x`` at KL weight ``beta`` (default 1), without gradients,
        in eval mode; the batches are shared out over the ranks. ``x`` are held-out rows:
        the module scores them in each of its ``held_out()`` contexts and the scores are
        averaged (a Bayesian decoder's weight KL is the training set's, not theirs)."""
        beta = 1.0 if beta is None else beta
        was_training = self.module.training
        self.module.eval()
        data = as_batch(x)
        rank, world = (self.dist.rank, self.dist.world_size) if self.dist else (0, 1)
        size, n, device = max(self.options.batch_size, 512), len(data), self.device
        sums = EpochSums()
        with pyro.validation_enabled(False), self._amp():
            for j in range(rank, -(-n // size), world):
                batch = data[j * size : min((j + 1) * size, n)].to(device, non_blocking=True)
                for context in self.module.held_out():
                    with context:
                        terms = eval_step(self.module, self.objective, batch, beta)
                    sums.add(terms, len(batch))
        self.module.train(was_training)
        return sums.means(self.module.has_latent_sites, self.dist)

    # -- stopping ----------------------------------------------------------------------
    def _diverged(self, i: int, n_batches: int, terms: LossTerms) -> None:
        """Tell the callbacks (a rollback raises :class:`Rollback`); else stop."""
        loss = float(terms.loss.detach())
        what = f"the loss became {loss}" if not math.isfinite(loss) else "a gradient became NaN/inf"
        event = Divergence(f"epoch {self.epoch + 1}, step {i + 1} of {n_batches}", what)
        self._call("on_divergence", event)
        raise TrainingError(
            f"training diverged in {event.where}: {what} (the step was skipped, the weights "
            "are finite); the last good checkpoint is kept; lower --learning-rate or use "
            "--on-divergence rollback"
        )

    def _interrupt(self) -> TrainingInterrupted:
        """Checkpoint the current position (mid-epoch if one is kept) and return the
        exception that ends training on the signal received."""
        signum = self._stop.stopped_by
        where = (
            f"in epoch {self.epoch + 1}"
            if self._resume_partial is not None
            else f"after epoch {self.epoch}"
        )
        stopped = f"training stopped by {signal_name(signum)} at step {self.step}, {where}"
        if self.run_dir is None:
            message = f"{stopped}; no run folder, nothing saved"
        else:
            self.checkpoint()
            message = f"{stopped}; the checkpoint in {str(self.run_dir)!r} holds this position"
        return TrainingInterrupted(signum, message)

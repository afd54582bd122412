"""The training loop shared by every model family (VAE, AE, DAE).

Per epoch: shuffled minibatches, one SVI step each (:func:`train_step`), the
KL weight beta set from the schedule at the middle of every step; then a
validation pass, a row of metrics, a checkpoint (atomic) and the early
stopping check. The best weights by validation loss are kept and restored at
the end. All state needed to resume (weights, optimizer, RNG streams, history,
early-stopping counters) is plain data in the checkpoint, so a resumed run
continues exactly where an uninterrupted run would be.

Metrics per epoch (per data point, in nats): ``loss`` (the beta-weighted
objective), ``elbo`` = recon - KL (beta = 1), ``recon`` = E_q[log p(x|z)],
``kl`` = KL(q(z|x) || p(z)); for autoencoders ``kl`` = 0 and ``elbo`` is NaN;
``seconds`` and ``cpu_seconds`` are the epoch's wall-clock and process CPU time.

A time budget (``time_budget`` seconds on the ``budget_clock``: ``"wall"`` or
``"cpu"``, the process's CPU time over all threads) is checked after every step;
once spent, the epoch in progress ends early, is validated and checkpointed,
and training stops. The time used is part of the checkpoint, so a resumed run
spends what is left of its budget (or of a larger one).
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import torch

from ..data import TensorBatches
from ..errors import PyrovaeError
from ..objectives import BetaSchedule, LossTerms, Objective
from .callbacks import EarlyStopping
from .checkpoint import atomic_write_text, save_checkpoint
from .provenance import record_session
from .step import eval_step, train_step

logger = logging.getLogger(__name__)

METRIC_COLUMNS = (
    "epoch",
    "beta",
    "train_loss",
    "train_elbo",
    "train_recon",
    "train_kl",
    "val_loss",
    "val_elbo",
    "val_recon",
    "val_kl",
    "seconds",
    "cpu_seconds",
)

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class TrainingError(PyrovaeError, RuntimeError):
    """Training cannot continue (for example the loss became NaN)."""


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

    def means(self, has_kl: bool) -> dict[str, float]:
        n = max(self.n, 1)
        recon, kl = float(self.recon) / n, float(self.kl) / n
        return {
            "loss": float(self.loss) / n,
            "elbo": recon - kl if has_kl else math.nan,
            "recon": recon,
            "kl": kl,
        }


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
        Budget, minibatch size, early-stopping patience (0: off).
    seed : int
        Seeds the minibatch shuffling stream.
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
    ) -> None:
        self.module = module
        self.objective = objective
        self.schedule = schedule
        self.optimizer = optimizer
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.stopper = EarlyStopping(patience)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.payload = payload or dict
        self.progress = progress
        self.transform = transform
        if budget_clock not in CLOCKS:
            raise PyrovaeError(
                f"budget_clock must be one of {', '.join(CLOCKS)}; got {budget_clock!r}"
            )
        self.time_budget = None if time_budget is None else float(time_budget)
        self.budget_clock = budget_clock
        self.time_used = 0.0  # seconds on the budget clock, over all sessions
        self.budget_spent = False
        self._clock_start: float | None = None
        self.epoch = 0
        self.history: list[dict] = []
        self.best_state: dict | None = None
        self.best_epoch = 0
        self.stopped_early = False

    # -- passes --------------------------------------------------------------
    def _train_epoch(self, x: torch.Tensor) -> dict[str, float]:
        self.module.train()
        batches = TensorBatches(x, self.batch_size, shuffle=True, generator=self.generator)
        n_batches = len(batches)
        sums = _Sums()
        for i, xb in enumerate(batches):
            if self.transform is not None:
                xb = self.transform(xb, self.generator)
            self.module.beta = self.schedule(self.epoch + (i + 0.5) / n_batches)
            sums.add(train_step(self.module, self.objective, self.optimizer, xb), xb.shape[0])
            if self._out_of_time():
                self.budget_spent = True
                logger.info(
                    "time budget of %.0f s spent in epoch %d", self.time_budget, self.epoch + 1
                )
                break
        return sums.means(self.module.has_latent_sites)

    def _elapsed(self) -> float:
        """Budget-clock seconds used so far, this session's included."""
        if self._clock_start is None:
            return self.time_used
        return self.time_used + CLOCKS[self.budget_clock]() - self._clock_start

    def _out_of_time(self) -> bool:
        return self.time_budget is not None and self._elapsed() >= self.time_budget

    def evaluate(self, x: torch.Tensor, beta: float | None = None) -> dict[str, float]:
        """Mean loss terms on ``x`` (no gradients, eval mode)."""
        was_training = self.module.training
        self.module.eval()
        if beta is not None:
            self.module.beta = beta
        sums = _Sums()
        with pyro.validation_enabled(False):
            for xb in TensorBatches(x, max(self.batch_size, 512)):
                sums.add(eval_step(self.module, self.objective, xb), xb.shape[0])
        self.module.train(was_training)
        return sums.means(self.module.has_latent_sites)

    # -- main loop -----------------------------------------------------------
    def fit(self, x_train: torch.Tensor, x_val: torch.Tensor | None = None) -> list[dict]:
        """Train until ``epochs`` or early stopping; restore the best weights."""
        from tqdm.auto import tqdm

        has_val = x_val is not None and x_val.shape[0] > 0
        bar = tqdm(
            total=self.epochs,
            initial=self.epoch,
            disable=not self.progress,
            unit="epoch",
            dynamic_ncols=True,
        )
        self.budget_spent = self._out_of_time()
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            record_session(
                self.run_dir,
                from_epoch=self.epoch,
                time_used=self.time_used,
                time_budget=self.time_budget,
                budget_clock=self.budget_clock,
            )
        self._clock_start = CLOCKS[self.budget_clock]()
        try:
            while self.epoch < self.epochs and not self.stopped_early and not self.budget_spent:
                t0, c0 = time.perf_counter(), time.process_time()
                with pyro.validation_enabled(False):
                    train = self._train_epoch(x_train)
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
                self.history.append(row)
                monitored = val["loss"] if has_val else train["loss"]
                if self.stopper.update(monitored, self.schedule.settled(self.epoch)):
                    self.best_state = copy.deepcopy(self.module.state_dict())
                    self.best_epoch = self.epoch
                self.stopped_early = self.stopper.should_stop
                logger.debug("epoch %d: %s", self.epoch, row)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{train['loss']:.2f}", val=f"{val['loss']:.2f}", beta=f"{beta:.3g}"
                )
                if self.run_dir is not None:
                    self.write_metrics()
                    self.save(self.run_dir / "checkpoint.pt")
        finally:
            self.time_used = self._elapsed()
            self._clock_start = None
            bar.close()
        if self.stopped_early:
            logger.info("early stopping after epoch %d (best %d)", self.epoch, self.best_epoch)
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        return self.history

    # -- persistence ---------------------------------------------------------
    def write_metrics(self) -> None:
        """Rewrite ``metrics.csv`` from the history (atomic; consistent after resume)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in self.history:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )
        atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())

    def state_dict(self) -> dict:
        """Everything needed to resume, as plain data and tensors."""
        return {
            "epoch": self.epoch,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_module": self.best_state,
            "stopped_early": self.stopped_early,
            "time_used": self._elapsed(),
            "budget_clock": self.budget_clock,
            "early_stopping": self.stopper.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "shuffle": self.generator.get_state()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict` (the module's weights are restored by the caller)."""
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.best_epoch = int(state["best_epoch"])
        self.best_state = state["best_module"]
        self.stopped_early = bool(state["stopped_early"])
        if state.get("budget_clock", self.budget_clock) == self.budget_clock:
            self.time_used = float(state.get("time_used", 0.0))
        self.stopper.load_state_dict(state["early_stopping"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["shuffle"])

    def save(self, path: str | Path) -> None:
        """Atomically write a resumable checkpoint."""
        save_checkpoint(
            path,
            {**self.payload(), "module": self.module.state_dict(), "trainer": self.state_dict()},
        )

"""Loading a fitted estimator, and continuing a run from its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RESUME_OVERRIDES
from ..errors import CheckpointError, ConfigError
from ..runs import hold
from ..runs.names import CHECKPOINT, CORRUPT_CHECKPOINT
from ..training import EarlyStopping, distributed
from ..training.checkpoint import load_resumable
from .base import Estimator, from_checkpoint, has_rows


def load(path: str | Path, **components: Any) -> Estimator:
    """Load any pyrovae estimator (VAE, AE, DAE) from a checkpoint or run folder."""
    return Estimator.load(path, **components)


def resume(
    run_dir: str | Path,
    x_train,
    x_val=None,
    epochs: int | None = None,
    *,
    y_train=None,
    y_val=None,
    progress: bool | None = None,
    train_transform=None,
    time_budget: float | None = None,
    **overrides: Any,
) -> Estimator:
    """Continue training a run from its ``checkpoint.pt`` (same data, same RNG streams).

    A ``checkpoint.pt`` that cannot be read is set aside as ``checkpoint.corrupt.pt``
    and the run continues from ``checkpoint.prev.pt`` (with a logged warning).

    Parameters
    ----------
    run_dir : path
        Run folder.
    x_train, x_val : array-like
        The same data the run was trained on.
    y_train, y_val : array-like, optional
        Their labels or conditions, as the run was trained with (conditional families).
    epochs : int, optional
        New total epoch budget (to extend a finished run); it must exceed the
        epochs already trained.
    progress : bool, optional
        Show a progress bar (default: as when the run was started).
    train_transform : callable, optional
        The same per-minibatch transform the run was trained with.
    time_budget : float, optional
        New total time budget in seconds (all sessions together) for a run that
        was stopped by its budget; it must exceed the time already used.
    **overrides
        New values of settings that do not change the model or the data
        (:data:`RESUME_OVERRIDES`: device, amp, checkpoint_every, on_divergence,
        divergence_retries, rollback_lr_factor).
    """
    bad = set(overrides) - set(RESUME_OVERRIDES)
    if bad:
        raise ConfigError(
            f"resume cannot change {', '.join(sorted(bad))}; only "
            f"{', '.join(RESUME_OVERRIDES)} (and the epoch and time budgets)"
        )
    run_dir = Path(run_dir)
    ctx = distributed.current()
    with hold(run_dir if ctx is None or ctx.is_main else None, create=False):
        return _resume(
            run_dir,
            (x_train, y_train),
            (x_val, y_val),
            epochs,
            progress,
            train_transform,
            time_budget,
            overrides,
        )


def _resume(
    run_dir: Path,
    train: tuple,
    val: tuple,
    epochs,
    progress,
    train_transform,
    time_budget,
    overrides: dict[str, Any],
) -> Estimator:
    """:func:`resume` in a run folder this process holds (one writer at a time)."""
    ckpt, used_path = load_resumable(run_dir)
    if used_path.name != CHECKPOINT:  # set the unreadable one aside
        ctx = distributed.current()
        distributed.barrier(ctx)  # every rank has read the previous one
        corrupt = run_dir / CHECKPOINT
        if corrupt.exists() and (ctx is None or ctx.is_main):
            corrupt.replace(run_dir / CORRUPT_CHECKPOINT)
    if overrides:
        ckpt = {**ckpt, "params": {**ckpt.get("params", {}), **overrides}}
    est = from_checkpoint(ckpt, weights="last")
    if "trainer" not in ckpt:
        raise CheckpointError(f"{str(run_dir)!r} holds no training state to resume")
    done = int(ckpt["trainer"]["epoch"])
    used = float(ckpt["trainer"].get("time_used", 0.0))
    if time_budget is not None:
        if float(time_budget) <= used:
            raise ConfigError(
                f"the run has already used {used:.0f} s; pass a larger total --time-budget "
                "to continue it"
            )
        est.time_budget = float(time_budget)
    elif est.time_budget is not None and used >= est.time_budget:
        raise ConfigError(
            f"the run has spent its time budget ({used:.0f} of {est.time_budget:.0f} s); "
            "pass a larger total --time-budget to continue it"
        )
    if epochs is not None:
        if int(epochs) <= done:
            raise ConfigError(
                f"the run has already trained {done} epochs; pass a larger total --epochs "
                "to continue it"
            )
        est.epochs = int(epochs)
    elif done >= est.epochs or ckpt["trainer"].get("stopped_early"):
        raise ConfigError(
            f"the run is finished ({done} of {est.epochs} epochs"
            + (", stopped early" if ckpt["trainer"].get("stopped_early") else "")
            + "); pass a larger total --epochs to continue it"
        )
    if progress is not None:
        est.progress = bool(progress)
    est.module_.train()
    (x_train, y_train), (x_val, y_val) = train, val
    rows, mask = _training_rows(est, x_train, "X")
    x = est.with_targets(rows, y_train, "y_train", mask)
    xv = None
    if has_rows(x_val):
        rows, mask = _training_rows(est, x_val, "X_val")
        xv = est.with_targets(rows, y_val, "y_val", mask)
    trainer = est.make_trainer(run_dir, ckpt.get("data", {}), train_transform)
    trainer.load_state_dict(ckpt["trainer"])
    if epochs is not None:  # extending a run: early stopping counts afresh
        trainer.stopped_early = False
        stopper = trainer.callback(EarlyStopping)
        if stopper is not None:
            stopper.restart()
    return est.fit_with(trainer, x, xv)


def _training_rows(est: Estimator, x, name: str):
    """``(rows, mask)``: ``x`` validated (a stream stays one), and for a run trained
    with ``missing="mask"`` its zero-filled rows with their mask (None: no NaN)."""
    if est.missing == "mask":
        data = est.as_observed(x, name)
        return data.x, data.mask
    return est.as_input(x, name, stream=True), None

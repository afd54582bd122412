"""What a checkpoint holds of the trainer, and restoring it: the
:class:`~pyrovae.training.Trainer`'s ``state_dict``, ``load_state_dict`` and ``save``.

The trainer state is plain data and tensors (the format of earlier versions: run
folders written by them load, evaluate and resume): the epoch and step counts, the
history, the best weights and their epoch, the time used on the budget clock, the
optimizer state, the random-number streams (the shuffling stream, torch's, and under
``torch.distributed`` every rank's), the position inside an unfinished epoch, the
learning-rate scale and the rollbacks, and each stateful callback's entry (early
stopping's ``"early_stopping"``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import distributed as D
from .callbacks import TrainingError
from .checkpoint import save_checkpoint
from .state import EpochPosition, all_finite, rng_state, set_rng_state

logger = logging.getLogger(__name__)


class ResumableState:
    """The trainer's checkpoint methods (a mixin of :class:`~pyrovae.training.Trainer`,
    whose attributes they read and set)."""

    def state_dict(self, gather: bool = True) -> dict:
        """Everything needed to resume, as plain data and tensors.

        Under ``distributed`` with ``gather`` (a collective: every rank must call it)
        the random-number states of all ranks are included and the partial sums of an
        epoch in progress are summed over ranks; without ``gather`` the state is this
        rank's own (the in-memory rollback target).
        """
        ctx = self.dist if gather else None
        device = self.device
        rng = {**rng_state(device), "shuffle": self.generator.get_state()}
        if ctx is not None:
            rng["ranks"] = D.gather_objects(ctx, rng_state(device))
        partial = self._resume_partial  # saved or frozen, not yet resumed from
        if self.mid_epoch:
            partial = self._partial_epoch(self._position, gather=gather)
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_module": self.best_state,
            "stopped_early": self.stopped_early,
            "time_used": self.clock.elapsed(),
            "budget_clock": self.clock.clock,
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
        for cb in self.callbacks:
            if cb.state_key is not None:
                state[cb.state_key] = cb.state_dict()
        return state

    def _partial_epoch(self, position: EpochPosition, gather: bool = True) -> dict:
        """The position in an unfinished epoch, as saved in a checkpoint: the next step
        is step ``batch``; under ``distributed`` with ``gather`` (a collective) the
        partial sums of every rank are included."""
        ctx = self.dist if gather else None
        sums = position.sums
        return {
            "batch": position.batch,
            "shuffle_start": position.shuffle_start,
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
        self.clock.load(state.get("time_used", 0.0), state.get("budget_clock", self.clock.clock))
        for cb in self.callbacks:
            if cb.state_key is not None and cb.state_key in state:
                cb.load_state_dict(state[cb.state_key])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rollbacks = list(state.get("rollbacks", []))
        self.set_lr_scale(state.get("lr_scale", 1.0))
        self._resume_partial = state.get("partial_epoch")
        self._load_rng(state)

    def _load_rng(self, state: dict) -> None:
        """This rank's random-number streams from a checkpoint (module docstring of
        :mod:`pyrovae.training.distributed`); a warning where the process count changed."""
        rng = state["rng"]
        self.generator.set_state(rng["shuffle"])
        ctx = self.dist
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
            set_rng_state(own, self.device)
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
        if not all_finite(weights) or not all_finite(
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

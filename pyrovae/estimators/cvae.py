"""The conditional VAE estimator :class:`CVAE` (see :mod:`pyrovae.models.cvae`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pyro.distributions import Distribution

from ..data.batch import Batch
from ..errors import DataError
from ..models.conditions import Condition, infer_condition, make_condition
from .base import ESTIMATORS
from .vae import VAE


@ESTIMATORS.register("cvae")
class CVAE(VAE):
    """Conditional VAE (Sohn, Lee & Yan 2015): p(z | c) p(x | z, c), guide q(z | x, c).

    ``fit(X, y)`` takes the condition of every row as ``y``: class labels (integers
    0..K-1, coded one-hot; K = the largest label + 1) or float covariates (one value or
    one row per data row). The kind and width of the condition are stored in the
    checkpoint; every later call that reads data (``evaluate``, ``score``,
    ``log_likelihood``, ``encode``, ...) takes the rows' conditions as ``y``, and
    ``sample`` / ``decode`` take a ``condition``. ``prior="conditional"`` learns the
    prior network p(z | c); any unconditional prior is p(z | c) = p(z).

    Parameters
    ----------
    **kwargs
        The parameters of :class:`VAE`.
    """

    family = "cvae"
    is_conditional = True

    # -- the condition ---------------------------------------------------------
    def learn_targets(self, y) -> None:
        """The condition (kind and width) of the training conditions ``y`` (required)."""
        if y is None:
            raise DataError(
                "the cvae model needs the condition of every training row, class labels or "
                "covariates (y in Python; a labelled dataset, --label-column or "
                "--condition-columns on the command line)"
            )
        self._condition = infer_condition(y)

    def sample_conditions(self, y, n: int):
        """For a label, every class in turn in blocks of ``ceil(n / K)`` rows (0, 0, ...,
        1, 1, ...; ``n`` rows); for covariates, the conditions of ``n`` training rows
        ``y`` (evenly spaced)."""
        self._check_fitted()
        if self._condition.kind == "label":
            k = self._condition.width
            return torch.arange(k).repeat_interleave(-(-int(n) // k))[: int(n)]
        t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        index = torch.linspace(0, t.shape[0] - 1, int(n)).round().long()
        return t[index]

    @property
    def condition_(self) -> Condition:
        """The condition the model reads (kind and width)."""
        self._check_fitted()
        return self._condition

    def _spec_kwargs(self) -> dict[str, Any]:
        cond = getattr(self, "_condition", None)
        opts = cond.record() if cond is not None else {}
        return {**super()._spec_kwargs(), "model_options": opts}

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "condition": self._condition.record()}

    def read_payload(self, ckpt: dict) -> None:
        record = ckpt.get("condition") or {}
        self._condition = make_condition(
            record.get("condition", "covariates"), record.get("condition_dim", 1)
        )

    def condition_targets(self, condition, n: int) -> torch.Tensor:
        """``n`` rows of encoded conditions from ``condition``: a class (int) or a list of
        ``n`` classes for a label; one row of covariates (repeated) or ``n`` rows."""
        self._check_fitted()
        if condition is None:
            raise DataError(
                f"the cvae model samples given a condition, {self._condition.describe()}: "
                "pass --condition or --condition-values (condition= in Python)"
            )
        arr = condition if isinstance(condition, torch.Tensor) else np.asarray(condition)
        t = torch.as_tensor(arr)
        if self._condition.kind == "label":
            if t.dim() == 0:  # one class, also written as a whole float (3.0)
                t = t.long().reshape(1) if float(t) == int(t) else t.reshape(1)
        elif t.dim() <= 1:
            t = t.reshape(1, -1)
        if t.shape[0] == 1 and n != 1:
            t = t.expand(n, *t.shape[1:])
        if t.shape[0] != n:
            raise DataError(f"{t.shape[0]} conditions given for {n} samples")
        return self._condition.targets(t).to(self.device_)

    def _condition_targets(self, y, n: int) -> torch.Tensor:
        """The rows' conditions, required: :meth:`condition` samples p(z | x_obs, c). One
        condition (a class, or one row of covariates) serves every row, as in
        :meth:`condition_targets`."""
        if y is not None:
            t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
            if t.dim() == 0 or (t.shape[0] == 1 and n != 1):
                return self.condition_targets(y, n)
        return self._rows_targets(y, n)

    # -- inference given conditions -------------------------------------------------
    @torch.no_grad()
    def encode(self, x, y=None) -> Distribution:
        """The posterior q(z | x, c) of rows ``x`` with conditions ``y``."""
        self._check_fitted()
        self.module_.eval()
        x = self.as_input(x)
        return self.module_.encode(Batch(x, self._rows_targets(y, x.shape[0])))

    def _rows_targets(self, y, n: int) -> torch.Tensor:
        if y is None:
            raise DataError(
                f"the cvae model needs the condition of every row: pass y "
                f"({self._condition.describe()})"
            )
        if len(y) != n:
            raise DataError(f"y has {len(y)} entries but the data has {n} rows")
        return self.module_.targets(y).to(self.device_)

    def reconstruct(self, x, sample: bool = False, y=None) -> torch.Tensor:
        """E[x | z, c] at the posterior mean of z (or a posterior draw if ``sample``)."""
        q = self.encode(x, y)
        z = q.sample() if sample else q.mean
        return self.decode(z, condition=self._rows_targets(y, z.shape[0])).mean

    @torch.no_grad()
    def decode(self, z, condition=None, weights: str = "mean") -> Distribution:
        """p(x | z, c) for codes ``z`` ``(B, latent_dim)`` given ``condition`` (see
        :meth:`condition_targets`); ``weights`` as in :meth:`VAE.decode` (a cvae decoder
        has point weights)."""
        self._check_fitted()
        self._weight_draws(weights, 0)
        self.module_.eval()
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device_)
        if z.shape[-1] != self.module_.latent_dim:
            raise DataError(
                f"z has last dimension {z.shape[-1]}; the model's latent_dim is "
                f"{self.module_.latent_dim}"
            )
        rows = z.shape[-2] if z.dim() > 1 else 1
        return self.module_.decode(z, self.condition_targets(condition, rows))

    @torch.no_grad()
    def sample(
        self, n: int, mean: bool = True, condition=None, weights: str = "mean"
    ) -> torch.Tensor:
        """``n`` new data points given ``condition`` (a class, ``n`` classes, one row of
        covariates or ``n`` rows): E[x | z, c] (or a draw of x if ``mean=False``),
        z ~ p(z | c); ``weights`` as in :meth:`VAE.sample` (point weights)."""
        self._check_fitted()
        self._weight_draws(weights, 0)
        self.module_.eval()
        y = self.condition_targets(condition, int(n))
        z = self.module_.sample_latent(int(n), y)
        px = self.module_.decode(z, y)
        return px.mean if mean else px.sample()

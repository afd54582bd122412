r"""What a conditional family conditions on: a class label or a vector of covariates.

A condition ``c`` enters the networks of a conditional VAE as a float code of fixed
width (Sohn, Lee & Yan 2015): a label of one of ``K`` classes as its one-hot vector
(width ``K``), covariates as themselves (their width). :data:`CONDITIONS` maps the
kind (``"label"`` or ``"covariates"``) to its class; each turns the ``y`` given to
``fit(X, y)`` into what a minibatch carries (:meth:`Condition.targets`: class indices,
or float rows) and that into the network input (:meth:`Condition.code`).

References
----------
Sohn, K., Lee, H. & Yan, X. (2015). Learning structured output representation using
deep conditional generative models. NeurIPS.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import ConfigError, DataError


def _as_tensor(y) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        return y.detach()
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"conditions must be numbers (class indices or covariates); got {arr.dtype}"
        )
    return torch.as_tensor(arr)


def is_label(y) -> bool:
    """Whether ``y`` holds class labels (integers or booleans, one per row) rather than
    float covariates."""
    t = _as_tensor(y)
    return not torch.is_floating_point(t) and t.dim() == 1


class Condition:
    """A condition kind of fixed ``width`` (the network input size)."""

    kind = "base"

    def __init__(self, width: int) -> None:
        if isinstance(width, bool) or int(width) != width or int(width) < 1:
            raise ConfigError(f"the condition width must be a positive integer; got {width!r}")
        self.width = int(width)

    def targets(self, y) -> torch.Tensor:  # pragma: no cover - abstract
        """``y`` checked and encoded as a minibatch's ``Batch.y``."""
        raise NotImplementedError

    def code(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The float code ``(B, width)`` of encoded targets ``y``."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def record(self) -> dict:
        """Plain data for the spec and the checkpoint."""
        return {"condition": self.kind, "condition_dim": self.width}


class LabelCondition(Condition):
    """A class label out of ``width`` classes, coded one-hot."""

    kind = "label"

    def targets(self, y) -> torch.Tensor:
        t = _as_tensor(y)
        if torch.is_floating_point(t) or t.dim() != 1:
            shape = "float covariates" if torch.is_floating_point(t) else f"shape {tuple(t.shape)}"
            raise DataError(
                f"the model's condition is a class label ({self.width} classes); got {shape}"
            )
        t = t.long()
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.width):
            bad = int(t.max()) if int(t.max()) >= self.width else int(t.min())
            raise DataError(
                f"class {bad} is out of range: the model's condition has {self.width} classes "
                f"(0 to {self.width - 1})"
            )
        return t

    def code(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y.long(), self.width).float()

    def describe(self) -> str:
        return f"a class label ({self.width} classes)"


class CovariateCondition(Condition):
    """A vector of ``width`` float covariates, used as they are."""

    kind = "covariates"

    def targets(self, y) -> torch.Tensor:
        t = _as_tensor(y).float()
        if t.dim() == 1:
            t = t.unsqueeze(1)
        if t.dim() != 2 or t.shape[1] != self.width:
            width = t.shape[1] if t.dim() == 2 else f"shape {tuple(t.shape[1:])}"
            raise DataError(
                f"the conditions have width {width} but the model's have width {self.width}"
            )
        if not torch.isfinite(t).all():
            raise DataError("the conditions hold NaN or infinite values")
        return t

    def code(self, y: torch.Tensor) -> torch.Tensor:
        return y.float()

    def describe(self) -> str:
        return f"{self.width} covariate(s)"


#: Condition kinds by name.
CONDITIONS: dict[str, type[Condition]] = {
    LabelCondition.kind: LabelCondition,
    CovariateCondition.kind: CovariateCondition,
}


def make_condition(kind: str, width: int) -> Condition:
    """The condition of kind ``kind`` (``"label"`` or ``"covariates"``) and ``width``."""
    try:
        cls = CONDITIONS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown condition kind {kind!r}; choose from: {', '.join(CONDITIONS)}"
        ) from None
    return cls(width)


def infer_condition(y, n_classes: int | None = None) -> Condition:
    """The condition that ``y`` (one entry per training row) describes: class labels
    (integers) with ``n_classes`` classes (default: the largest label + 1, at least two
    classes seen), or float covariates of ``y``'s width."""
    t = _as_tensor(y)
    if t.shape[0] == 0:
        raise DataError("no conditions given (y is empty)")
    if is_label(t):
        if int(t.min()) < 0:
            raise DataError(f"class labels must be indices 0, 1, ...; got {int(t.min())}")
        if torch.unique(t).numel() < 2:
            raise DataError(
                f"the labels have a single class ({int(t[0])}); a label condition needs two or more"
            )
        k = int(t.max()) + 1 if not n_classes else int(n_classes)
        return LabelCondition(k)
    if t.dim() > 2:
        raise DataError(
            f"conditions must be one row of covariates per row; got shape {tuple(t.shape)}"
        )
    return CovariateCondition(1 if t.dim() == 1 else int(t.shape[1]))

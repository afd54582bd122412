"""The semi-supervised M2 estimator (:class:`M2`): a VAE with a class label, and a
classifier (see :mod:`pyrovae.models.m2`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..models.m2 import aux_scale, label_indices
from ..objectives import OBJECTIVES
from .base import ESTIMATORS
from .vae import VAE


@ESTIMATORS.register("m2")
class M2(VAE):
    """Semi-supervised VAE M2 (Kingma, Rezende, Mohamed & Welling 2014) and classifier.

    ``fit(X, y)`` takes class indices ``y`` with ``-1`` for the unlabelled rows
    (scikit-learn's semi-supervised convention); labelled rows observe y, unlabelled
    rows sum it out exactly (``TraceEnum_ELBO``). After fitting, :meth:`predict_proba`
    is the guide's classifier q(y|x), :meth:`predict` its most likely class and
    :meth:`score` the accuracy (scikit-learn's classifier conventions).

    Parameters
    ----------
    n_classes : int
        Number of classes (0: one more than the largest training label).
    aux_weight : float
        Weight of the auxiliary classification term per data point: the paper's
        alpha / N, 0.1 by default (alpha = 0.1 N). Each labelled row's
        ``log q(y|x)`` is weighted ``aux_weight * N / L`` (N training rows, L of them
        labelled; :mod:`pyrovae.models.m2`); 0 switches the term off.
    **kwargs
        The parameters of :class:`VAE`. ``objective`` must have a version that sums the
        labels out: ``trace`` (the default) and ``enum`` train with Pyro's
        ``TraceEnum_ELBO``; the others are refused.

    Attributes
    ----------
    classes_ : ndarray
        The class indices ``0 .. n_classes - 1``.
    n_labelled_ : int
        Labelled rows among the training rows (``n_rows_``).
    """

    family = "m2"
    is_classifier = True

    def __init__(self, *, n_classes: int = 0, aux_weight: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_classes = n_classes
        self.aux_weight = aux_weight

    # -- the labels ------------------------------------------------------------------------
    def learn_targets(self, y) -> None:
        """The number of classes and of labelled rows, from the training labels ``y``."""
        if y is None:
            raise ConfigError(
                "the m2 model needs labels: pass y to fit (class indices, -1 for unlabelled "
                "rows), or train on labelled data (a labelled dataset or --label-column)"
            )
        t = label_indices(y)
        labelled = t[t >= 0]
        if labelled.numel() == 0:
            raise DataError("the m2 model needs labelled rows; every label is -1 (unlabelled)")
        present = torch.unique(labelled)
        if present.numel() < 2:
            raise DataError(
                f"the labels have a single class ({int(present[0])}); the m2 model needs at "
                "least two"
            )
        n = int(self.n_classes) or int(labelled.max()) + 1
        if int(labelled.max()) >= n:
            raise DataError(f"label {int(labelled.max())} is not a class index below n_classes={n}")
        self.n_classes_ = n
        self.n_rows_ = int(t.shape[0])
        self.n_labelled_ = int(labelled.numel())
        self.classes_ = np.arange(n)

    def _n_classes(self) -> int:
        n = getattr(self, "n_classes_", None) or int(self.n_classes)
        if n < 2:
            raise ConfigError(
                "the m2 model needs labels: pass y to fit (class indices, -1 for unlabelled "
                "rows), or train on labelled data (a labelled dataset or --label-column)"
            )
        return n

    def _spec_kwargs(self) -> dict[str, Any]:
        return {**super()._spec_kwargs(), "model_options": {"n_classes": self._n_classes()}}

    def check_params(self) -> None:
        super().check_params()
        if self.trained_with_masks:
            raise ConfigError(
                "the m2 model does not train with missing entries (--missing mask, "
                "--mask-rate); pass complete rows"
            )
        n = self.n_classes
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 or n == 1:
            raise ConfigError(f"n_classes must be 0 (from the labels) or >= 2; got {n!r}")

    def build(self, data_shape: tuple[int, ...], likelihood) -> None:
        super().build(data_shape, likelihood)
        self.n_classes_ = self.module_.n_classes
        self.classes_ = np.arange(self.n_classes_)
        if hasattr(self, "n_labelled_"):
            scale = aux_scale(self.aux_weight, self.n_rows_, self.n_labelled_)
            self.module_.aux_scale.fill_(scale)

    def _objective(self):
        if (
            isinstance(self.particles, bool)
            or not isinstance(self.particles, int)
            or self.particles < 1
        ):
            raise ConfigError(f"particles must be a positive integer; got {self.particles!r}")
        name = OBJECTIVES.get(self.objective).enumerated
        if name is None:
            raise ConfigError(
                f"the m2 model sums its labels out exactly, which the {self.objective} "
                "objective cannot; use --objective trace (Pyro's TraceEnum_ELBO)"
            )
        try:
            return OBJECTIVES.get(name)(
                num_particles=self.particles, **dict(self.objective_options or {})
            )
        except TypeError as exc:
            raise ConfigError(f"bad options for objective {self.objective!r}: {exc}") from None

    def plain_params(self) -> dict[str, Any]:
        """The parameters, with ``n_classes`` the number of classes the model was built
        with (so that loading rebuilds the same networks)."""
        params = super().plain_params()
        if hasattr(self, "n_classes_"):
            params["n_classes"] = int(self.n_classes_)
        return params

    # -- the classifier --------------------------------------------------------------------
    @torch.no_grad()
    def predict_proba(self, X) -> np.ndarray:
        """q(y|x) for each row of ``X``: an array ``(N, n_classes)`` whose rows sum to 1."""
        self._check_fitted()
        self.module_.eval()
        x = self.as_input(X)
        out = [self.module_.classify(x[i : i + 1024]).probs.cpu() for i in range(0, len(x), 1024)]
        return torch.cat(out).numpy()

    def predict(self, X) -> np.ndarray:
        """The most likely class under q(y|x) of each row of ``X`` (indices into
        ``classes_``), shape ``(N,)``."""
        return self.classes_[self.predict_proba(X).argmax(1)]

    def score(self, X, y=None) -> float:
        """Accuracy of :meth:`predict` on the labelled rows of ``(X, y)`` (``y >= 0``)."""
        if y is None:
            raise DataError("score of an m2 model is its accuracy: pass the labels y")
        t = label_indices(y)
        if t.shape[0] != len(X):
            raise DataError(f"y has {t.shape[0]} labels but X has {len(X)} rows")
        keep = (t >= 0).numpy()
        if not keep.any():
            raise DataError("no labelled rows to score (every label is -1)")
        pred = self.predict(X)
        return float((pred[keep] == t.numpy()[keep]).mean())

    # -- what needs the label ----------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x, sample: bool = False, y=None) -> torch.Tensor:
        """E[x|y,z] at the most likely class y under q(y|x) and the mean of q(z|x,y) (or a
        draw of z from it if ``sample``); labels ``y`` are not read (the classifier's
        class is reconstructed)."""
        self._check_fitted()
        self.module_.eval()
        x = self.as_input(x)
        y = self.module_.classify(x).probs.argmax(-1)
        q = self.module_.encode_given(self.module_.encoder(x), y)
        z = q.sample() if sample else q.mean
        return self.module_.decode(z, y).mean

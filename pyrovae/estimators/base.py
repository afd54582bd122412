"""The estimator protocol shared by every model family (:class:`Estimator`).

``__init__`` only stores hyperparameters; :meth:`~Estimator.fit` validates the
data and the component combination, builds the Pyro model and guide, trains
them and returns ``self``; fitted attributes end in ``_`` (scikit-learn's
estimator rules). Besides ``fit``, the estimator has a public build-and-train
seam for code that drives training itself (the CLI, benchmarks, tests)::

    est.check_params()                     # every hyperparameter, before any work
    est.build(data_shape, likelihood)      # module_, device_, data_shape_
    est.check_runnable(x)                  # one objective evaluation on two rows
    trainer = est.make_trainer(run_dir)    # a Trainer over module_
    est.fit_with(trainer, x, x_val)        # train, then the fitted attributes

Estimators are registered in :data:`ESTIMATORS` under their model-family name.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from pyro.distributions import Distribution

from .. import __version__
from ..config import OPTIONS_BY_NAME, check_device, check_value, resolve_device
from ..data.batch import Batch, as_batch
from ..data.datasets import choose_likelihood
from ..data.stream import is_stream
from ..data.validation import as_data_tensor, check_support, observation_mask, warn_caveat
from ..errors import CheckpointError, ConfigError, DataError, PyrovaeError
from ..inference.loglik import elbo_terms
from ..models import ModuleSpec, at_weights, build_module
from ..models.base import require_latent_variables
from ..objectives import OBJECTIVES, BetaSchedule, make_schedule
from ..registry import Registry
from ..runs import hold
from ..runs.names import CHECKPOINT
from ..training import (
    Trainer,
    TrainingOptions,
    distributed,
    load_checkpoint,
    make_adam,
    save_checkpoint,
    standard_callbacks,
)
from ..training.loggers import check_loggers

logger = logging.getLogger(__name__)

ESTIMATORS: Registry = Registry("model")

#: Parameters that may name a component or hold a component object.
COMPONENT_PARAMS = ("prior", "likelihood", "guide")


def component_record(value: Any) -> Any:
    """Plain-data record of a component given by name or as an object."""
    if isinstance(value, str) or value is None:
        return value
    cls = type(value)
    return {"custom": f"{cls.__module__}.{cls.__qualname__}"}


class Estimator:
    """Shared machinery of the estimators (see the module docstring).

    Parameters
    ----------
    latent_dim : int
        Dimension of the code z.
    net : str
        Encoder/decoder architecture ("mlp", "conv").
    hidden : sequence of int
        Hidden widths, data side first.
    activation : str
        Hidden activation.
    net_options : dict, optional
        Extra keyword options of the encoder and decoder bodies (e.g. the grid of the
        ``heston-pricer`` decoder).
    likelihood : str or Likelihood, optional
        p(x|z) by name or object; default chosen from the data at fit time.
    likelihood_options : dict, optional
        Keyword options of a named likelihood (e.g. ``{"scale": 0.1}``).
    epochs, batch_size : int
        Training budget and minibatch size.
    learning_rate : float
        Adam step size.
    patience : int
        Early-stopping patience in epochs (0: off).
    lr_decay_patience : int
        Halve (times ``lr_decay_factor``) the learning rate after every this many
        epochs without a better validation loss (0: never); early stopping counts the
        same epochs.
    lr_decay_factor : float
        Learning-rate factor per decay, in (0, 1).
    seed : int
        Seed of initialisation, minibatches and sampling.
    device : str
        Torch device, or ``"auto"`` (CUDA if available, else MPS, else CPU); the one
        used is ``device_`` after fitting.
    time_budget : float, optional
        Stop training once this many seconds have been spent (checked after every
        step; all sessions of a resumed run together).
    budget_clock : {"wall", "cpu"}
        Clock of ``time_budget``: wall-clock time or the process's CPU time.
    amp : bool
        Mixed precision on CUDA (the networks in bfloat16 autocast, the loss in
        float32); an error on an explicit CPU/MPS device, ignored with a warning when
        ``device="auto"`` finds no GPU. See :mod:`pyrovae.training.precision`.
    checkpoint_every : int
        With a run folder, also checkpoint every this many steps (0: each epoch only).
    on_divergence : {"stop", "rollback"}
        When the loss or a gradient becomes NaN/inf (the step is skipped): raise, or
        roll back to the last checkpoint with the learning rate times
        ``rollback_lr_factor``, at most ``divergence_retries`` times.
    divergence_retries : int
        Rollbacks allowed per run.
    rollback_lr_factor : float
        Learning-rate factor per rollback, in (0, 1).
    missing : {"refuse", "mask"}
        Missing entries (NaN) of the data: refused, or masked: training, evaluation
        and conditioning score the observed entries only, and the encoder reads the
        zero-filled x with the mask (see :mod:`pyrovae.models.base`).
    mask_rate : float
        In [0, 1): drop this fraction of the observed entries at random in each
        training minibatch (drawn from the trainer's generator, so a resumed run is
        exact), so that the amortized guide learns to infer z from partial rows. A
        rate above 0 builds the mask-reading encoder also for complete data.
    progress : bool
        Show a progress bar while fitting.
    log : sequence of str
        Experiment trackers to log the training to, by name in
        :data:`pyrovae.training.loggers.LOGGERS`: ``"tensorboard"`` (event files in the
        run folder's ``tb/``; needs ``run_dir``) and ``"mlflow"``; see
        :mod:`pyrovae.training.loggers`. Empty: none (their libraries are not imported).
    log_images_every : int
        With ``log``, image grids of reconstructions and prior samples every this many
        epochs (image data only; 0: never).

    Notes
    -----
    Inside an initialised ``torch.distributed`` process group with more than one
    rank (torchrun), ``fit`` trains data-parallel; see
    :mod:`pyrovae.training.distributed`.
    """

    family = "base"
    #: Whether the family is also a classifier (``predict``, ``predict_proba``; ``score``
    #: is then the accuracy).
    is_classifier = False
    #: Whether the family's model is given each row's condition ``y`` wherever it reads
    #: data (``evaluate``, ``score``, ``log_likelihood``, ``encode``, ...; a conditional
    #: family); the others read x alone there (a classifier family's labels only train).
    is_conditional = False

    def __init__(
        self,
        *,
        latent_dim: int = 16,
        net: str = "mlp",
        hidden=(400,),
        activation: str = "relu",
        net_options: dict | None = None,
        likelihood=None,
        likelihood_options: dict | None = None,
        epochs: int = 500,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        patience: int = 30,
        lr_decay_patience: int = 0,
        lr_decay_factor: float = 0.5,
        seed: int = 0,
        device: str = "cpu",
        time_budget: float | None = None,
        budget_clock: str = "wall",
        amp: bool = False,
        checkpoint_every: int = 0,
        on_divergence: str = "stop",
        divergence_retries: int = 3,
        rollback_lr_factor: float = 0.5,
        missing: str = "refuse",
        mask_rate: float = 0.0,
        mask_encoder: str = "concat",
        progress: bool = False,
        log=(),
        log_images_every: int = 10,
    ) -> None:
        self.latent_dim = latent_dim
        self.net = net
        self.hidden = hidden
        self.activation = activation
        self.net_options = net_options
        self.likelihood = likelihood
        self.likelihood_options = likelihood_options
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.lr_decay_patience = lr_decay_patience
        self.lr_decay_factor = lr_decay_factor
        self.seed = seed
        self.device = device
        self.time_budget = time_budget
        self.budget_clock = budget_clock
        self.amp = amp
        self.checkpoint_every = checkpoint_every
        self.on_divergence = on_divergence
        self.divergence_retries = divergence_retries
        self.rollback_lr_factor = rollback_lr_factor
        self.missing = missing
        self.mask_rate = mask_rate
        self.mask_encoder = mask_encoder
        self.progress = progress
        self.log = log
        self.log_images_every = log_images_every

    # -- scikit-learn protocol ---------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            if "__init__" in vars(klass) and issubclass(klass, Estimator):
                for name, p in inspect.signature(klass.__init__).parameters.items():
                    plain = p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                    if name != "self" and plain and name not in names:
                        names.append(name)
        return names

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Estimator:
        """Set hyperparameters (unknown names raise ConfigError)."""
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ConfigError(f"{type(self).__name__} has no parameter {k!r}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults: dict[str, Any] = {}
        for klass in type(self).__mro__:
            if "__init__" in vars(klass) and issubclass(klass, Estimator):
                for name, p in inspect.signature(klass.__init__).parameters.items():
                    if p.default is not inspect.Parameter.empty:
                        defaults.setdefault(name, p.default)
        shown = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if k in defaults and defaults[k] is not v and defaults[k] != v
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- hooks for families ----------------------------------------------------
    def learn_targets(self, y) -> None:
        """What the family learns from the training labels or conditions ``y`` before it
        is built (the number of classes of a classifier family, the kind and width of a
        conditional family's condition), refusing labels it cannot use with one line;
        ``fit`` and the command line call it. Nothing for the unconditional families."""

    def _spec_kwargs(self) -> dict[str, Any]:
        return {}

    def _objective(self):
        return OBJECTIVES.get("trace")()

    def _schedule(self) -> BetaSchedule:
        return make_schedule(1.0)

    # -- building ----------------------------------------------------------------
    def check_params(self) -> None:
        """Check every hyperparameter against its option's domain in
        :data:`pyrovae.config.OPTIONS` (the same check as the TOML keys and CLI
        flags), and the device; a one-line :class:`ConfigError` names the first bad one."""
        for name, value in self.get_params().items():
            if name in OPTIONS_BY_NAME:
                check_value(name, value)
        check_device(self.device)
        check_loggers(self.log)
        if self.amp and self.device != "auto" and torch.device(self.device).type != "cuda":
            raise ConfigError(
                f"amp (mixed precision) needs a CUDA device; got device {self.device!r}"
            )

    def build(self, data_shape: tuple[int, ...], likelihood) -> None:
        spec = ModuleSpec(
            data_shape=tuple(data_shape),
            latent_dim=self.latent_dim,
            net=self.net,
            hidden=tuple(self.hidden),
            activation=self.activation,
            net_options=dict(self.net_options or {}),
            likelihood=likelihood,
            likelihood_options=dict(self.likelihood_options or {}),
            mask_input=self.trained_with_masks,
            mask_encoder=getattr(self, "mask_encoder", "concat"),
            **self._spec_kwargs(),
        )
        self.device_ = place(self.device)
        self.module_ = build_module(self.family, spec).to(self.device_)
        self.likelihood_ = (
            likelihood if isinstance(likelihood, str) else component_record(likelihood)
        )
        self.data_shape_ = tuple(int(s) for s in data_shape)
        self.n_features_in_ = math.prod(self.data_shape_)

    def make_trainer(
        self, run_dir, data_info: dict | None, transform=None, loggers=None
    ) -> Trainer:
        """A :class:`~pyrovae.training.Trainer` over ``module_`` with this estimator's
        objective, schedule, Adam optimizer and training options, and the standard
        callbacks (:func:`~pyrovae.training.standard_callbacks`); ``loggers`` (tracker
        names) replaces the ``log`` parameter for this trainer."""
        from ..training.precision import amp_allowed

        optimizer = make_adam(self.module_.parameters(), lr=self.learning_rate)
        self.data_info_ = dict(data_info or {})
        amp = bool(self.amp) and amp_allowed(self.device_)
        if self.amp and not amp:
            logger.warning("amp ignored: device auto resolved to %s, not CUDA", self.device_)
        params = self.get_params()
        if loggers is not None:
            params["log"] = loggers
        options = TrainingOptions.from_params(params, amp=amp)
        return Trainer(
            self.module_,
            self._objective(),
            self._schedule(),
            optimizer,
            options,
            standard_callbacks(options),
            run_dir=run_dir,
            payload=self.payload,
            transform=transform,
            distributed=distributed.current(),
        )

    # -- missing entries -------------------------------------------------------------
    @property
    def trained_with_masks(self) -> bool:
        """Whether the model is (to be) trained with observation masks: ``missing="mask"``
        or a ``mask_rate`` above 0 (its encoder then reads the mask)."""
        return (
            getattr(self, "missing", "refuse") == "mask"
            or float(getattr(self, "mask_rate", 0.0) or 0.0) > 0
        )

    def as_observed(self, x, name: str = "x", mask=None, missing: bool | None = None) -> Batch:
        """``x`` validated as :meth:`as_input` does, as a :class:`~pyrovae.data.Batch`
        with its observation mask: ``mask`` (``True`` = observed) when given, else the
        non-NaN entries of ``x`` when it has NaNs and missing entries are allowed
        (``missing="mask"``, ``mask`` given, or ``missing=True``); missing entries are
        zero-filled.

        Raises
        ------
        DataError
            NaNs without ``missing="mask"``, a mask of another shape than ``x``, or a
            row with no observed entry.
        """
        if missing is None:
            missing = mask is not None or getattr(self, "missing", "refuse") == "mask"
        allow = bool(missing)
        t = as_data_tensor(x, name=name, missing=allow)
        if mask is not None:
            m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
            if tuple(m.shape) != tuple(t.shape):
                raise DataError(
                    f"the mask of {name} has shape {tuple(m.shape)} but {name} has {tuple(t.shape)}"
                )
            m = m.to(torch.bool) & ~torch.isnan(t)
            if not bool(m.reshape(m.shape[0], -1).any(1).all()):
                row = int((~m.reshape(m.shape[0], -1).any(1)).nonzero()[0])
                raise DataError(f"{name} has row(s) with no observed entry, first row {row}")
        else:
            m = observation_mask(t, name)
        t = self.as_input(t if m is None else torch.where(m, t, torch.zeros_like(t)), name)
        if m is not None:
            m = m.reshape(t.shape).to(t.device)
        return Batch(t, mask=m)

    # -- fitting -------------------------------------------------------------------
    def as_input(self, x, name: str = "x", stream: bool = False) -> torch.Tensor:
        """``x`` validated, in the model's row shape, on the device. A data set read on
        demand (:class:`~pyrovae.data.stream.MemmapArray`) stays one where ``stream``
        (the caller reads it in minibatches), and is read into memory otherwise."""
        t = as_data_tensor(x, name=name)
        if is_stream(t) and not stream:
            t = t.to_tensor()
        shape = getattr(self, "data_shape_", None)
        if shape is not None and tuple(t.shape[1:]) != shape:
            if math.prod(t.shape[1:]) == math.prod(shape):
                t = t.reshape_rows(shape) if is_stream(t) else t.reshape(t.shape[0], *shape)
            else:
                raise DataError(
                    f"{name} has rows of shape {tuple(t.shape[1:])}; the model expects {shape}"
                )
        return t.to(self.device_)

    def fit(
        self,
        X,
        y=None,
        X_val=None,
        *,
        y_val=None,
        run_dir: str | Path | None = None,
        data_info: dict | None = None,
        train_transform=None,
        loggers=None,
    ) -> Estimator:
        """Train on ``X`` (array-like ``(N, *data_shape)``); return ``self``.

        Parameters
        ----------
        X : array-like or MemmapArray
            Training data; validated (finite, numeric, non-empty, inside the
            likelihood's support) before anything is trained. A
            :class:`pyrovae.data.MemmapArray` is read in minibatches, never whole.
        y : array-like, optional
            Labels or conditions, one entry per row of ``X``. A conditional family reads
            them (encoded by its ``targets`` method) from each minibatch's ``Batch.y``;
            the unconditional families ignore them (present for scikit-learn
            compatibility).
        X_val : array-like, optional
            Validation data for early stopping and the validation metrics.
        y_val : array-like, optional
            The labels or conditions of ``X_val``.
        run_dir : path, optional
            Folder for ``metrics.csv`` and ``checkpoint.pt`` written each epoch.
        data_info : dict, optional
            Plain data about the data source stored in checkpoints (the CLI
            records the data spec and scaling here).
        train_transform : callable, optional
            ``f(batch, generator)`` applied to each training minibatch (for example
            :func:`pyrovae.data.binarize.draw_bernoulli` for dynamic binarization).
        loggers : sequence of str, optional
            Experiment trackers for this fit (names in
            :data:`~pyrovae.training.loggers.LOGGERS`, e.g. ``["tensorboard"]``),
            in place of the ``log`` parameter.
        """
        self.check_params()
        if loggers is not None:
            check_loggers(loggers)
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        missing = self.missing == "mask"
        x = as_data_tensor(X, name="X", missing=missing)
        if y is not None and len(y) != x.shape[0]:
            raise DataError(f"y has {len(y)} labels but X has {x.shape[0]} rows")
        x_val = as_data_tensor(X_val, name="X_val", missing=missing) if has_rows(X_val) else None
        if x_val is not None and x_val.shape[1:] != x.shape[1:]:
            raise DataError(
                f"X_val has rows of shape {tuple(x_val.shape[1:])} but X has {tuple(x.shape[1:])}"
            )
        mask = observation_mask(x, "X") if missing else None
        mask_val = observation_mask(x_val, "X_val") if missing and x_val is not None else None
        x, x_val = _zero_filled(x, mask), _zero_filled(x_val, mask_val)
        likelihood = self.likelihood
        if likelihood is None:
            likelihood, why = choose_likelihood(x)
            logger.info("likelihood %r chosen automatically: %s", likelihood, why)
        pyro.set_rng_seed(self.seed)
        self.learn_targets(y)
        self.build(tuple(x.shape[1:]), likelihood)
        check_support(self.module_.likelihood, x if mask is None else x[mask])
        warn_caveat(self.module_.likelihood, x if mask is None else x[mask])
        if x_val is not None:
            check_support(self.module_.likelihood, x_val if mask_val is None else x_val[mask_val])
        x, x_val = x.to(self.device_), (x_val.to(self.device_) if x_val is not None else None)
        mask = None if mask is None else mask.to(self.device_)
        mask_val = None if mask_val is None else mask_val.to(self.device_)
        train = self.with_targets(x, y, "y", mask=mask)
        val = self.with_targets(x_val, y_val, "y_val", mask_val) if x_val is not None else None
        self.check_runnable(train)
        trainer = self.make_trainer(run_dir, data_info, train_transform, loggers)
        return self.fit_with(trainer, train, val)

    def with_targets(self, x, y, name: str = "y", mask=None):
        """``x`` with the family's encoding of its labels or conditions ``y`` and the
        observation ``mask`` (a :class:`~pyrovae.data.Batch`), or ``x`` itself when the
        family reads no labels and there is no mask."""
        targets = None
        if y is not None:
            if len(y) != x.shape[0]:
                raise DataError(f"{name} has {len(y)} entries but the data has {x.shape[0]} rows")
            targets = self.module_.targets(y)
        if targets is None and mask is None:
            return x
        y_t = None if targets is None else torch.as_tensor(targets).to(self.device_)
        return Batch(x, y_t, mask)

    def check_runnable(self, x: torch.Tensor) -> None:
        """Evaluate the objective once on two rows, so that a combination of components
        that cannot work fails with one clear line before any training (RNG untouched)."""
        objective = self._objective()
        try:
            devices = [self.device_] if self.device_.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                with pyro.validation_enabled(False):
                    objective(self.module_.model, self.module_.guide, x[:2])
        except PyrovaeError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"this combination of components cannot run on the data: {first}"
            ) from None

    def fit_with(self, trainer: Trainer, x, x_val) -> Estimator:
        t0 = time.perf_counter()
        self.trainer_ = trainer
        # the run folder stays held from the first step to the last checkpoint
        with hold(trainer.run_dir if trainer.is_main else None):
            trainer.fit(x, x_val)
            self.history_ = trainer.history
            self.n_epochs_ = trainer.epoch
            self.best_epoch_ = trainer.best_epoch
            self.stopped_early_ = trainer.stopped_early
            self.time_used_ = trainer.time_used
            self.budget_spent_ = trainer.budget_spent
            self.fit_time_ = time.perf_counter() - t0
            self._after_fit(as_batch(x).x)
            # the module now holds the best weights plus anything fitted after training
            trainer.best_state = copy.deepcopy(self.module_.state_dict())
            if trainer.run_dir is not None:
                trainer.save(trainer.run_dir / CHECKPOINT)
        return self

    def _after_fit(self, x: torch.Tensor) -> None:
        """Hook run after training with the (best) weights loaded."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise ConfigError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    # -- inference -----------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x, y=None) -> Distribution:
        """The posterior q(z|x) (for autoencoders a Delta at the code); ``.mean``, ``.stddev``.
        A model trained with ``missing="mask"`` reads NaN entries as missing. ``y``: the
        rows' conditions, which only a conditional family reads."""
        self._check_fitted()
        self.module_.eval()
        if self.missing == "mask":  # NaN entries: q(z | x_obs, mask)
            data = self.as_observed(x)
            return self.module_.encode(data.x, mask=data.mask)
        return self.module_.encode(self.as_input(x))

    @torch.no_grad()
    def decode(self, z, condition=None) -> Distribution:
        """p(x|z) for codes ``z`` of shape ``(..., code_dim)`` (``latent_dim`` unless the decoder
        reads more layers); ``.mean`` is E[x|z].
        ``condition`` is for conditional families; an unconditional one refuses it."""
        self._check_fitted()
        if condition is not None:
            raise ConfigError(
                f"the {self.family} model is unconditional; it decodes without a condition"
            )
        self.module_.eval()
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device_)
        code_dim = self.module_.code_dim
        if z.shape[-1] != code_dim:
            size = (
                f"latent_dim is {code_dim}"
                if code_dim == self.module_.latent_dim
                else f"decoder reads codes of size {code_dim}"
            )
            raise DataError(f"z has last dimension {z.shape[-1]}; the model's {size}")
        return self.module_.decode(z)

    def reconstruct(self, x, sample: bool = False, y=None) -> torch.Tensor:
        """E[x|z] at the posterior mean of z (or at a posterior draw if ``sample``);
        ``y`` as in :meth:`encode`."""
        q = self.encode(x)
        z = q.sample() if sample else q.mean
        return self.decode(z).mean

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, condition=None) -> torch.Tensor:
        """``n`` new data points: E[x|z] (or a draw of x if ``mean=False``), z from the
        prior. ``condition`` is for conditional families (:meth:`sample_conditions`); an
        unconditional one refuses it."""
        if condition is not None:
            raise ConfigError(
                f"the {self.family} model is unconditional; it samples without a condition"
            )
        self._check_fitted()
        self.module_.eval()
        z = self.module_.sample_latent(int(n))
        px = self.module_.decode(z)
        return px.mean if mean else px.sample()

    @torch.no_grad()
    def evaluate(self, x, particles: int = 1, *, y=None) -> dict[str, float]:
        """Mean and standard error of the ELBO terms over the rows of ``x`` (with their
        labels or conditions ``y``, for a conditional family).

        Returns
        -------
        dict
            ``elbo``, ``recon``, ``kl`` (means per data point, nats), their
            standard errors ``*_se`` over data points, and ``n``.
        """
        self._check_fitted()
        if self.missing == "mask" and not is_stream(x):
            data = self.as_observed(x)  # NaNs: the observed entries only
            observed = data.x[data.mask] if data.mask is not None else data.x
            check_support(self.module_.likelihood, observed)
            x = data if data.mask is not None else data.x
        else:
            x = self.as_input(x, stream=True)
            check_support(self.module_.likelihood, x)
        if isinstance(x, Batch):
            x = self.with_targets(x.x, y, mask=x.mask)
        else:
            x = self.with_targets(x, y)
        recon, kl = self._terms(x, particles)
        n = len(x)
        out: dict[str, float] = {"n": int(n), "particles": int(particles)}
        for name, v in (("elbo", recon - kl), ("recon", recon), ("kl", kl)):
            out[name] = float(v.mean())
            out[f"{name}_se"] = float(v.std() / math.sqrt(n)) if n > 1 else math.nan
        return out

    def _terms(self, x, particles: int) -> tuple[torch.Tensor, torch.Tensor]:
        return elbo_terms(self.module_, x, particles)

    def score(self, X, y=None) -> float:
        """Mean ELBO per data point (reconstruction log-likelihood for autoencoders);
        ``y``: the rows' conditions, for a conditional family."""
        return self.evaluate(X, y=y)["elbo"]

    def predict_proba(self, X):
        """Class probabilities: only a classifier family (``is_classifier``) has them."""
        raise ConfigError(
            f"predict needs a classifier family (m2); the {self.family} model does not classify"
        )

    def predict(self, X):
        """Classes: only a classifier family (``is_classifier``) predicts them."""
        return self.predict_proba(X)

    def condition(
        self,
        x,
        mask=None,
        method: str = "guide",
        draws: int = 1000,
        levels=(0.5, 0.9),
        x_true=None,
        seed: int = 0,
        y=None,
        **options: Any,
    ):
        """The posterior over z given the observed entries of ``x`` and the posterior
        predictive of the missing ones (:mod:`pyrovae.inference.conditioning`).

        Parameters
        ----------
        x : array-like
            Rows ``(B, *data_shape)`` (or flattened); NaN entries are missing.
        mask : array-like of bool, optional
            ``True`` where observed (default: the non-NaN entries of ``x``); it must
            have ``x``'s shape and observe every row somewhere.
        method : str
            A conditioner of :data:`~pyrovae.inference.conditioning.CONDITIONERS`
            (``"guide"``: the amortized guide on the masked rows; meaningful for a model
            trained with ``missing="mask"`` / ``mask_rate``, a warning otherwise).
        draws : int
            Posterior draws.
        levels : sequence of float
            Central credible levels of the bands.
        x_true : array-like, optional
            The complete rows: adds the importance-sampled log p(x_miss | x_obs).
        seed : int
            Seed of the draws.
        y : array-like, optional
            The rows' conditions, one per row, for a conditional family (required there:
            the posterior is then p(z | x_obs, c)).
        **options
            Options of the conditioner, and ``noise``: a model discrepancy from
            :meth:`discrepancy` that replaces the likelihood of the observed entries
            and correlates the missing ones with them
            (:mod:`pyrovae.inference.discrepancy`).

        Returns
        -------
        Completion
            Draws of z and of the missing entries, their mean, the bands, the mask, the
            conditional log-likelihood (with ``x_true``); ``.to_arviz()``.
        """
        from ..inference.conditioning import condition

        self._check_fitted()
        data = self.as_observed(x, "x", mask=mask, missing=True)
        m = data.mask if data.mask is not None else torch.ones_like(data.x, dtype=torch.bool)
        truth = None
        if x_true is not None:
            truth = self.as_input(x_true, "x_true")
            if tuple(truth.shape) != tuple(data.x.shape):
                raise DataError(f"x_true has {truth.shape[0]} rows but x has {data.x.shape[0]}")
        targets = self._condition_targets(y, data.x.shape[0])
        self.module_.eval()
        return condition(
            self.module_,
            data.x,
            m,
            method=method,
            draws=draws,
            levels=levels,
            x_true=truth,
            seed=seed,
            targets=targets,
            **options,
        )

    def discrepancy(
        self,
        X,
        y=None,
        X_val=None,
        y_val=None,
        nugget: float | str | None = None,
        infer_scale: bool = False,
        scale_prior_sd: float | None = None,
        calibrate: bool = False,
    ):
        """A Gaussian model discrepancy δ ~ N(0, s Σ) fitted to this model's residuals
        on rows ``X``, for ``condition(..., noise=)`` (:mod:`pyrovae.inference.discrepancy`).

        Parameters
        ----------
        X : array-like
            Complete rows; the residuals are the decoder's mean at the guide's posterior
            mean code minus the rows. Held-out rows are better than training rows, whose
            residuals understate the error on new data.
        y : array-like, optional
            The rows' conditions, for a conditional family.
        X_val, y_val : array-like, optional
            Validation rows (and their conditions) whose residuals choose the nugget.
        nugget : float or "auto", optional
            ε as a fraction of the mean residual variance, or ``"auto"`` (default):
            chosen by the likelihood of the validation residuals (of ``X_val``, else of
            a random fifth of ``X``).
        infer_scale : bool
            Sample the discrepancy's scale s per row (LogNormal(0, τ²) prior) when
            conditioning, instead of s = 1; needs ``method="nuts"``.
        scale_prior_sd : float, optional
            τ (default 1).
        calibrate : bool
            Fix the discrepancy's scale per observation pattern by the likelihood of the
            validation residuals' missing entries given their observed ones (of
            ``X_val``, else of a random fifth of ``X``, which S then leaves out).

        Returns
        -------
        GaussianDiscrepancy
        """
        from ..inference.discrepancy import (
            DEFAULT_NUGGET,
            DEFAULT_SCALE_PRIOR_SD,
            GaussianDiscrepancy,
        )

        self._check_fitted()
        require_latent_variables(self.module_, "a discrepancy")
        residuals = self.residuals(X, y)
        validation = None if X_val is None else self.residuals(X_val, y_val, "X_val")
        return GaussianDiscrepancy.from_residuals(
            residuals,
            nugget=DEFAULT_NUGGET if nugget is None else nugget,
            infer_scale=infer_scale,
            scale_prior_sd=DEFAULT_SCALE_PRIOR_SD if scale_prior_sd is None else scale_prior_sd,
            validation=validation,
            calibrate=calibrate,
        )

    def residuals(self, X, y=None, name: str = "X") -> torch.Tensor:
        """The decoder's mean at the guide's posterior mean code minus the rows of ``X``
        (``y``: their conditions, for a conditional family), ``(n, *data_shape)``;
        ``name`` names ``X`` in error messages."""
        self._check_fitted()
        if y is None and self.is_conditional:
            raise ConfigError(f"the {self.family} model's residuals need the rows' conditions y")
        x = self.as_input(X, name)
        batch = Batch(x, self._condition_targets(y, x.shape[0]))
        self.module_.eval()
        with torch.no_grad(), at_weights(self.module_):
            moments = self.module_.posterior_moments(self.module_.guide_input(batch))
            code = self.module_.code_of({s: m.mean for s, m in moments.items()})
            return self.module_.decode_rows(code, batch).mean - x

    def _condition_targets(self, y, n: int) -> torch.Tensor | None:
        """The family's encoding of the rows' labels or conditions ``y`` for
        :meth:`condition` (None: the family reads none)."""
        if y is None:
            return None
        if len(y) != n:
            raise DataError(f"y has {len(y)} entries but the data has {n} rows")
        targets = self.module_.targets(y)
        if targets is None:
            raise ConfigError(f"the {self.family} model reads no conditions; drop y")
        return torch.as_tensor(targets).to(self.device_)

    # -- what differs between families -------------------------------------------------
    def sample_conditions(self, y, n: int):
        """Conditions for ``n`` illustrative samples, given the training split's labels
        or conditions ``y`` (None for an unconditional family)."""
        return None

    @property
    def kl_weight(self) -> float | None:
        """The weight β of the KL term the model was trained with (the final value of a
        schedule); None for families without a KL term."""
        return None

    def likelihood_metrics(
        self, x, samples: int, particles: int, novelty: torch.Tensor | None = None
    ) -> dict[str, float | None]:
        """Rate (KL), ELBO and importance-sampled log p(x) with its standard error per
        data point; None for families that do not define them. ``novelty``: this
        family's :meth:`novelty_scores` of ``x`` if already computed (reused where the
        family can)."""
        return dict.fromkeys(("rate", "elbo", "log_likelihood", "log_likelihood_se"))

    def novelty_scores(self, x, samples: int = 500) -> torch.Tensor:
        """Out-of-distribution score per row of ``x``, larger for less typical data: the
        squared reconstruction error here; families with a likelihood use -log p(x)."""
        x = self.as_input(x)
        recon = self.reconstruct(x)
        return (recon - x).reshape(x.shape[0], -1).pow(2).sum(1)

    # -- persistence -------------------------------------------------------------------
    def plain_params(self) -> dict[str, Any]:
        params = {}
        for k, v in self.get_params().items():
            if isinstance(v, BetaSchedule):
                v = v.to_dict()
            elif k in COMPONENT_PARAMS:
                v = component_record(v)
            elif isinstance(v, tuple):
                v = list(v)
            params[k] = v
        return params

    def read_payload(self, ckpt: dict) -> None:
        """Hook: read a family's own entries of a checkpoint (written by :meth:`payload`)
        before the model is rebuilt from it."""

    def payload(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "params": self.plain_params(),
            "data_shape": list(self.data_shape_),
            "likelihood": self.likelihood_,
            "data": getattr(self, "data_info_", {}),
            "pyrovae_version": __version__,
        }

    def save(self, path: str | Path) -> None:
        """Write the fitted model (state_dicts + plain data; atomic)."""
        self._check_fitted()
        payload = self.payload()
        payload["module"] = self.module_.state_dict()
        trainer = getattr(self, "trainer_", None)
        if trainer is not None:
            payload["trainer"] = trainer.state_dict(gather=False)  # not a collective
        save_checkpoint(path, payload)

    @classmethod
    def load(cls, path: str | Path, **components: Any) -> Estimator:
        """Load an estimator written by :meth:`save` or by training with ``run_dir``.

        Parameters
        ----------
        path : path
            A checkpoint file or a run folder holding ``checkpoint.pt``.
        **components
            Objects for components that were given as objects when training
            (their class must match; their weights come from the checkpoint).
        """
        ckpt = load_checkpoint(path)
        est = from_checkpoint(ckpt, **components)
        if cls is not Estimator and not isinstance(est, cls):
            raise CheckpointError(
                f"{str(path)!r} holds a {ckpt['family']!r} model, not a {cls.family!r} model"
            )
        return est


def _restore_component(name: str, record: Any, components: dict) -> Any:
    if isinstance(record, dict) and "custom" in record:
        if name not in components:
            raise CheckpointError(
                f"this checkpoint was made with a custom {name} object ({record['custom']}); "
                f"pass it to load(..., {name}=...)"
            )
        obj = components[name]
        cls = type(obj)
        if f"{cls.__module__}.{cls.__qualname__}" != record["custom"]:
            raise CheckpointError(
                f"the {name} passed is a {cls.__qualname__}; "
                f"the checkpoint needs {record['custom']}"
            )
        return obj
    return components.get(name, record)


def from_checkpoint(ckpt: dict, weights: str = "best", **components: Any) -> Estimator:
    """Rebuild a fitted estimator from a loaded checkpoint dict.

    Parameters
    ----------
    ckpt : dict
        As returned by :func:`~pyrovae.training.load_checkpoint`.
    weights : {"best", "last"}
        Best-by-validation weights (default) or the weights of the last epoch.
    """
    try:
        family = ckpt["family"]
        params = dict(ckpt["params"])
        data_shape = tuple(ckpt["data_shape"])
        state = ckpt["module"]
    except KeyError as exc:
        raise CheckpointError(f"checkpoint lacks the entry {exc.args[0]!r}") from None
    cls = ESTIMATORS.get(family)
    for name in COMPONENT_PARAMS:
        if name in params:
            params[name] = _restore_component(name, params[name], components)
    if isinstance(params.get("beta"), dict):
        b = params["beta"]
        params["beta"] = make_schedule(b["beta"], b["beta_schedule"], b.get("beta_warmup", 10.0))
    unknown = set(params) - set(cls._param_names())
    if unknown:
        raise CheckpointError(f"checkpoint has unknown parameters: {', '.join(sorted(unknown))}")
    try:
        check_device(params.get("device", "cpu"))
    except ConfigError:  # trained on a device this machine lacks
        logger.warning(
            "the run was trained on %s, not available here: using device auto", params["device"]
        )
        params["device"] = "auto"
    est = cls(**params)
    est.read_payload(ckpt)
    likelihood = _restore_component("likelihood", ckpt.get("likelihood"), components)
    est.build(data_shape, likelihood)
    est.data_info_ = dict(ckpt.get("data", {}))
    trainer_state = ckpt.get("trainer") or {}
    if weights == "best" and trainer_state.get("best_module") is not None:
        state = trainer_state["best_module"]
    try:
        est.module_.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            "the checkpoint's weights do not fit the model its configuration describes: "
            + _state_mismatch(est.module_.state_dict(), state, exc)
        ) from None
    est.history_ = list(trainer_state.get("history", []))
    est.n_epochs_ = int(trainer_state.get("epoch", 0))
    est.best_epoch_ = int(trainer_state.get("best_epoch", 0))
    est.time_used_ = float(trainer_state.get("time_used", 0.0))
    est.module_.eval()
    return est


def _state_mismatch(own: dict, state: dict, exc: Exception) -> str:
    """One line naming how a state_dict differs from the model's."""
    shapes = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    differ = [k for k in own if k in shapes and shapes[k] != tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if differ:
        k = differ[0]
        more = f" (and {len(differ) - 1} more)" if len(differ) > 1 else ""
        return (
            f"{k} has shape {list(shapes[k])} in the checkpoint but {list(own[k].shape)} "
            f"in the model{more}"
        )
    if missing:
        return f"the checkpoint lacks {len(missing)} of the model's tensors, e.g. {missing[0]}"
    if extra:
        return f"the checkpoint has {len(extra)} tensors the model lacks, e.g. {extra[0]}"
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)


def place(device: str) -> torch.device:
    """The device to use for ``device`` ("auto" resolved); under a process group with
    CUDA, the rank's own GPU."""
    dev = torch.device(resolve_device(device))
    ctx = distributed.current()
    if ctx is not None and dev.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return dev


def _zero_filled(x, mask):
    """``x`` with its missing entries (``mask`` False) set to 0; ``x`` if no mask."""
    if x is None or mask is None:
        return x
    return torch.where(mask, x, torch.zeros_like(x))


def has_rows(x) -> bool:
    """False for None or an empty array (treated as "no validation data")."""
    return x is not None and len(x) > 0


def estimator_params(family: str, config: dict[str, Any]) -> dict[str, Any]:
    """The subset of a resolved run config that ``family``'s estimator accepts."""
    from ..config import DECODER_WEIGHT_OPTIONS, defaults

    names = set(ESTIMATORS.get(family)._param_names())
    initial = defaults()
    for key in DECODER_WEIGHT_OPTIONS:
        if key not in names and config.get(key, initial[key]) != initial[key]:
            raise ConfigError(
                f"{key} needs a model with latent variables (vae, hvae); the {family} "
                "model has none"
            )
    return {k: v for k, v in config.items() if k in names}

"""Experiment tracking: training callbacks that log a run to TensorBoard or MLflow.

A tracker is a :class:`~pyrovae.training.callbacks.Callback` registered by name in
:data:`LOGGERS`; ``pyrovae train --log tensorboard,mlflow`` (TOML ``log = [...]``, the
estimators' ``log`` parameter) appends one per name to the standard callbacks
(:func:`make_loggers`). A new tracker is a :class:`Tracker` subclass registered with
``@LOGGERS.register("name")``. Only the process that writes files (rank 0) logs, and
each tracker's library is imported when its callback starts, never otherwise.

What is logged (see :data:`pyrovae.runs.METRIC_COLUMNS` for the columns):

* **tensorboard** (``torch.utils.tensorboard``, PyPI ``tensorboard``), event files in the
  run folder's ``tb/`` (:data:`~pyrovae.runs.names.TENSORBOARD`): per epoch (the step)
  the numeric columns of ``metrics.csv`` under their own names (``train_loss``,
  ``val_elbo``, ``beta``, ``lr``, ...) and the mean KL per latent dimension d over (up
  to 500) validation rows, ``kl_per_dim/d`` = mean_n KL(q(z_d|x_n) || p(z_d)), analytic
  where torch has it and a one-sample estimate otherwise (as free bits computes it;
  only for a factorized guide and prior); every ``log_images_every`` epochs (image data
  only) ``reconstructions`` (rows of 8 validation images above their reconstructions
  E[x|z = E_q[z]]) and ``samples`` (E[x|z] for 64 z from the prior, drawn from a fixed
  seed); at the start of a run its options, as TensorBoard hyperparameters
  (``add_hparams``' records, with ``val_elbo`` and ``val_loss`` as their metrics) and
  as a text table ``options``. A resumed run purges events after its checkpoint's epoch.
* **mlflow** (PyPI ``mlflow-skinny`` or ``mlflow``): the run's options as parameters,
  the same per-epoch metrics with the epoch as the step, and when training ends the
  files of the run folder as artifacts (the CLI adds the figures it writes afterwards).
  The tracking URI is ``$MLFLOW_TRACKING_URI``, else a local file store ``./mlruns``
  (made absolute; ``mlflow ui --backend-store-uri ./mlruns`` shows it), the experiment
  ``$MLFLOW_EXPERIMENT_NAME``, else ``pyrovae``, and the MLflow run is named after the
  run folder. Its URI, experiment and run id are kept in the run folder's
  :data:`~pyrovae.runs.names.MLFLOW_RUN`, so a resumed run continues the same MLflow
  run (in the same store, whatever the current folder).

The images and the KL per dimension are computed in evaluation mode under a forked
random-number state, so logging leaves training's random streams, and so its results,
exactly as they would be without it.

References: KL per dimension and free bits, Kingma et al. (2016), "Improved variational
inference with inverse autoregressive flow", NeurIPS.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..config import coerce
from ..data.batch import Batch
from ..errors import ConfigError, TrainingInterrupted
from ..objectives.freebits import per_dimension_kl
from ..plotting import image_grid
from ..registry import Registry
from ..runs import read_config, read_json, write_json
from ..runs.config import has_config
from ..runs.names import LOCK, MLFLOW_RUN, TENSORBOARD
from .callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

logger = logging.getLogger(__name__)

#: The trackers, by the name that ``--log`` takes.
LOGGERS: Registry = Registry("tracker")

#: Validation rows (else training rows) over which the KL per dimension is averaged.
KL_ROWS = 500
#: Images shown as reconstructions, and prior samples drawn, at each image step.
N_RECONSTRUCTIONS = 16
N_SAMPLES = 64
#: The file store used when ``$MLFLOW_TRACKING_URI`` is not set (relative to the
#: current folder, made absolute when the MLflow run is created).
DEFAULT_MLFLOW_STORE = "mlruns"
DEFAULT_EXPERIMENT = "pyrovae"
#: What a family whose guide, prior or decoder do not fit these summaries raises (a
#: guide or prior that does not factorize, a decoder that needs more than a code).
UNSUPPORTED = (ConfigError, AttributeError, NotImplementedError, RuntimeError, TypeError)


class Tracker(Callback):
    """A training callback that logs to an experiment tracker (see the module docstring).

    Parameters
    ----------
    images_every : int
        Log image grids every this many epochs (0: never); trackers without images
        ignore it.
    """

    #: The module whose presence tells that the library is installed (not imported).
    requires: str = ""
    #: pyrovae's optional extra that installs it (``pip install 'pyrovae[EXTRA]'``).
    extra: str = ""

    def __init__(self, images_every: int = 10) -> None:
        self.images_every = int(images_every)

    @classmethod
    def check_installed(cls, name: str) -> None:
        """A one-line :class:`ConfigError` naming the pip extra when the library is
        missing (found without importing it)."""
        if cls.requires and importlib.util.find_spec(cls.requires) is None:
            raise ConfigError(
                f"--log {name} needs the {cls.requires} package, which is not installed: "
                f"pip install 'pyrovae[{cls.extra}]'"
            )

    def add_files(self, trainer: Trainer, paths: Sequence[Path]) -> None:
        """Files of the run folder written after training (the CLI's figures)."""


def tracker_names(names: str | Iterable[str] | None) -> list[str]:
    """The names of ``--log`` (a list, or one comma-separated string), each once."""
    if names is not None and not isinstance(names, str):
        names = list(names)
    return list(dict.fromkeys(coerce("log", names or [])))


def check_loggers(names: str | Iterable[str] | None) -> None:
    """Every name registered and its library installed; a one-line error otherwise."""
    for name in tracker_names(names):
        LOGGERS.get(name).check_installed(name)


def make_loggers(names: str | Iterable[str] | None, images_every: int = 10) -> list[Tracker]:
    """One tracker callback per name (duplicates once), in the order given."""
    check_loggers(names)
    return [LOGGERS.get(name)(images_every=images_every) for name in tracker_names(names)]


def log_files(trainer: Trainer | None, paths: Sequence[str | Path]) -> None:
    """Hand files written after training to the trainer's trackers."""
    if trainer is None or not trainer.is_main:
        return
    for cb in trainer.callbacks:
        if isinstance(cb, Tracker):
            cb.add_files(trainer, [Path(p) for p in paths])


# -- what the trackers log ----------------------------------------------------------------


def epoch_metrics(row: dict) -> dict[str, float]:
    """The finite numeric entries of a ``metrics.csv`` row, without the epoch."""
    out = {}
    for key, value in row.items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def run_options(trainer: Trainer) -> dict[str, str | int | float | bool]:
    """The run's options: ``config.toml`` where the run folder has one (the CLI's), else
    the estimator's parameters; lists and tables as text."""
    if trainer.run_dir is not None and has_config(trainer.run_dir):
        options = read_config(trainer.run_dir)
    else:
        options = dict(trainer.payload().get("params", {}))
    plain: dict[str, str | int | float | bool] = {}
    for key, value in sorted(options.items()):
        if value is None or isinstance(value, (str, bool, int, float)):
            plain[key] = "" if value is None else value
        else:
            plain[key] = str(value)
    return plain


def _probe(trainer: Trainer, n: int) -> torch.Tensor | None:
    """The first ``n`` validation rows (training rows without validation data)."""
    rows = _probe_rows(trainer, n)
    return None if rows is None else rows.x


def _probe_rows(trainer: Trainer, n: int) -> Batch | None:
    """:func:`_probe`'s rows with their labels or conditions (no mask)."""
    data = trainer.val_data if trainer.val_data is not None else trainer.train_data
    if data is None or len(data) == 0:
        return None
    rows = data[: min(n, len(data))].to(trainer.device)
    return Batch(rows.x, rows.y)


@contextlib.contextmanager
def _quietly(trainer: Trainer):
    """Evaluation mode, no gradients, and training's random state left untouched."""
    module = trainer.module
    was_training = module.training
    devices = [trainer.device] if trainer.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(int(trainer.options.seed))
        module.eval()
        try:
            yield module
        finally:
            module.train(was_training)


def kl_per_dimension(trainer: Trainer) -> list[float] | None:
    """Mean KL(q(z_d|x) || p(z_d)) over up to :data:`KL_ROWS` rows, per dimension d;
    None for families without latent variables or with a guide or prior that does not
    factorize over the dimensions."""
    if not trainer.module.has_latent_sites:
        return None
    x = _probe(trainer, KL_ROWS)
    if x is None:
        return None
    with _quietly(trainer) as module:
        try:
            q = module.encode(x)
            prior = module.prior_distribution().expand([x.shape[0]])
            kl = per_dimension_kl(q, prior, q.sample())
        except UNSUPPORTED as exc:
            logger.debug("no KL per dimension for this model: %s", exc)
            return None
    return kl.mean(0).tolist()


def image_grids(trainer: Trainer) -> dict[str, Any]:
    """``reconstructions`` and (for models with a prior) ``samples``, as arrays of shape
    (H, W) or (H, W, 3) in [0, 1]; empty for data that are not images."""
    rows = _probe_rows(trainer, N_RECONSTRUCTIONS)
    if rows is None or rows.x.dim() < 3:  # rows of features, not images
        return {}
    x = rows.x
    grids = {}
    with _quietly(trainer) as module:
        # a conditional family encodes and decodes given the rows' conditions
        data = rows if module.condition_dim else x
        try:
            recon = module.decode_rows(module.encode(data).mean, data).mean.reshape(x.shape)
            pairs = [t for i in range(0, len(x), 8) for t in (x[i : i + 8], recon[i : i + 8])]
            grids["reconstructions"] = image_grid(torch.cat(pairs), ncol=8)
            if module.has_latent_sites:
                if module.condition_dim:  # the probe rows' conditions, in turn
                    given = rows[torch.arange(N_SAMPLES, device=x.device) % len(x)]
                    z = module.sample_latent(N_SAMPLES, given.y)
                else:
                    given = None
                    z = module.sample_latent(N_SAMPLES)
                px = module.decode(z) if given is None else module.decode_rows(z, given)
                samples = px.mean.reshape(N_SAMPLES, *x.shape[1:])
                grids["samples"] = image_grid(samples, ncol=8)
        except UNSUPPORTED as exc:  # a family that decodes from more than a code
            logger.debug("no image grids for this model: %s", exc)
    return grids


def images_due(trainer: Trainer, every: int) -> bool:
    return every > 0 and trainer.epoch % every == 0


# -- TensorBoard ----------------------------------------------------------------------------


@LOGGERS.register("tensorboard")
class TensorBoardLogger(Tracker):
    """Log to TensorBoard event files in the run folder's ``tb/`` (module docstring)."""

    requires = "tensorboard"
    extra = "tensorboard"

    def __init__(self, images_every: int = 10) -> None:
        super().__init__(images_every)
        self.writer = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        if trainer.run_dir is None:
            raise ConfigError("--log tensorboard writes into the run folder: give a run_dir")
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        # a resumed run drops what a session logged after its checkpoint's epoch
        purge = trainer.epoch + 1 if trainer.epoch else None
        self.writer = SummaryWriter(str(trainer.run_dir / TENSORBOARD), purge_step=purge)
        if trainer.epoch == 0:
            options = run_options(trainer)
            metrics = {"val_elbo": math.nan, "val_loss": math.nan}
            for summary in hparams(options, metrics):
                self.writer.file_writer.add_summary(summary)
            table = "| option | value |\n|---|---|\n" + "\n".join(
                f"| {k} | {v} |" for k, v in options.items()
            )
            self.writer.add_text("options", table, 0)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.writer is None:
            return
        step = trainer.epoch
        for key, value in epoch_metrics(trainer.history[-1]).items():
            self.writer.add_scalar(key, value, step)
        kl = kl_per_dimension(trainer)
        if kl is not None:
            width = len(str(len(kl) - 1))
            for d, value in enumerate(kl):
                self.writer.add_scalar(f"kl_per_dim/{d:0{width}d}", value, step)
        if images_due(trainer, self.images_every):
            for tag, grid in image_grids(trainer).items():
                self.writer.add_image(
                    tag, grid, step, dataformats="HW" if grid.ndim == 2 else "HWC"
                )
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# -- MLflow ---------------------------------------------------------------------------------


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the file store ``./mlruns`` as an absolute URI."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return Path(DEFAULT_MLFLOW_STORE).resolve().as_uri()


def _allow_file_store(uri: str) -> None:
    """MLflow 3 refuses a local file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set
    (the store is kept but no longer developed); pyrovae's default is one."""
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


@LOGGERS.register("mlflow")
class MLflowLogger(Tracker):
    """Log to an MLflow tracking server or store (module docstring)."""

    requires = "mlflow"
    extra = "mlflow"

    def __init__(self, images_every: int = 10) -> None:
        super().__init__(images_every)
        self.client = None
        self.run_id: str | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        record = read_json(trainer.run_dir / MLFLOW_RUN) if trainer.run_dir else None
        uri = record["tracking_uri"] if record else tracking_uri()
        _allow_file_store(uri)
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(uri)
        run = None
        if record:
            try:
                run = self.client.get_run(record["run_id"])
                self.client.update_run(run.info.run_id, status="RUNNING")
            except MlflowException:
                logger.warning(
                    "the run's MLflow run %s is not in %s any more: starting a new one",
                    record["run_id"],
                    uri,
                )
                run = None
        if run is None:
            run = self._create_run(trainer, uri)
        self.run_id = run.info.run_id
        logged = run.data.params  # MLflow keeps a parameter's first value
        params = [Param(k, str(v)) for k, v in run_options(trainer).items() if k not in logged]
        for i in range(0, len(params), 100):  # MLflow's limit per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        logger.info("logging to MLflow run %s at %s", self.run_id, uri)

    def _create_run(self, trainer: Trainer, uri: str):
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name)
        )
        run_dir = trainer.run_dir
        tags = {"pyrovae.run_dir": str(run_dir.resolve())} if run_dir is not None else {}
        run = self.client.create_run(
            experiment_id, run_name=run_dir.name if run_dir is not None else None, tags=tags
        )
        if run_dir is not None:
            write_json(
                run_dir / MLFLOW_RUN,
                {
                    "tracking_uri": uri,
                    "experiment_id": experiment_id,
                    "run_id": run.info.run_id,
                },
            )
        return run

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [
            Metric(key, value, stamp, trainer.epoch)
            for key, value in epoch_metrics(trainer.history[-1]).items()
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.run_id is None:
            return
        exc = sys.exc_info()[1]
        if trainer.run_dir is not None:
            self.add_files(trainer, sorted(self._run_files(trainer.run_dir)))
        status = (
            "FINISHED"
            if exc is None
            else "KILLED"
            if isinstance(exc, TrainingInterrupted)
            else "FAILED"
        )
        self.client.set_terminated(self.run_id, status=status)

    def _run_files(self, run_dir: Path) -> Iterable[Path]:
        """The run folder's files, without its lock and a file store inside it."""
        store = Path(DEFAULT_MLFLOW_STORE)
        uri = self.client.tracking_uri if self.client is not None else ""
        if uri.startswith("file:"):
            store = Path(uri.removeprefix("file://").removeprefix("file:"))
        for path in run_dir.rglob("*"):
            if not path.is_file() or path.name == LOCK or path.name.endswith(".tmp"):
                continue
            with contextlib.suppress(ValueError):
                path.resolve().relative_to(store.resolve())
                continue
            yield path

    def add_files(self, trainer: Trainer, paths: Sequence[Path]) -> None:
        if self.run_id is None or trainer.run_dir is None:
            return
        for path in paths:
            parent = path.parent.resolve().relative_to(trainer.run_dir.resolve())
            where = None if parent == Path(".") else parent.as_posix()
            self.client.log_artifact(self.run_id, str(path), artifact_path=where)

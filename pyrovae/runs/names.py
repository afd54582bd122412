"""The names of the files in a run folder: the run folder's table of contents.

A run folder (``pyrovae train -o RUN``) is a file format that the training loop,
the estimators, the command line, the analysis and the report share. Every file
name in it is spelled here and nowhere else in pyrovae.

Written by training (``pyrovae train``, :meth:`pyrovae.api.Estimator.fit` with
``run_dir``, :func:`pyrovae.api.resume`):

* :data:`CHECKPOINT` (and :data:`PREVIOUS_CHECKPOINT`, the one before it;
  :data:`CORRUPT_CHECKPOINT`, an unreadable one set aside by a resume),
* :data:`CONFIG` (the resolved options of ``pyrovae train``),
* :data:`METRICS` (one row per epoch), :data:`RUN_INFO` (one record per session),
* :data:`LOCK` (present while a process trains into the folder),
* :data:`RECONSTRUCTIONS` and :data:`SAMPLES` (figures at the end of ``train``),
* with ``--log`` (:mod:`pyrovae.training.loggers`): :data:`TENSORBOARD` (TensorBoard's
  event files) and :data:`MLFLOW_RUN` (where the run is tracked in MLflow).

Written by the other verbs: :data:`EVALUATION` (``evaluate``), :func:`samples_grid`
(``sample``), the files of ``analyze`` (:data:`ANALYZE_FILES`), :data:`REPORT`
(``report``), the files of ``complete`` in :data:`COMPLETION_DIR`. ``select`` and
``compare`` write :data:`SELECTION`,
:data:`SELECTION_PLOT`, :data:`COMPARISON`, :data:`COMPARISON_TABLES`,
:data:`RATE_DISTORTION` and :data:`GRIDS` into a folder of their own.
"""

from __future__ import annotations

#: The latest resumable checkpoint (:mod:`pyrovae.training.checkpoint`).
CHECKPOINT = "checkpoint.pt"
#: The checkpoint before :data:`CHECKPOINT` (``pyrovae.atomic.previous_path``).
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
#: An unreadable :data:`CHECKPOINT`, set aside by a resume that used the previous one.
CORRUPT_CHECKPOINT = "checkpoint.corrupt.pt"
#: The options of ``pyrovae train``, resolved (TOML; read back by ``--resume``).
CONFIG = "config.toml"
#: Training curves: one row per epoch (columns :data:`pyrovae.runs.METRIC_COLUMNS`).
METRICS = "metrics.csv"
#: Provenance: one record per training session (code version, machine).
RUN_INFO = "run.json"
#: Held by the process that trains into the folder (:mod:`pyrovae.runs.lock`).
LOCK = "run.lock"

#: Figures written at the end of ``pyrovae train``.
RECONSTRUCTIONS = "reconstructions.png"
SAMPLES = "samples.png"

#: ``--log tensorboard``: the folder of TensorBoard's event files.
TENSORBOARD = "tb"
#: ``--log mlflow``: the tracking URI, experiment and run id of the run's MLflow run
#: (JSON; a resumed run logs to the same MLflow run).
MLFLOW_RUN = "mlflow.json"

#: ``pyrovae evaluate``.
EVALUATION = "evaluation.json"

#: ``pyrovae analyze``: ArviZ InferenceData, its summary table and forest plot, the
#: diagnostics and their figures.
POSTERIOR = "posterior.nc"
POSTERIOR_SUMMARY = "posterior_summary.csv"
POSTERIOR_FOREST = "posterior_forest.png"
DIAGNOSTICS = "diagnostics.json"
UNCERTAINTY = "uncertainty.png"
LATENT = "latent.png"
SBC = "sbc.png"
OOD = "ood.png"
#: analyze's figure of a Bayesian decoder's epistemic and aleatoric variance
EPISTEMIC = "epistemic.png"
ANALYZE_FILES = (
    POSTERIOR,
    POSTERIOR_SUMMARY,
    POSTERIOR_FOREST,
    DIAGNOSTICS,
    UNCERTAINTY,
    LATENT,
    SBC,
    OOD,
)

#: ``pyrovae complete`` (into RUN/:data:`COMPLETION_DIR`, or its ``--output`` folder): the
#: completed rows, the bands, the ArviZ object, the figure, the table of missing values
#: (tabular data) and the summary with the diagnostics.
COMPLETION_DIR = "completion"
COMPLETION_MEAN = "completion_mean.npy"
COMPLETION_BANDS = "completion_bands.npz"
COMPLETION_NC = "completion.nc"
COMPLETION_FIGURE = "completion.png"
COMPLETION_TABLE = "completion.csv"
COMPLETION_JSON = "completion.json"

#: ``pyrovae report``.
REPORT = "report.html"

#: ``pyrovae select`` (into its ``--output`` folder).
SELECTION = "selection.json"
SELECTION_PLOT = "selection.png"

#: ``pyrovae compare`` (into its ``--output`` folder).
COMPARISON = "comparison.json"
COMPARISON_TABLES = "comparison.md"
RATE_DISTORTION = "rate_distortion.png"
GRIDS = "grids.png"

#: A folder holding any of these holds a run (``pyrovae train`` refuses to write into
#: it without ``--force``).
RUN_FILES = (CHECKPOINT, METRICS, CONFIG)


def samples_grid(n: int) -> str:
    """The PNG of ``pyrovae sample -n N`` (its samples go next to it as ``.npy``)."""
    return f"samples-{int(n)}.png"


#: The folders among the names (the others are files).
FOLDERS = (TENSORBOARD, COMPLETION_DIR)

"""The run configuration: one table of options shared by the Python API, the
TOML config files and the command line.

Every option has a name (the TOML key and, with ``-`` for ``_``, the CLI flag),
a type, a default and a help text. :func:`resolve` merges defaults, a config
file and explicit overrides, rejecting unknown keys with a suggestion.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: Draws S of the decoder weights in the predictive log-likelihood of a Bayesian decoder.
WEIGHT_DRAWS = 10


def _int(value) -> int:
    """An integer (a whole float such as 8.0 is accepted; 2.5 or true are not)."""
    if isinstance(value, bool):
        raise ConfigError(f"expected an integer; got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"expected an integer; got {value!r}")
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected an integer; got {value!r}") from None


def _float(value) -> float:
    """A finite number."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a number; got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a number; got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"expected a finite number; got {value!r}")
    return out


def _str(value) -> str:
    """A name or path (a TOML string, not a table or list)."""
    if not isinstance(value, str):
        raise ConfigError(f"expected a string; got {value!r}")
    return value


def check_device(value) -> str:
    """A torch device string that exists on this machine, or ``"auto"``."""
    import torch

    value = _str(value)
    if value == "auto":
        return value
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError):
        raise ConfigError(f"expected a torch device such as cpu or cuda:0; got {value!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {value!r} requested but CUDA is not available; use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {value!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {value!r} requested but MPS is not available; use cpu")
    return value


def resolve_device(value: str) -> str:
    """``"auto"`` -> ``"cuda"`` if CUDA is available, else ``"mps"`` if MPS is, else
    ``"cpu"``; any other (checked) device string is returned as it is."""
    import torch

    value = check_device(value)
    if value != "auto":
        return value
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


#: What training does when the loss or a gradient is not finite.
DIVERGENCE_POLICIES = ("stop", "rollback")
#: The clocks a time budget can be counted on.
BUDGET_CLOCKS = ("wall", "cpu")
#: Which layers of a Bayesian decoder are random.
BAYESIAN_LAYERS = ("all", "last")
#: The options of a Bayesian decoder: only families with latent variables take them.
DECODER_WEIGHT_OPTIONS = (
    "bayesian_decoder",
    "decoder_prior_scale",
    "bayesian_layers",
    "beta_weights",
    "weight_posterior",
)
#: What training does with missing entries (NaN) of the data.
MISSING_POLICIES = ("refuse", "mask")


_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _duration(value) -> float:
    """Seconds from a number or a string with a unit (``90s``, ``10m``, ``1.5h``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        unit = next((u for u in sorted(_UNITS, key=len, reverse=True) if text.endswith(u)), "")
        try:
            seconds = float(text[: len(text) - len(unit)]) * _UNITS.get(unit, 1.0)
        except ValueError:
            raise ConfigError(
                f"expected a duration such as 600, 90s, 10m or 1.5h; got {value!r}"
            ) from None
    else:
        raise ConfigError(f"expected a duration such as 600, 90s, 10m or 1.5h; got {value!r}")
    return seconds


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: The value domains of options: a phrase for the error message and a test. The
#: Python estimators, the TOML files and the command line check values against the
#: same domain (:func:`check_value`), so all three accept and refuse the same values
#: with the same message.
DOMAINS: dict[str, tuple[str, Any]] = {
    "positive_int": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "count": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "positive": ("> 0", lambda v: _is_number(v) and v > 0),
    "nonnegative": (">= 0", lambda v: _is_number(v) and v >= 0),
    "factor": ("in (0, 1)", lambda v: _is_number(v) and 0 < v < 1),
    "seconds": (
        "a positive number of seconds",
        lambda v: _is_number(v) and v > 0,
    ),
    "divergence": (
        f"one of {', '.join(DIVERGENCE_POLICIES)}",
        lambda v: v in DIVERGENCE_POLICIES,
    ),
    "clock": (f"one of {', '.join(BUDGET_CLOCKS)}", lambda v: v in BUDGET_CLOCKS),
    "bayesian_layers": (
        f"one of {', '.join(BAYESIAN_LAYERS)}",
        lambda v: v in BAYESIAN_LAYERS,
    ),
    "missing": (f"one of {', '.join(MISSING_POLICIES)}", lambda v: v in MISSING_POLICIES),
    "rate": ("in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1),
}


def _int_list(value) -> list[int]:
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    try:
        return [_int(v) for v in value]
    except (TypeError, ConfigError):
        raise ConfigError(f"expected a list of integers; got {value!r}") from None


def _str_list(value) -> list[str]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected a list of column names or indices; got {value!r}")
    return [str(v).strip() for v in value]


def _name_list(value) -> list[str]:
    """Registered names: a list, or one comma-separated string."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"expected a list of names; got {value!r}")
    return [v.strip() for v in value if v.strip()]


def _column(value) -> str:
    """One column: a header name or a 0-based index."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"expected a column name or index; got {value!r}")
    return str(value).strip()


def parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"expected true or false; got {value!r}")


def _options(value) -> dict:
    """KEY=VALUE strings (CLI) or a table (TOML) -> dict with numbers parsed."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"component options are a table or KEY=VALUE strings; got {value!r}")
    out: dict[str, Any] = {}
    for item in value:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"component options are KEY=VALUE; got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = tomllib.loads(f"v = {v.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[k.strip()] = v.strip()
    return out


@dataclass(frozen=True)
class Option:
    """One configuration option."""

    name: str
    default: Any
    help: str
    group: str
    parse: Any = None
    registry: str | None = None  # dotted path of the registry listing valid names
    metavar: str | None = None
    domain: str | None = None  # a key of DOMAINS: the values the option accepts

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_O = Option
OPTIONS: tuple[Option, ...] = (
    # data
    _O(
        "data",
        "digits",
        "a registered dataset or a .npy/.npz/.csv file",
        "data",
        _str,
        "pyrovae.data.DATASETS",
        metavar="NAME|PATH",
    ),
    _O(
        "data_root",
        None,
        "folder holding downloaded datasets (default $PYROVAE_DATA or ~/.cache/pyrovae)",
        "data",
        _str,
        metavar="DIR",
    ),
    _O(
        "download",
        True,
        "download named datasets that are missing (when online)",
        "data",
        parse_bool,
    ),
    _O(
        "scale",
        "none",
        "feature scaling fitted on the training split",
        "data",
        _str,
        "pyrovae.data.SCALERS",
    ),
    _O(
        "val_fraction", 0.1, "fraction of the training data held out for validation", "data", _float
    ),
    _O(
        "test_fraction",
        0.1,
        "fraction held out for testing (datasets without a test split)",
        "data",
        _float,
    ),
    _O("split_seed", 0, "seed of the train/validation/test split", "data", _int),
    _O(
        "columns",
        [],
        "columns of a .csv/.npy/.npz file to use: header names or 0-based indices, "
        "comma-separated (default: all)",
        "data",
        _str_list,
        metavar="COL[,COL...]",
    ),
    _O(
        "drop_columns",
        [],
        "columns of a .csv/.npy/.npz file to leave out of the features (e.g. an id or a "
        "target column): header names or 0-based indices, comma-separated",
        "data",
        _str_list,
        metavar="COL[,COL...]",
    ),
    _O(
        "label_column",
        None,
        "a column of a .csv/.npy/.npz file holding class labels (integers or strings): "
        "left out of the features and kept as the rows' labels (header name or index)",
        "data",
        _column,
        metavar="NAME|INDEX",
    ),
    _O(
        "condition_columns",
        [],
        "columns of a .csv/.npy/.npz file holding per-row conditions (continuous or "
        "one-hot covariates) for a conditional model (--model cvae): left out of the "
        "features, kept unscaled as the rows' conditions (header names or indices)",
        "data",
        _str_list,
        metavar="COL[,COL...]",
    ),
    _O(
        "n_labels",
        None,
        "keep the labels of only this many training rows, drawn stratified by class with "
        "the split seed (semi-supervised runs: the other training rows and the validation "
        "rows are unlabelled, -1; the test labels are kept for evaluation)",
        "data",
        _int,
        metavar="N",
        domain="positive_int",
    ),
    _O(
        "label_fraction",
        None,
        "keep the labels of this fraction of the training rows (as --n-labels)",
        "data",
        _float,
        metavar="F",
        domain="factor",
    ),
    _O(
        "stream",
        False,
        "read a .npy data file in minibatches as training needs them instead of loading "
        "it (memory does not grow with its size; files larger than half the memory "
        "available are always streamed)",
        "data",
        parse_bool,
    ),
    _O(
        "binarize",
        "none",
        "binarize grey levels in [0, 1]: static (threshold 0.5) or dynamic (a fresh "
        "Bernoulli draw of every training batch each epoch)",
        "data",
        _str,
        "pyrovae.data.binarize.BINARIZATIONS",
    ),
    # data: options of a registered dataset (issue 19: the heston surfaces)
    _O(
        "data_options",
        {},
        "option of the registered dataset KEY=VALUE, e.g. observable=iv or "
        "'kappa=[0.2,0.8]' for --data heston (repeatable; see docs/heston.md)",
        "data",
        _options,
        metavar="KEY=VALUE",
    ),
    # model
    _O(
        "model",
        "vae",
        "model family: vae, hvae, the semi-supervised m2, or the autoencoder baselines ae and dae",
        "model",
        _str,
        "pyrovae.models.MODELS",
    ),
    _O("net", "mlp", "encoder/decoder architecture", "model", _str, "pyrovae.nets.ENCODERS"),
    _O(
        "hidden",
        [400],
        "hidden layer widths, data side first (e.g. 400 or 512,256)",
        "model",
        _int_list,
        metavar="N[,N...]",
    ),
    _O("activation", "relu", "hidden-layer activation", "model", _str, "pyrovae.nets.ACTIVATIONS"),
    _O(
        "net_options",
        {},
        "option of the encoder/decoder architecture KEY=VALUE, e.g. learn_v0=true for "
        "--net heston-pricer, which also reads the run's --data-options (repeatable)",
        "model",
        _options,
        metavar="KEY=VALUE",
    ),
    _O("latent_dim", 16, "dimension of the latent code z", "model", _int, domain="positive_int"),
    _O("prior", "normal", "prior p(z)", "model", _str, "pyrovae.priors.PRIORS"),
    _O(
        "likelihood",
        None,
        "likelihood p(x|z) (default: bernoulli for binary data and images in [0, 1], "
        "gaussian otherwise)",
        "model",
        _str,
        "pyrovae.likelihoods.LIKELIHOODS",
    ),
    _O("guide", "normal", "amortized guide q(z|x)", "model", _str, "pyrovae.guides.GUIDES"),
    _O(
        "prior_options",
        {},
        "prior option KEY=VALUE (repeatable)",
        "model",
        _options,
        metavar="KEY=VALUE",
    ),
    _O(
        "likelihood_options",
        {},
        "likelihood option KEY=VALUE, e.g. scale=0.1 (repeatable)",
        "model",
        _options,
        metavar="KEY=VALUE",
    ),
    _O(
        "guide_options",
        {},
        "guide option KEY=VALUE (repeatable)",
        "model",
        _options,
        metavar="KEY=VALUE",
    ),
    _O(
        "noise",
        0.25,
        "corruption level of the dae: masking probability or Gaussian sd",
        "model",
        _float,
        domain="nonnegative",
    ),
    _O(
        "corruption",
        "mask",
        "corruption of the dae's input",
        "model",
        _str,
        "pyrovae.models.CORRUPTIONS",
    ),
    _O(
        "top_dim",
        0,
        "size of the top latent z2 of the hvae (0: latent_dim // 2, at least 2)",
        "model",
        _int,
        domain="count",
    ),
    _O(
        "top_from_x",
        False,
        "hvae guide q(z2|x) q(z1|x,z2) instead of q(z1|x) q(z2|z1) (lets vamp be p(z2))",
        "model",
        parse_bool,
    ),
    _O(
        "layer_hidden",
        64,
        "width of the hvae's networks between its latent layers",
        "model",
        _int,
        domain="positive_int",
    ),
    _O(
        "layer_depth",
        1,
        "number of hidden layers of the hvae's networks between its latent layers",
        "model",
        _int,
        domain="positive_int",
    ),
    _O(
        "decoder_reads_top",
        False,
        "the hvae's decoder reads z1 and z2, p(x|z1,z2), as Tomczak & Welling's, not z1 alone",
        "model",
        parse_bool,
    ),
    _O(
        "layer_gated",
        False,
        "gated linear units instead of tanh in the hvae's networks between its latent layers",
        "model",
        parse_bool,
    ),
    # model: Bayesian decoder weights (issue 18, docs/bayesian-decoder.md)
    _O(
        "bayesian_decoder",
        False,
        "a posterior over the decoder's weights: N(0, s^2) prior, mean-field Normal guide "
        "(vae, hvae)",
        "model",
        parse_bool,
    ),
    _O(
        "decoder_prior_scale",
        1.0,
        "s of the N(0, s^2) prior on the Bayesian decoder's weights and biases",
        "model",
        _float,
        domain="positive",
    ),
    _O(
        "bayesian_layers",
        None,
        "which decoder layers are Bayesian: all (default) or last (needs --bayesian-decoder)",
        "model",
        _str,
        domain="bayesian_layers",
    ),
    _O(
        "beta_weights",
        False,
        "beta also scales the KL of the Bayesian decoder's weights (default: the z KL only)",
        "model",
        parse_bool,
    ),
    _O(
        "weight_posterior",
        None,
        "the Bayesian decoder's weight posterior: meanfield (default: a Normal per weight), "
        "rank1 (W = W_bar * r s^T, Normal r and s per layer), rank1-noise (rank1 with the "
        "means of r and s held at 1) or rank1-mixture (4 rank1 components); needs "
        "--bayesian-decoder",
        "model",
        _str,
    ),
    _O(
        "n_classes",
        0,
        "number of label classes of m2 (0: one more than the largest training label)",
        "model",
        _int,
        domain="count",
    ),
    _O(
        "aux_weight",
        0.1,
        "weight of m2's auxiliary classification term alpha E[log q(y|x)] per data point "
        "(the paper's alpha / N; 0: off): each labelled row's log q(y|x) weighs "
        "aux_weight * N / L (N training rows, L labelled)",
        "model",
        _float,
        domain="nonnegative",
    ),
    # missing entries (issue 16)
    _O(
        "missing",
        "refuse",
        "missing entries (NaN in the data, empty CSV cells): refuse them, or mask them "
        "(train on the observed entries only; the encoder also reads the mask)",
        "training",
        _str,
        domain="missing",
    ),
    _O(
        "mask_rate",
        0.0,
        "drop this fraction of the observed entries at random in each training minibatch "
        "(the guide learns to infer z from partial rows; > 0 implies a mask-reading encoder)",
        "training",
        _float,
        domain="rate",
    ),
    _O(
        "mask_encoder",
        "concat",
        "encoder of a model trained with masks: concat (the --net encoder over the "
        "zero-filled x and the mask) or set (the Partial VAE's permutation-invariant "
        "set encoder)",
        "model",
        _str,
        "pyrovae.nets.MASK_ENCODERS",
    ),
    # objective
    _O("objective", "trace", "ELBO estimator", "training", _str, "pyrovae.objectives.OBJECTIVES"),
    _O(
        "particles",
        1,
        "Monte Carlo samples per data point in the training objective (K for iwae)",
        "training",
        _int,
        domain="positive_int",
    ),
    _O(
        "objective_options",
        {},
        "objective option KEY=VALUE, e.g. free_bits=0.5 for freebits (repeatable)",
        "training",
        _options,
        metavar="KEY=VALUE",
    ),
    _O("beta", 1.0, "weight of the KL term (the target value of a schedule)", "training", _float),
    _O(
        "beta_schedule",
        "constant",
        "how beta evolves during training",
        "training",
        _str,
        "pyrovae.objectives.SCHEDULES",
    ),
    _O(
        "beta_warmup",
        10.0,
        "epochs of the linear warm-up, or the period of a cyclical schedule",
        "training",
        _float,
    ),
    # optimisation
    _O("epochs", 500, "maximum number of epochs", "training", _int, domain="positive_int"),
    _O("batch_size", 128, "minibatch size", "training", _int, domain="positive_int"),
    _O("learning_rate", 1e-3, "Adam learning rate", "training", _float, domain="positive"),
    _O(
        "patience",
        30,
        "stop after this many epochs without a better validation loss (0: never)",
        "training",
        _int,
        domain="count",
    ),
    _O(
        "lr_decay_patience",
        0,
        "multiply the learning rate by --lr-decay-factor after every this many epochs "
        "without a better validation loss (0: never)",
        "training",
        _int,
        domain="count",
    ),
    _O(
        "lr_decay_factor",
        0.5,
        "the learning rate is multiplied by this at each plateau decay",
        "training",
        _float,
        domain="factor",
    ),
    _O("seed", 0, "random seed of initialisation, minibatches and sampling", "training", _int),
    _O(
        "device",
        "cpu",
        "torch device: auto (cuda if available, else mps, else cpu), cpu, cuda, cuda:1, mps",
        "training",
        check_device,
    ),
    _O(
        "amp",
        False,
        "mixed precision on CUDA: the encoder and decoder networks in bfloat16 autocast, "
        "log-densities and the loss in float32 (an error with --device cpu/mps; ignored "
        "with a warning when --device auto finds no GPU)",
        "training",
        parse_bool,
    ),
    _O(
        "nproc",
        1,
        "train data-parallel in this many processes on this machine (DistributedDataParallel; "
        "gloo on CPU, nccl with one GPU per process); under torchrun the launcher's "
        "processes are used instead",
        "training",
        _int,
        domain="positive_int",
    ),
    _O(
        "checkpoint_every",
        0,
        "also write the checkpoint every this many optimizer steps inside an epoch "
        "(0: at the end of each epoch only)",
        "training",
        _int,
        metavar="STEPS",
        domain="count",
    ),
    _O(
        "on_divergence",
        "stop",
        "when the loss or a gradient becomes NaN/inf (the step is always skipped): stop "
        "with an error, or rollback to the last checkpoint with a lower learning rate",
        "training",
        _str,
        domain="divergence",
    ),
    _O(
        "divergence_retries",
        3,
        "rollbacks allowed per run with --on-divergence rollback",
        "training",
        _int,
        domain="count",
    ),
    _O(
        "rollback_lr_factor",
        0.5,
        "the learning rate is multiplied by this at each rollback",
        "training",
        _float,
        domain="factor",
    ),
    _O(
        "time_budget",
        None,
        "stop training after this much time (seconds, or with a unit: 90s, 10m, 1.5h); "
        "a resumed run spends what is left",
        "training",
        _duration,
        metavar="TIME",
        domain="seconds",
    ),
    _O(
        "budget_clock",
        "wall",
        "clock of --time-budget: wall (elapsed time) or cpu (the process's CPU time "
        "over all threads)",
        "training",
        _str,
        domain="clock",
    ),
    # experiment tracking (pyrovae.training.loggers)
    _O(
        "log",
        [],
        "experiment trackers to log the run to, comma-separated: tensorboard (event files "
        "in the run folder's tb/) and mlflow (to $MLFLOW_TRACKING_URI, default ./mlruns)",
        "training",
        _name_list,
        "pyrovae.training.loggers.LOGGERS",
        metavar="TRACKER[,TRACKER...]",
    ),
    _O(
        "log_images_every",
        10,
        "with --log: a grid of reconstructions and prior samples every this many epochs "
        "(image data only; 0: never)",
        "training",
        _int,
        metavar="EPOCHS",
        domain="count",
    ),
)

OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}
DATA_KEYS = tuple(o.name for o in OPTIONS if o.group == "data")
ESTIMATOR_KEYS = tuple(o.name for o in OPTIONS if o.group != "data")


def defaults() -> dict[str, Any]:
    """A fresh dict of every option's default."""
    return {
        o.name: (
            list(o.default)
            if isinstance(o.default, list)
            else dict(o.default)
            if isinstance(o.default, dict)
            else o.default
        )
        for o in OPTIONS
    }


def check_keys(keys, where: str) -> None:
    """Raise :class:`ConfigError` naming the first unknown key, with a suggestion."""
    for key in keys:
        if key not in OPTIONS_BY_NAME:
            close = difflib.get_close_matches(key, OPTIONS_BY_NAME, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {where} key {key!r}{hint}")


def check_value(name: str, value: Any) -> Any:
    """``value`` if it lies in option ``name``'s domain, else a one-line ConfigError
    (``"epochs must be a positive integer; got 0"``). ``None`` passes where the
    option's default is ``None``. This is the one check behind the estimators'
    parameters, the TOML keys and the command-line flags."""
    opt = OPTIONS_BY_NAME[name]
    if opt.domain is None or (value is None and opt.default is None):
        return value
    text, ok = DOMAINS[opt.domain]
    if not ok(value):
        raise ConfigError(f"{name} must be {text}; got {value!r}")
    return value


def coerce(name: str, value: Any) -> Any:
    """Parse ``value`` with option ``name``'s type and check its domain; one-line error
    if it does not fit."""
    opt = OPTIONS_BY_NAME[name]
    if value is None or opt.parse is None:
        return value
    try:
        value = opt.parse(value)
    except ConfigError as exc:
        raise ConfigError(f"option {name!r}: {exc}") from None
    except (TypeError, ValueError):
        raise ConfigError(f"option {name!r} got an invalid value {value!r}") from None
    return check_value(name, value)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file (keys as in :data:`OPTIONS`), checked and coerced."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    check_keys(raw, f"config file {path.name!r}")
    return {k: coerce(k, v) for k, v in raw.items()}


def resolve(*layers: dict[str, Any]) -> dict[str, Any]:
    """Defaults, overridden by each layer in turn (keys checked, values coerced)."""
    out = defaults()
    for layer in layers:
        check_keys(layer, "option")
        out.update({k: coerce(k, v) for k, v in layer.items()})
    return out


#: Estimator settings that :func:`pyrovae.api.resume` (and ``pyrovae train --resume``)
#: may change; everything else continues as the run was configured.
RESUME_OVERRIDES = (
    "device",
    "amp",
    "checkpoint_every",
    "on_divergence",
    "divergence_retries",
    "rollback_lr_factor",
    "log",
    "log_images_every",
)

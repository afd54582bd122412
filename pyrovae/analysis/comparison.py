r"""Frequentist versus Bayesian autoencoders: one set of metrics for several runs.

The runs (AE, DAE, VAE, beta-VAE, ...) are trained on the same data, usually with the
same networks; every metric below is computed on the same held-out points with the
same random numbers for every run. ``x`` is a test image, ``x_hat`` its
reconstruction E[x | z = E_q[z|x]] (for an autoencoder, the decoded code), D the
number of pixels. Posterior means and draws of z come from each model family's joint
guide posterior (``posterior_moments``, ``posterior_sample``): for a hierarchical VAE
they are those of the code z1 the decoder reads, marginal over the other layer.

Reconstruction and likelihood
    * squared error per image ``sum_d (x_d - x_hat_d)^2`` (mean over test images);
    * reconstruction term ``E_q[log p(x|z)]`` (for an autoencoder ``log p(x|z(x))``);
    * held-out ``log p(x)`` by importance sampling with the guide as proposal
      (:func:`~pyrovae.inference.loglik.log_likelihood`; Burda et al. 2016), VAEs only;
    * rate ``R = E_x KL(q(z|x) || p(z))`` and distortion ``D = -E_x E_q[log p(x|z)]``,
      whose trade-off beta controls (Alemi et al. 2018, "Fixing a broken ELBO").

Sample quality (a classifier trained on the real training images and labels: by
default a small MLP on the flattened pixels, scikit-learn's ``MLPClassifier`` with
hidden layers (128, 64); logistic regression on request, which is fast but cannot
tell the shapes apart, since it is not translation-invariant. For data with several
label columns, such as the factors of ``shapes``, the first column is the class)
    * accuracy of the classifier on the reconstructions of test images, against
      their true labels (does the reconstruction keep the class?);
    * for samples x' = E[x|z], z ~ p(z): the mean confidence ``E max_c p(c|x')``
      and the entropy ``H = -sum_c h_c log h_c`` of the predicted-label histogram h
      (diversity; at most log C);
    * the mean distance from each sample to its nearest training image, with the
      test-to-train distance as reference (a sample much closer than test images are
      is a copy; much further, not like the data).
    Autoencoders have no prior: they are sampled from a Gaussian fitted to their
    training codes (ex-post density estimation, Ghosh et al. 2020).

Latent smoothness
    For pairs (z_a, z_b) of test encodings and z(t) = (1 - t) z_a + t z_b on T equally
    spaced t, the ratio of the decoded path length to the distance of its endpoints,
    ``sum_t ||x(t_{i+1}) - x(t_i)|| / ||x(1) - x(0)||`` (1 for a decoder that is
    linear along the line), and the largest single step as a fraction of the path
    (1 / (T - 1) for an even path; near 1 for a jump).

Prior filling
    * ``MMD^2`` (unbiased estimate, Gaussian kernel with the median-distance
      bandwidth; Gretton et al. 2012) between the aggregate posterior (one draw
      z ~ q(z|x) per test point) and draws from the prior: 0 when the encodings fill
      the prior;
    * the fraction of decoded prior samples that lie no further from the training set
      than 95 % of the test images do (their nearest-neighbour distance is at most the
      95th percentile of the test-to-train distances).

Out-of-distribution detection
    AUROC of the score s(x) = -log p(x) (VAEs) or the squared reconstruction error
    (autoencoders) for test images against uniform noise, inverted images
    (lo + hi - x) and, for single-channel images, the other built-in dataset resized
    (digits for shapes runs, shapes for digits runs). 0.5 is chance.

Disentanglement (data with known factors, e.g. ``shapes``)
    MIG and the beta-VAE score of :mod:`.disentanglement` on the posterior means.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyro
import torch

from .. import sites
from ..errors import ConfigError, DataError
from ..inference.progress import progress_bar
from ..registry import Registry

logger = logging.getLogger(__name__)

#: Built-in, download-free image datasets offered to each other as out-of-distribution data.
OTHER_DATASETS = ("digits", "shapes")

#: Entries of a run's recorded data that must agree for runs to be compared.
DATA_KEYS = (
    "data",
    "split_seed",
    "val_fraction",
    "test_fraction",
    "scale",
    "binarize",
    "columns",
    "drop_columns",
    "label_column",
    "data_options",
)


# -- metrics on plain tensors ------------------------------------------------------------


def _flat(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.reshape(x.shape[0], -1).to(torch.float64)


@torch.no_grad()
def nn_distances(a, b, chunk: int = 1024) -> torch.Tensor:
    """Euclidean distance from each row of ``a`` to its nearest row of ``b``, ``(N_a,)``
    (rows are flattened)."""
    a, b = _flat(a), _flat(b)
    if b.shape[0] == 0:
        raise DataError("nearest-neighbour distances need a non-empty reference set")
    out = [torch.cdist(a[i : i + chunk], b).min(1).values for i in range(0, a.shape[0], chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def median_bandwidth(x, y, max_points: int = 1000) -> float:
    """Median pairwise distance of the pooled rows of ``x`` and ``y`` (at most
    ``max_points`` of them, evenly spaced), the usual RBF bandwidth heuristic."""
    pooled = torch.cat([_flat(x), _flat(y)])
    step = max(1, pooled.shape[0] // max_points)
    p = pooled[::step]
    d = torch.cdist(p, p)
    d = d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)]
    med = float(d.median()) if d.numel() else 1.0
    return med if med > 0 else 1.0


@torch.no_grad()
def mmd_rbf(x, y, bandwidth: float | None = None) -> float:
    """Unbiased estimate of MMD^2 between the rows of ``x`` and ``y`` with the kernel
    k(a, b) = exp(-||a - b||^2 / (2 h^2)) (Gretton et al. 2012, eq. 3); ``h`` is
    ``bandwidth`` or the median heuristic. Close to 0 (it can be slightly negative)
    when both come from one distribution."""
    x, y = _flat(x), _flat(y)
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise DataError("MMD needs at least two rows in each sample")
    h = float(bandwidth) if bandwidth is not None else median_bandwidth(x, y)

    def k(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * h * h))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float(
        (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        - 2 * kxy.mean()
    )


@torch.no_grad()
def path_smoothness(decode: Callable, z_a, z_b, steps: int = 16) -> dict:
    """Smoothness of decoded linear interpolations (module docstring).

    Parameters
    ----------
    decode : callable
        Codes ``(M, L)`` -> decoded data ``(M, ...)`` (e.g. ``E[x|z]``).
    z_a, z_b : Tensor
        Endpoints ``(P, L)``.
    steps : int
        Points on each path, endpoints included (>= 2).

    Returns
    -------
    dict
        ``ratio`` (mean over pairs of path length / endpoint distance), ``ratio_max``,
        ``max_step`` (mean over pairs of the largest step / path length), ``pairs``
        (pairs whose decoded endpoints differ; the others are left out), ``steps``.
    """
    if int(steps) < 2:
        raise ConfigError(f"steps must be >= 2; got {steps}")
    z_a, z_b = torch.as_tensor(z_a), torch.as_tensor(z_b)
    t = torch.linspace(0, 1, int(steps), dtype=z_a.dtype, device=z_a.device)
    zs = z_a[:, None, :] * (1 - t)[None, :, None] + z_b[:, None, :] * t[None, :, None]
    p = z_a.shape[0]
    xs = _flat(decode(zs.reshape(p * int(steps), -1))).reshape(p, int(steps), -1)
    seg = (xs[:, 1:] - xs[:, :-1]).norm(dim=-1)
    path = seg.sum(1)
    straight = (xs[:, -1] - xs[:, 0]).norm(dim=-1)
    keep = straight > 1e-6 * (1 + xs[:, 0].norm(dim=-1))
    if not bool(keep.any()):
        return {
            "ratio": math.nan,
            "ratio_max": math.nan,
            "max_step": math.nan,
            "pairs": 0,
            "steps": int(steps),
        }
    ratio = path[keep] / straight[keep]
    max_step = seg[keep].max(1).values / path[keep]
    return {
        "ratio": float(ratio.mean()),
        "ratio_max": float(ratio.max()),
        "max_step": float(max_step.mean()),
        "pairs": int(keep.sum()),
        "steps": int(steps),
    }


def label_entropy(pred) -> float:
    """Entropy (nats) of the histogram of the predicted labels ``pred``."""
    _, counts = np.unique(np.asarray(pred), return_counts=True)
    if counts.size == 0:
        return math.nan
    p = counts / counts.sum()
    return float(max(0.0, -(p * np.log(p)).sum()))


def auroc(score_in, score_out) -> float:
    """Area under the ROC curve of a score that should be higher for ``score_out``."""
    from sklearn.metrics import roc_auc_score

    s_in, s_out = np.asarray(score_in, float), np.asarray(score_out, float)
    labels = np.r_[np.zeros(s_in.size), np.ones(s_out.size)]
    return float(roc_auc_score(labels, np.r_[s_in, s_out]))


#: Label classifiers for the sample-quality metrics: name -> ``f(seed)`` returning an
#: unfitted scikit-learn classifier for flattened images.
CLASSIFIERS: Registry = Registry("classifier")


@CLASSIFIERS.register("mlp")
def _mlp(seed: int = 0):
    """Two hidden layers (128, 64), ReLU, L2 1e-3, Adam, at most 200 epochs."""
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier((128, 64), alpha=1e-3, max_iter=200, random_state=int(seed))


@CLASSIFIERS.register("logistic")
def _logistic(seed: int = 0):
    """Logistic regression on standardized pixels (fast; not translation-invariant)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def train_classifier(x, y, kind: str = "mlp", max_train: int = 5000, seed: int = 0):
    """A label classifier (name in :data:`CLASSIFIERS`) fitted on the flattened images
    ``x`` (at most ``max_train`` rows) and labels ``y``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    make = CLASSIFIERS.get(kind)
    x, y = _flat(x).numpy(), np.asarray(y)
    if x.shape[0] > max_train:
        idx = np.random.default_rng(seed).choice(x.shape[0], max_train, replace=False)
        x, y = x[idx], y[idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make(seed).fit(x, y)


# -- shared reference for all runs ------------------------------------------------------


@dataclass
class Reference:
    """What every run is measured against: held-out points, the training set, a label
    classifier, out-of-distribution sets and the factor generator (if any)."""

    x_test: torch.Tensor
    y_test: np.ndarray | None
    x_train: torch.Tensor
    classifier: object = None
    n_classes: int = 0
    test_nn: torch.Tensor | None = None
    nn_threshold: float = math.nan
    ood: dict = field(default_factory=dict)
    generator: object = None
    scaler: object = None
    stats: dict = field(default_factory=dict)


def _class_labels(y) -> np.ndarray | None:
    """Class labels from a dataset's labels: the labels, or for several label columns
    (the factors of ``shapes``) the first column."""
    if y is None:
        return None
    y = np.asarray(torch.as_tensor(y).cpu())
    if y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        return None
    return y


def _other_dataset(data, like: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """The other built-in image dataset, resized to ``data``'s image size, or None."""
    import torch.nn.functional as F

    from ..data import load_data

    shape = data.data_shape
    if not data.is_image or len(shape) != 3 or shape[0] != 1 or data.scaler.shift is not None:
        return None
    for name in OTHER_DATASETS:
        if name == str(data.name):
            continue
        other = load_data(name).test[: like.shape[0]]
        size = tuple(shape[1:])
        if tuple(other.shape[2:]) == size:
            return name, other
        down = other.shape[-1] > size[-1]
        mode = "area" if down else "bilinear"
        kwargs = {} if down else {"align_corners": False}
        return name, F.interpolate(other, size=size, mode=mode, **kwargs).clamp(0, 1)
    return None


def make_reference(
    data,
    n: int = 500,
    n_samples: int = 500,
    seed: int = 0,
    max_train: int = 5000,
    classifier: str = "mlp",
) -> Reference:
    """Build the :class:`Reference` of a :class:`~pyrovae.data.DataSplits`.

    Parameters
    ----------
    data : DataSplits
        The runs' data (as loaded for the runs, i.e. scaled with their scaler).
    n : int
        Held-out points scored (from the test split, or validation if it is empty).
    n_samples : int
        Out-of-distribution points per set (capped at ``n``).
    seed : int
        Seed of the noise set and the classifier's subsample.
    max_train : int
        At most this many training rows for the classifier and nearest neighbours.
    classifier : str
        Label classifier, a name in :data:`CLASSIFIERS`.
    """
    from ..data.shapes import factor_generator

    split = "test" if data.test.shape[0] else "val"
    x_all = data.split(split)
    if x_all.shape[0] < 2:
        raise DataError(f"data {data.name!r} has fewer than two held-out rows to compare on")
    x_test = x_all[: int(n)]
    y_test = _class_labels(data.labels(split))
    y_test = y_test[: int(n)] if y_test is not None else None
    g = torch.Generator().manual_seed(int(seed))
    train = data.train
    if train.shape[0] > max_train:
        train = train[torch.randperm(train.shape[0], generator=g)[:max_train]]
    ref = Reference(x_test=x_test, y_test=y_test, x_train=train, scaler=data.scaler)
    y_train = _class_labels(data.y_train)
    if y_train is not None and np.unique(y_train).size > 1 and y_test is not None:
        ref.classifier = train_classifier(data.train, y_train, classifier, max_train, seed)
        ref.n_classes = len(ref.classifier.classes_)
        proba = ref.classifier.predict_proba(_flat(x_test).numpy())
        pred = ref.classifier.classes_[proba.argmax(1)]
        ref.stats.update(
            classifier_test_accuracy=float((pred == y_test).mean()),
            test_confidence=float(proba.max(1).mean()),
            test_label_entropy=label_entropy(pred),
            max_label_entropy=math.log(ref.n_classes),
        )
    ref.test_nn = nn_distances(x_test, train)
    ref.nn_threshold = float(torch.quantile(ref.test_nn, 0.95))
    ref.stats.update(
        test_nn_distance=float(ref.test_nn.mean()),
        nn_threshold_q95=ref.nn_threshold,
        split=split,
        n=int(x_test.shape[0]),
    )
    m = min(int(n_samples), x_test.shape[0])
    lo, hi = float(data.train.min()), float(data.train.max())
    ref.ood["noise"] = lo + (hi - lo) * torch.rand(x_test[:m].shape, generator=g)
    ref.ood["inverted"] = lo + hi - x_test[:m]
    other = _other_dataset(data, x_test[:m])
    if other is not None:
        ref.ood["other"] = other[1]
        ref.stats["other_dataset"] = other[0]
    gen = factor_generator(data.name)
    if gen is not None and tuple(gen.data_shape) == tuple(data.data_shape):
        ref.generator = gen
    return ref


# -- one run --------------------------------------------------------------------------


def run_beta(est) -> float | None:
    """The KL weight a VAE run was trained with (the final value of a schedule)."""
    return est.kl_weight


def run_label(est) -> str:
    """``model`` or ``model β=b`` (VAEs)."""
    beta = run_beta(est)
    return est.family if beta is None else f"{est.family} β={beta:g}"


def novelty_scores(est, x: torch.Tensor, samples: int = 500) -> np.ndarray:
    """Out-of-distribution score per row: ``-log p(x)`` for models with latent variables,
    the squared reconstruction error for autoencoders (the family's
    :meth:`~pyrovae.estimators.Estimator.novelty_scores`)."""
    return est.novelty_scores(x, samples).cpu().numpy()


@torch.no_grad()
def evaluate_run(
    est,
    ref: Reference,
    samples: int = 500,
    n_samples: int = 500,
    pairs: int = 50,
    steps: int = 16,
    particles: int = 10,
    seed: int = 0,
) -> dict:
    """All metrics of one fitted estimator against ``ref`` (see the module docstring).

    Parameters
    ----------
    est : Estimator
        A fitted VAE, AE, DAE, ... (:mod:`pyrovae.api`).
    ref : Reference
        From :func:`make_reference`.
    samples : int
        Importance samples per point for log p(x) and the OOD score.
    n_samples : int
        Samples drawn from the prior.
    pairs, steps : int
        Interpolation pairs and points per path.
    particles : int
        Draws of z per point for the reconstruction term and the KL.
    seed : int
        Seed set before the run is evaluated (every run sees the same random numbers
        where their shapes agree).
    """
    pyro.set_rng_seed(int(seed))
    x = est.as_input(ref.x_test)
    row: dict = {"model": est.family, "beta": run_beta(est), "latent_dim": int(est.latent_dim)}
    recon = est.reconstruct(x)
    novelty = est.novelty_scores(x, samples)
    row.update(_reconstruction_metrics(est, x, recon, samples, particles, novelty))
    row.update(_sample_metrics(est, ref, recon, n_samples))
    row.update(_latent_metrics(est, x, pairs, steps, seed))
    row["ood_auroc"] = _ood_metrics(est, ref, novelty.cpu().numpy(), samples)
    row.update(_disentanglement_metrics(est, ref, seed))
    return row


def _reconstruction_metrics(est, x, recon, samples: int, particles: int, novelty) -> dict:
    ev = est.evaluate(x, particles=particles)
    out = {
        "squared_error": float(_flat(recon - x).pow(2).sum(1).mean()),
        "recon_loglik": ev["recon"],
        "distortion": -ev["recon"],
    }
    out.update(est.likelihood_metrics(x, samples=samples, particles=particles, novelty=novelty))
    return out


def _sample_metrics(est, ref: Reference, recon, n_samples: int) -> dict:
    draws = est.sample(int(n_samples))
    out: dict = dict.fromkeys(("recon_accuracy", "sample_confidence", "sample_label_entropy"))
    if ref.classifier is not None:
        pred_recon = ref.classifier.predict(_flat(recon).cpu().numpy())
        out["recon_accuracy"] = float((pred_recon == ref.y_test).mean())
        proba = ref.classifier.predict_proba(_flat(draws).cpu().numpy())
        out["sample_confidence"] = float(proba.max(1).mean())
        out["sample_label_entropy"] = label_entropy(ref.classifier.classes_[proba.argmax(1)])
    nn = nn_distances(draws.cpu(), ref.x_train)
    out["sample_nn_distance"] = float(nn.mean())
    out["fill_fraction"] = float((nn <= ref.nn_threshold).double().mean())
    return out


def _latent_metrics(est, x, pairs: int, steps: int, seed: int) -> dict:
    module = est.module_
    module.eval()
    mu = module.code_of({k: m.mean for k, m in module.posterior_moments(x).items()})
    g = torch.Generator().manual_seed(int(seed))
    n = x.shape[0]
    i = torch.randint(0, n, (int(pairs),), generator=g)
    j = (i + torch.randint(1, n, (int(pairs),), generator=g)) % n
    smooth = path_smoothness(lambda z: est.decode(z).mean, mu[i], mu[j], steps)
    z_agg = module.code_of(module.posterior_sample(x, 1))[0]
    z_prior = module.sample_latent(n)
    return {
        "path_ratio": smooth["ratio"],
        "path_max_step": smooth["max_step"],
        "mmd": mmd_rbf(z_agg.cpu(), z_prior.cpu()),
    }


def _ood_metrics(est, ref: Reference, s_in: np.ndarray, samples: int) -> dict:
    out = {}
    for name, x_out in ref.ood.items():
        x_out = est.as_input(x_out)
        try:
            est.module_.likelihood.validate(x_out)
        except DataError as exc:
            logger.info("OOD set %s skipped for %s: %s", name, est.family, exc)
            continue
        out[name] = auroc(s_in, novelty_scores(est, x_out, samples))
    return out


def _disentanglement_metrics(est, ref: Reference, seed: int) -> dict:
    if ref.generator is None:
        return {"mig": None, "beta_vae_score": None}
    from .disentanglement import beta_vae_score, mig

    scaler = ref.scaler

    def encode(images):
        images = scaler.transform(images) if scaler is not None else images
        return est.module_.posterior_moments(est.as_input(images))[sites.LATENT].mean

    images, factors = ref.generator.grid()
    m = mig(encode(images), factors)
    b = beta_vae_score(encode, ref.generator, seed=seed)
    return {
        "mig": m["mig"],
        "beta_vae_score": b["accuracy"],
        "disentanglement": {"mig_per_factor": m["per_factor"], "beta_vae": b},
    }


# -- several runs -----------------------------------------------------------------------


#: Column options whose empty value is recorded as [] or None, or not at all by runs
#: that predate the option.
_COLUMN_KEYS = ("columns", "drop_columns", "label_column")


def _recorded(info: dict, key: str):
    value = info.get(key)
    return (value or None) if key in _COLUMN_KEYS else value


def check_same_data(runs: Sequence[tuple[str, dict]]) -> None:
    """Raise :class:`ConfigError` unless every run (``(name, data info)``) was trained
    on the same data with the same split and preprocessing."""
    if not runs:
        raise ConfigError("compare needs at least one run")
    for name, info in runs:
        if "data" not in info:
            raise ConfigError(
                f"{name} does not record the data it was trained on; compare runs made by "
                "pyrovae train (or fit with data_info)"
            )
    first_name, first = runs[0]
    for name, info in runs[1:]:
        diff = [k for k in DATA_KEYS if _recorded(info, k) != _recorded(first, k)]
        if diff:
            k = diff[0]
            raise ConfigError(
                f"runs were trained on different data: {first_name} has {k} = "
                f"{first.get(k)!r} but {name} has {info.get(k)!r}"
            )


def unique_labels(labels: Sequence[str], names: Sequence[str]) -> list[str]:
    """``labels`` with the run name appended where two labels coincide."""
    out = []
    for label, name in zip(labels, names, strict=True):
        dup = sum(lab == label for lab in labels) > 1
        out.append(f"{label} ({Path(str(name)).name})" if dup else label)
    return out


def compare_runs(
    estimators: Sequence,
    data,
    names: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    n: int = 500,
    samples: int = 500,
    n_samples: int = 500,
    pairs: int = 50,
    steps: int = 16,
    seed: int = 0,
    classifier: str = "mlp",
    progress: bool = False,
) -> dict:
    """Evaluate fitted estimators trained on ``data`` on one :class:`Reference`.

    Parameters
    ----------
    estimators : sequence of Estimator
        Fitted models with the same data shape.
    data : DataSplits
        Their data (train / test splits, labels; scaled as for the runs).
    names : sequence of str, optional
        Run names (folders) recorded in the result.
    labels : sequence of str, optional
        Row labels (default: model and beta, made unique with the run name).
    n, samples, n_samples, pairs, steps, seed, classifier
        See :func:`make_reference` and :func:`evaluate_run`.
    progress : bool
        Show a progress bar over the runs.

    Returns
    -------
    dict
        ``data``, ``settings``, ``reference`` (classifier accuracy and confidence on real
        test data, test-to-train nearest-neighbour distance, ...) and ``rows``, one per
        estimator in order, each with ``label`` and ``run`` and the metrics.
    """
    if not estimators:
        raise ConfigError("compare needs at least one fitted model")
    for v, what in ((n, "n"), (samples, "samples"), (n_samples, "n_samples"), (pairs, "pairs")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{what} must be a positive integer; got {v!r}")
    names = list(names) if names is not None else [f"run{i}" for i in range(len(estimators))]
    shapes = {tuple(e.data_shape_) for e in estimators}
    if len(shapes) > 1 or tuple(data.data_shape) not in shapes:
        raise ConfigError(
            f"the models expect data of shapes {sorted(shapes)} but the data has rows of "
            f"shape {tuple(data.data_shape)}"
        )
    if labels is None:
        labels = unique_labels([run_label(e) for e in estimators], names)
    torch.manual_seed(int(seed))
    ref = make_reference(data, n=n, n_samples=n_samples, seed=seed, classifier=classifier)
    options = {"samples": samples, "n_samples": n_samples, "pairs": pairs, "steps": steps}
    rows = []
    bar = progress_bar(enabled=progress, total=len(estimators), desc="compare", unit="run")
    with bar:
        for est, name, label in zip(estimators, names, labels, strict=True):
            logger.info("comparing %s (%s)", label, name)
            bar.set_postfix_str(label)
            rows.append(
                {"label": label, "run": str(name), **evaluate_run(est, ref, **options, seed=seed)}
            )
            bar.update()
    return {
        "data": str(data.name),
        "settings": {
            "n": int(ref.x_test.shape[0]),
            "samples": int(samples),
            "n_samples": int(n_samples),
            "pairs": int(pairs),
            "steps": int(steps),
            "seed": int(seed),
            "classifier": classifier if ref.classifier is not None else None,
        },
        "reference": dict(ref.stats),
        "rows": rows,
    }

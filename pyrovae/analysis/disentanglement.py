r"""Disentanglement metrics for representations of data with known factors.

Both need the ground-truth factors v = (v_1, ..., v_K) of the data (discrete
indices, as given by :mod:`pyrovae.data.shapes`), and use the posterior mean
z = E_q[z | x] (the code, for an autoencoder) as the representation.

**Mutual information gap** (MIG; Chen, Li, Grosse & Duvenaud 2018, "Isolating
sources of disentanglement in variational autoencoders", NeurIPS, Sec. 5). Each latent
z_j is discretized into B equal-width bins over its observed range (B = 20, as in
the reference implementation) and its mutual information with each factor is

    I(z_j; v_k) = sum_{a,b} p(a, b) log [ p(a, b) / (p(a) p(b)) ]

from the empirical joint histogram (nats). With j^(k) the latent sharing most
information with v_k,

    MIG = (1/K) sum_k [ I(z_{j^(k)}; v_k) - max_{j != j^(k)} I(z_j; v_k) ] / H(v_k),

where H(v_k) is the factor's empirical entropy. MIG lies in [0, 1]: 1 when each
factor is captured completely by one latent and by no other, 0 when the two most
informative latents share the information equally. Factors with one value
(H(v_k) = 0) are left out. The plug-in MI is biased upwards by about
(B - 1)(|v_k| - 1) / (2 N) nats, so use a few thousand points.

**beta-VAE score** (Higgins et al. 2017, "beta-VAE: learning basic visual concepts
with a constrained variational framework", ICLR, Sec. 3 and App. A.4). For a factor
k drawn uniformly, L pairs of images (x_1^l, x_2^l) are generated whose factors are
drawn independently except that they share v_k; the training point is

    z_diff = (1/L) sum_l | z(x_1^l) - z(x_2^l) |      with label k.

A linear classifier (logistic regression on standardized z_diff) is trained on
such points and the score is its accuracy on new, held-out points. In a
disentangled code the dimension that encodes v_k is constant across each pair, so
z_diff is near zero there and k is easy to read off; chance level is 1 / K.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import torch

from ..errors import DataError

logger = logging.getLogger(__name__)


def _as_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def discretize(z, bins: int = 20) -> np.ndarray:
    """Each column of ``z`` (``(N, D)``) as integer bin indices in ``0..bins-1`` of
    ``bins`` equal-width bins spanning the column's range."""
    z = _as_numpy(z).astype(np.float64)
    if z.ndim != 2:
        raise DataError(f"latents must be a 2-D array (N, D); got shape {z.shape}")
    out = np.empty(z.shape, dtype=np.int64)
    for j in range(z.shape[1]):
        edges = np.histogram_bin_edges(z[:, j], bins=int(bins))
        out[:, j] = np.clip(np.digitize(z[:, j], edges[1:-1]), 0, int(bins) - 1)
    return out


def entropy(v) -> float:
    """Empirical entropy (nats) of a discrete vector."""
    _, counts = np.unique(_as_numpy(v), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def discrete_mutual_info(a, b) -> float:
    """Plug-in mutual information (nats) of two discrete vectors of equal length."""
    a, b = _as_numpy(a).ravel(), _as_numpy(b).ravel()
    if a.shape != b.shape:
        raise DataError(f"vectors of different lengths: {a.shape[0]} and {b.shape[0]}")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mig(z, factors, bins: int = 20) -> dict:
    """Mutual information gap of latents ``z`` (``(N, D)``) for discrete ``factors``
    (``(N, K)``).

    Returns
    -------
    dict
        ``mig`` (mean normalised gap over the factors with more than one value),
        ``per_factor`` (the normalised gap of each factor; NaN for constant factors),
        ``mutual_info`` (``(D, K)`` list of I(z_j; v_k) in nats), ``entropy``
        (H(v_k) per factor), ``bins``.
    """
    z, v = _as_numpy(z), _as_numpy(factors)
    if v.ndim == 1:
        v = v[:, None]
    if z.ndim != 2 or v.ndim != 2 or z.shape[0] != v.shape[0] or z.shape[0] < 2:
        raise DataError(
            f"mig needs latents (N, D) and factors (N, K) with the same N >= 2; got "
            f"{tuple(z.shape)} and {tuple(v.shape)}"
        )
    zd = discretize(z, bins)
    mi = np.zeros((zd.shape[1], v.shape[1]))
    for j in range(zd.shape[1]):
        for k in range(v.shape[1]):
            mi[j, k] = discrete_mutual_info(zd[:, j], v[:, k])
    h = np.array([entropy(v[:, k]) for k in range(v.shape[1])])
    gaps = np.full(v.shape[1], math.nan)
    for k in range(v.shape[1]):
        if h[k] <= 0:
            continue
        top = np.sort(mi[:, k])[::-1]
        second = top[1] if top.size > 1 else 0.0
        gaps[k] = (top[0] - second) / h[k]
    valid = gaps[~np.isnan(gaps)]
    return {
        "mig": float(valid.mean()) if valid.size else math.nan,
        "per_factor": gaps.tolist(),
        "mutual_info": mi.tolist(),
        "entropy": h.tolist(),
        "bins": int(bins),
    }


def _encode_rendered(encode: Callable, generator, factors: np.ndarray, batch: int = 2048):
    """Codes of the images of ``factors``, rendered and encoded a batch at a time."""
    parts = []
    for i in range(0, factors.shape[0], batch):
        with torch.no_grad():
            z = encode(generator.render(factors[i : i + batch]))
        parts.append(_as_numpy(z).astype(np.float64))
    return np.concatenate(parts)


def beta_vae_points(
    encode: Callable, generator, n: int, pairs: int = 64, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` beta-VAE training points: ``z_diff`` (``(n, D)``) and the fixed factor
    (``(n,)``), each from ``pairs`` image pairs sharing that factor.

    ``generator`` has ``factor_sizes``, ``sample_factors(n, rng)`` and
    ``render(factors)`` (e.g. :class:`pyrovae.data.shapes.ShapesGenerator`);
    ``encode(images)`` returns codes ``(M, D)``. Only factors with more than one
    value are drawn.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    sizes = np.asarray(generator.factor_sizes)
    varying = np.flatnonzero(sizes > 1)
    if varying.size < 2:
        raise DataError("the beta-VAE score needs at least two factors with several values")
    k = rng.choice(varying, size=int(n))
    f1 = generator.sample_factors(int(n) * pairs, rng).reshape(int(n), pairs, -1)
    f2 = generator.sample_factors(int(n) * pairs, rng).reshape(int(n), pairs, -1)
    f2[np.arange(int(n)), :, k] = f1[np.arange(int(n)), :, k]
    z1 = _encode_rendered(encode, generator, f1.reshape(-1, sizes.size))
    z2 = _encode_rendered(encode, generator, f2.reshape(-1, sizes.size))
    diff = np.abs(z1 - z2).reshape(int(n), pairs, -1).mean(1)
    return diff, k


def beta_vae_score(
    encode: Callable,
    generator,
    n_train: int = 500,
    n_eval: int = 300,
    pairs: int = 64,
    seed: int = 0,
) -> dict:
    """The beta-VAE disentanglement score (Higgins et al. 2017; module docstring).

    Parameters
    ----------
    encode : callable
        Images ``(M, C, H, W)`` -> codes ``(M, D)`` (e.g. the posterior mean).
    generator : ShapesGenerator-like
        Renders images of given factor indices.
    n_train, n_eval : int
        Classifier training and held-out points.
    pairs : int
        Image pairs L averaged into each point.
    seed : int
        Seed of the factor draws and of the classifier.

    Returns
    -------
    dict
        ``accuracy`` (held-out), ``train_accuracy``, ``chance`` (1 / number of
        varying factors), ``n_train``, ``n_eval``, ``pairs``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if min(n_train, n_eval, pairs) < 1:
        raise DataError("n_train, n_eval and pairs must be >= 1")
    rng = np.random.default_rng(int(seed))
    x_tr, y_tr = beta_vae_points(encode, generator, n_train, pairs, rng)
    x_ev, y_ev = beta_vae_points(encode, generator, n_eval, pairs, rng)
    n_varying = int((np.asarray(generator.factor_sizes) > 1).sum())
    if np.unique(y_tr).size < 2:
        acc_tr = acc_ev = float(np.mean(y_ev == y_tr[0]))
    else:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        clf.fit(x_tr, y_tr)
        acc_tr, acc_ev = float(clf.score(x_tr, y_tr)), float(clf.score(x_ev, y_ev))
    logger.debug("beta-VAE score: train %.3f, held-out %.3f", acc_tr, acc_ev)
    return {
        "accuracy": acc_ev,
        "train_accuracy": acc_tr,
        "chance": 1.0 / n_varying,
        "n_train": int(n_train),
        "n_eval": int(n_eval),
        "pairs": int(pairs),
    }

"""The posterior analysis of a trained run, written into a folder (``pyrovae analyze``).

:func:`analyze_run` scores the first ``n`` points of a held-out split with the methods of
this package and writes the files whose names :mod:`pyrovae.runs.names` lists in
``ANALYZE_FILES``:

* ``posterior.nc``: ArviZ data of ``draws`` guide draws per point
  (:func:`.export.to_arviz`), with ``posterior_summary.csv`` (ArviZ's summary of z) and
  ``posterior_forest.png`` (the first five points);
* ``diagnostics.json``: the ELBO's decomposition with importance-sampled log p(x)
  (:func:`pyrovae.inference.loglik.elbo_decomposition`), an out-of-distribution AUROC
  against the same data with every feature shuffled across rows
  (:func:`.uncertainty.ood_scores`), NUTS refinement of ``mcmc_points`` points
  (:func:`pyrovae.inference.mcmc.refine`) and simulation-based calibration on
  ``sbc_simulations`` simulations (:func:`pyrovae.inference.calibration.sbc`);
* figures: ``ood.png``, ``sbc.png``, ``latent.png`` and, for images, ``uncertainty.png``;
* for a Bayesian decoder, ``diagnostics.json`` also holds ``epistemic``: the split of the
  predictive variance into epistemic and aleatoric parts for reconstructions and prior
  samples, and the AUROC of the epistemic score (:mod:`.epistemic`), with the figure
  ``epistemic.png`` (maps for images, bars per feature for tabular data).

Every check of the options and the data comes before the first file is written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyro
import torch

from .. import arviz_compat
from ..atomic import atomic_write_text
from ..data.batch import Batch, as_batch
from ..errors import ConfigError
from ..inference.calibration import plot_rank_histograms, sbc
from ..inference.loglik import elbo_decomposition
from ..inference.mcmc import refine
from ..models.base import require_latent_variables
from ..runs import names, write_json
from .epistemic import (
    SPLIT_DRAWS,
    auroc,
    epistemic_scores,
    plot_split,
    prior_split,
    reconstruction_split,
    summarize_split,
)
from .export import to_arviz
from .uncertainty import (
    ood_scores,
    plot_latent,
    plot_ood,
    plot_reconstruction_uncertainty,
    reconstruction_uncertainty,
)

logger = logging.getLogger(__name__)

#: Points shown in the forest plot and the reconstruction-uncertainty figure.
FOREST_POINTS = 5
UNCERTAINTY_POINTS = 16


def analyze_run(
    run: str | Path | None,
    data=None,
    *,
    estimator=None,
    output: str | Path | None = None,
    split: str = "test",
    n: int = 500,
    draws: int = 200,
    samples: int = 500,
    mcmc_points: int = 3,
    mcmc_samples: int = 300,
    mcmc_warmup: int = 300,
    sbc_simulations: int = 500,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Analyze a trained model's posterior on a held-out split; write the files.

    Parameters
    ----------
    run : path or None
        A run folder or checkpoint file (None: analyze ``estimator``, which then needs
        ``output`` and ``data``, or a record of its data).
    data : str or DataSplits, optional
        The data whose ``split`` is analyzed: a dataset name or file (split and scaled as
        the run's data were), or loaded splits; default: the run's own data.
    estimator : Estimator, optional
        The fitted model with latent variables (default: loaded from ``run``).
    output : path, optional
        Folder for the files (default: the run's folder).
    split : {"test", "val", "train"}
        The split whose first ``n`` rows are analyzed.
    n : int
        Data points exported and scored.
    draws : int
        Guide draws per data point in ``posterior.nc``.
    samples : int
        Importance samples per data point for log p(x) and the out-of-distribution score.
    mcmc_points : int
        Data points refined by NUTS (two chains); 0 skips the refinement.
    mcmc_samples, mcmc_warmup : int
        Draws kept and warm-up steps of each NUTS chain.
    sbc_simulations : int
        Simulations of the calibration check; 0 skips it.
    seed : int
        Seed of every random draw.
    progress : bool
        Show progress bars of the importance sampling, the NUTS chains and the
        calibration.

    Returns
    -------
    dict
        The headline numbers (``log_likelihood``, ``elbo``, ``gap``, ``active_units``,
        ``ood_auroc``, with NUTS ``max_khat`` and ``mcmc_max_rhat``) and ``files``, the
        paths written.

    Raises
    ------
    ConfigError
        A bad option, a model without latent variables or an empty split.
    DataError
        Data the model cannot score (another shape, outside the likelihood's support).
    """
    from ..estimators import load

    _check_options(n=n, draws=draws, samples=samples)
    if mcmc_points < 0 or sbc_simulations < 0:
        raise ConfigError("mcmc_points and sbc_simulations must be >= 0")
    if mcmc_points and (mcmc_samples < 1 or mcmc_warmup < 0):
        raise ConfigError("mcmc_samples must be >= 1 and mcmc_warmup >= 0")
    if run is None and estimator is None:
        raise ConfigError("analyze needs a run folder or a fitted estimator")
    est = load(run) if estimator is None else estimator
    if getattr(est, "module_", None) is None:
        raise ConfigError("analyze needs a fitted estimator; call fit first")
    require_latent_variables(est.module_, f"analyze (of a {est.family} run)")
    splits = _load_data(est, data)
    x_all = splits.split(split)
    if x_all.shape[0] == 0:
        raise ConfigError(f"the {split} split is empty; choose another split")
    x = est.as_input(x_all[:n])
    out = _output_folder(run, output)
    labels = splits.labels(split)
    labels = labels[:n] if labels is not None else None
    # a conditional family scores the rows given their conditions; the others (m2
    # included, which sums its label out) score x alone
    y = splits.targets(split) if est.is_conditional else None
    data = est.with_targets(x, y[:n] if y is not None else None)
    out.mkdir(parents=True, exist_ok=True)
    pyro.set_rng_seed(seed)
    module = est.module_
    files = _export_posterior(module, data, draws, out, splits.feature_names)
    diag: dict[str, Any] = {
        "run": None if run is None else str(run),
        "split": split,
        "n": int(x.shape[0]),
    }
    logger.info("log p(x) of %d points with %d importance samples each", x.shape[0], samples)
    diag["decomposition"] = elbo_decomposition(module, data, samples=samples, progress=progress)
    files += _out_of_distribution(module, data, samples, seed, out, diag, progress)
    if mcmc_points:
        nuts = {"num_samples": mcmc_samples, "warmup": mcmc_warmup}
        diag["mcmc"] = _refine(module, data[:mcmc_points], seed, progress, nuts)
    if sbc_simulations and module.condition_dim:
        # the calibration simulates from the model, which needs conditions to draw from
        logger.info("calibration skipped: the %s model simulates given conditions", est.family)
        diag["sbc"] = None
    elif sbc_simulations:
        files += _calibration(module, sbc_simulations, seed, out, diag, progress)
    files += _figures(est, data, labels, out)
    if getattr(module, "decoder_weights", None) is not None:
        files += _epistemic(module, x, seed, out, diag, splits.feature_names)
    files.append(write_json(out / names.DIAGNOSTICS, diag))
    return _summary(diag, files)


def _check_options(**counts: int) -> None:
    for name, value in counts.items():
        if value < 1:
            raise ConfigError(f"{name} must be >= 1; got {value}")


def _load_data(est, data):
    from ..runs.data import load_run_data

    if data is None or isinstance(data, str | Path):
        return load_run_data(est.data_info_, None if data is None else str(data))
    return data


def _output_folder(run, output) -> Path:
    """``output``, else the run folder (``run`` is None for an estimator)."""
    if output is not None:
        return Path(output)
    if run is None:
        raise ConfigError("analyzing an estimator needs an output folder (output=...)")
    run = Path(run)
    return run if run.is_dir() else run.parent


def _export_posterior(module, x: torch.Tensor, draws: int, out: Path, features) -> list[Path]:
    """``posterior.nc`` (its data coordinates named by ``features``), its forest plot and
    its summary table."""
    logger.info("exporting %d posterior draws of %d points to ArviZ", draws, len(x))
    idata = to_arviz(module, x, draws=draws, feature_names=features)
    files = [arviz_compat.to_netcdf(idata, out / names.POSTERIOR)]
    few = to_arviz(module, x[:FOREST_POINTS], draws=draws)
    files.append(arviz_compat.plot_forest(few, out / names.POSTERIOR_FOREST, ["z"]))
    table = arviz_compat.summary(idata, var_names=["z"])
    atomic_write_text(out / names.POSTERIOR_SUMMARY, table.to_csv())
    files.append(out / names.POSTERIOR_SUMMARY)
    return files


def shuffled_features(x: torch.Tensor, seed: int) -> torch.Tensor:
    """``x`` with every feature permuted across rows on its own: the out-of-distribution
    reference of :func:`analyze_run` (same marginals, no dependence between features)."""
    g = torch.Generator().manual_seed(seed)
    flat = x.reshape(x.shape[0], -1)
    cols = [col[torch.randperm(col.numel(), generator=g)] for col in flat.T]
    return torch.stack(cols, 1).reshape(x.shape)


def _out_of_distribution(module, x, samples, seed, out, diag, progress) -> list[Path]:
    """``x``: a tensor, or a batch with conditions (the shuffled rows keep them)."""
    logger.info("out-of-distribution scores against the shuffled features")
    batch = as_batch(x)
    shuffled = batch.replace(x=shuffled_features(batch.x, seed))
    reference = shuffled if isinstance(x, Batch) else shuffled.x
    ood = ood_scores(module, x, reference, samples=samples, progress=progress)
    diag["ood"] = {"reference": "features shuffled across rows", "auroc": ood["auroc"]}
    plot_ood(ood, out / names.OOD, "features shuffled")
    return [out / names.OOD]


def _epistemic(module, x, seed: int, out: Path, diag: dict, features) -> list[Path]:
    """A Bayesian decoder's epistemic/aleatoric split for reconstructions and prior
    samples, and the AUROC of the epistemic score against the shuffled features."""
    logger.info("epistemic and aleatoric variance over draws of the decoder weights")
    recon = reconstruction_split(module, x)
    prior = prior_split(module, x.shape[0])
    s_in = epistemic_scores(module, x).cpu().numpy()
    s_out = epistemic_scores(module, shuffled_features(x, seed)).cpu().numpy()
    diag["epistemic"] = {
        "weight_draws": SPLIT_DRAWS,
        "reconstructions": summarize_split(recon),
        "prior_samples": summarize_split(prior),
        "ood": {
            "reference": "features shuffled across rows",
            "score": "variance across weight draws of log p(x | E[z|x], theta)",
            "auroc": auroc(s_in, s_out),
        },
    }
    plot_split(recon, prior, tuple(x.shape[1:]), out / names.EPISTEMIC, features)
    return [out / names.EPISTEMIC]


def _refine(module, x, seed: int, progress: bool, nuts: dict) -> dict:
    logger.info("NUTS on the posterior of %d points (%s)", len(x), nuts)
    ref = refine(module, x, seed=seed, progress=progress, **nuts)
    return {
        **nuts,
        **ref["summary"],
        "khat": ref["khat"].tolist(),
        "mean_error": ref["mean_error"].tolist(),
        "sd_ratio": ref["sd_ratio"].tolist(),
        "coverage_90": ref["coverage"].tolist(),
    }


def _calibration(module, simulations, seed, out, diag, progress) -> list[Path]:
    logger.info("simulation-based calibration on %d simulations", simulations)
    cal = sbc(module, n=simulations, seed=seed, progress=progress)
    diag["sbc"] = {
        "n": cal["n"],
        "p_values": cal["p_values"].tolist(),
        "coverage_50": cal["coverage_50"].tolist(),
        "coverage_90": cal["coverage_90"].tolist(),
    }
    plot_rank_histograms(cal, out / names.SBC)
    return [out / names.SBC]


def _figures(est, x, labels, out: Path) -> list[Path]:
    """The latent space and, for images, the reconstruction uncertainty."""
    module = est.module_
    plot_latent(module, x, labels, out / names.LATENT)
    files = [out / names.LATENT]
    if len(est.data_shape_) >= 2:
        few = x[:UNCERTAINTY_POINTS]
        mean, sd = reconstruction_uncertainty(module, few)
        plot_reconstruction_uncertainty(as_batch(few).x, mean, sd, out / names.UNCERTAINTY)
        files.append(out / names.UNCERTAINTY)
    return files


def _summary(diag: dict, files: list[Path]) -> dict[str, Any]:
    dec = diag["decomposition"]
    summary = {
        "log_likelihood": dec.get("log_likelihood"),
        "elbo": dec["elbo"],
        "gap": dec.get("gap"),
        "active_units": dec["active_units"],
        "ood_auroc": diag["ood"]["auroc"],
        "files": [str(f) for f in files],
    }
    if "epistemic" in diag:
        summary["epistemic_ood_auroc"] = diag["epistemic"]["ood"]["auroc"]
        summary["epistemic_share"] = diag["epistemic"]["reconstructions"]["epistemic_share"]
    if "mcmc" in diag:
        summary["max_khat"] = diag["mcmc"]["max_khat"]
        summary["mcmc_max_rhat"] = diag["mcmc"]["max_rhat"]
    return summary

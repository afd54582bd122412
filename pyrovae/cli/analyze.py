"""``pyrovae analyze RUN``: the posterior analysis of a trained VAE, written into the run
folder (:func:`pyrovae.analysis.analyze.analyze_run`)."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..runs import to_json
from .args import (
    add_data_options,
    add_n,
    add_output,
    add_progress,
    add_run_argument,
    add_samples,
    add_seed,
    check_at_least,
    show_progress,
)


def register(sub) -> None:
    """Add the ``analyze`` verb."""
    p = sub.add_parser(
        "analyze",
        help="posterior analysis of a trained VAE, written into the run folder",
        description="Posterior analysis of a trained VAE on a held-out split: writes "
        "posterior.nc (ArviZ: posterior, posterior_predictive, log_likelihood, "
        "observed_data), posterior_summary.csv, diagnostics.json (log p(x) and the ELBO's "
        "decomposition, NUTS refinement vs. the guide, Pareto k-hat, simulation-based "
        "calibration, out-of-distribution AUROC) and PNGs (reconstruction uncertainty, "
        "latent space, SBC rank histograms, OOD scores) into RUN (or --output).",
    )
    add_run_argument(p)
    add_data_options(p)
    add_n(p, "data points exported to ArviZ and scored")
    p.add_argument(
        "--draws",
        type=int,
        default=200,
        help="posterior draws per data point in posterior.nc (default: 200)",
    )
    add_samples(p)
    p.add_argument(
        "--mcmc-points",
        type=int,
        default=3,
        help="data points refined by NUTS (2 chains); 0 skips the refinement (default: 3)",
    )
    p.add_argument(
        "--sbc",
        type=int,
        default=500,
        help="simulations for calibration; 0 skips the calibration (default: 500)",
    )
    add_seed(p)
    add_output(p, "folder for the outputs (default: RUN)")
    add_progress(p)
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..analysis.analyze import analyze_run
    from ..estimators import load
    from ..runs.data import load_run_data

    check_at_least(args, 1, "n", "draws", "samples")
    if args.mcmc_points < 0 or args.sbc < 0:
        raise ConfigError("--mcmc-points and --sbc must be >= 0")
    est = load(args.run)
    data = load_run_data(est.data_info_, args.data)
    if data.split(args.split).shape[0] == 0:
        raise ConfigError(f"the {args.split} split is empty; choose another --split")
    summary = analyze_run(
        args.run,
        data,
        estimator=est,
        output=args.output,
        split=args.split,
        n=args.n,
        draws=args.draws,
        samples=args.samples,
        mcmc_points=args.mcmc_points,
        sbc_simulations=args.sbc,
        seed=args.seed,
        progress=show_progress(args),
    )
    print(to_json(summary))
    return 0

"""``pyrovae analyze RUN``: the posterior analysis of a trained VAE, written into the run
folder (:func:`pyrovae.analysis.analyze.analyze_run`)."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..runs import to_json
from . import args as shared

#: Options passed on to :func:`~pyrovae.analysis.analyze.analyze_run` under their own name.
PASSED_ON = ("split", "n", "draws", "samples", "mcmc_points", "mcmc_samples", "mcmc_warmup", "seed")


def register(sub) -> None:
    """Add the ``analyze`` verb."""
    p = shared.add_verb(
        sub,
        "analyze",
        cmd_analyze,
        "posterior analysis of a trained VAE, written into the run folder",
    )
    shared.add_run_argument(p)
    shared.add_data_options(p)
    shared.add_n(p, "data points exported to ArviZ and scored")
    shared.add_count(p, "--draws", 200, "posterior draws per data point in posterior.nc")
    shared.add_samples(p)
    shared.add_count(p, "--mcmc-points", 3, "data points refined by NUTS (2 chains)", skip=True)
    shared.add_count(p, "--mcmc-samples", 300, "draws kept from each NUTS chain")
    shared.add_count(p, "--mcmc-warmup", 300, "warm-up steps of each NUTS chain")
    shared.add_count(p, "--sbc", 500, "simulations for calibration", skip=True)
    shared.add_seed(p)
    shared.add_output(p, "folder for the outputs (default: RUN)")
    shared.add_progress(p)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Posterior analysis of a trained VAE on a held-out split: writes posterior.nc
    (ArviZ: posterior, posterior_predictive, log_likelihood, observed_data),
    posterior_summary.csv, diagnostics.json (log p(x) and the ELBO's decomposition, NUTS
    refinement vs. the guide, Pareto k-hat, simulation-based calibration,
    out-of-distribution AUROC) and PNGs (reconstruction uncertainty, latent space, SBC
    rank histograms, OOD scores) into RUN (or --output)."""
    from ..analysis.analyze import analyze_run
    from ..estimators import load
    from ..runs.data import load_run_data

    shared.check_at_least(args, 1, "n", "draws", "samples")
    if args.mcmc_points < 0 or args.sbc < 0:
        raise ConfigError("--mcmc-points and --sbc must be >= 0")
    if args.mcmc_samples < 1 or args.mcmc_warmup < 0:
        raise ConfigError("--mcmc-samples must be >= 1 and --mcmc-warmup >= 0")
    est = load(args.run)
    data = load_run_data(est.data_info_, args.data)
    if data.split(args.split).shape[0] == 0:
        raise ConfigError(f"the {args.split} split is empty; choose another --split")
    summary = analyze_run(
        args.run,
        data,
        estimator=est,
        output=args.output,
        sbc_simulations=args.sbc,
        progress=shared.show_progress(args),
        **{name: getattr(args, name) for name in PASSED_ON},
    )
    print(to_json(summary))
    return 0

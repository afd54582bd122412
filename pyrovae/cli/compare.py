"""``pyrovae select RUN...`` (model selection: held-out log p(x), AIC and BIC) and
``pyrovae compare RUN...`` (every metric of docs/comparison.md, side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..runs import names, to_json, write_json
from . import args as shared


def register(sub) -> None:
    """Add the ``select`` and ``compare`` verbs."""
    _add_runs_verb(
        sub,
        "select",
        cmd_select,
        "model selection over trained runs: held-out log p(x), AIC and BIC",
        "folder for selection.json and selection.png (default: .)",
    )
    p = _add_runs_verb(
        sub,
        "compare",
        cmd_compare,
        "compare runs (AE, DAE, VAE, beta-VAE, ...) trained on the same data",
        "folder for the comparison files (default: .)",
    )
    shared.add_n(p, "held-out data points scored")


def _add_runs_verb(sub, name, func, summary, output_help) -> argparse.ArgumentParser:
    """A verb that scores several runs: ``RUN...``, ``--samples``, ``--seed``, ``--output``
    (a folder, default the working folder) and ``--no-progress``."""
    p = shared.add_verb(sub, name, func, summary)
    shared.add_run_argument(p, many=True)
    shared.add_samples(p)
    shared.add_seed(p)
    shared.add_output(p, output_help, ".")
    shared.add_progress(p)
    return p


def _load(runs: list[str], *, latent: bool = False) -> list:
    """The runs' estimators (with ``latent``, each must have latent variables), checked
    to be trained on the same data: log-likelihoods, information criteria and the
    comparison's metrics only compare on one data set."""
    from ..analysis.comparison import check_same_data
    from ..estimators import load

    ests = [load(run) for run in runs]
    for run, est in zip(runs, ests, strict=True):
        if latent and not est.module_.has_latent_sites:
            raise ConfigError(f"select needs models with latent variables; {run} is a {est.family}")
    check_same_data([(run, est.data_info_) for run, est in zip(runs, ests, strict=True)])
    return ests


def _selection_data(run: str, est):
    """The run's data, whose validation split must hold rows (held-out log p(x))."""
    from ..runs.data import load_run_data

    data = load_run_data(est.data_info_)
    if data.val.shape[0] == 0:
        fraction = est.data_info_.get("val_fraction")
        raise ConfigError(
            f"select scores held-out log p(x) on the validation split, and the validation "
            f"split of {run} is empty (val_fraction = {fraction})"
        )
    return data


def cmd_select(args: argparse.Namespace) -> int:
    """Score trained VAE runs (for example one per --latent-dim or per --prior, trained
    on the same data) by the importance-sampled log-likelihood of their validation data,
    AIC and BIC on their training data; print the table and the best run by each
    criterion, and write selection.json and selection.png."""
    import pyro

    from ..analysis.selection import best, plot_selection, score_model
    from ..inference.progress import progress_bar

    shared.check_at_least(args, 1, "samples")
    ests = _load(args.runs, latent=True)
    datasets = [_selection_data(run, est) for run, est in zip(args.runs, ests, strict=True)]
    progress = shared.show_progress(args)
    rows = []
    for run, est, data in progress_bar(
        list(zip(args.runs, ests, datasets, strict=True)),
        enabled=progress,
        desc="select",
        unit="run",
    ):
        pyro.set_rng_seed(args.seed)  # every run sees the same random numbers
        scores = score_model(est, data.train, data.val, samples=args.samples, progress=progress)
        label = f"{Path(run).name} (latent {est.latent_dim})"
        rows.append({"label": label, "run": str(run), **scores})
    result = {"rows": rows, "best": best(rows)}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / names.SELECTION, result)
    plot_selection(result, out / names.SELECTION_PLOT, xlabel="run")
    print(to_json(result))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Score runs trained on the same data on one set of metrics: reconstruction error,
    held-out log p(x), rate and distortion, sample quality (label classifier,
    nearest-neighbour distances), latent smoothness, prior filling (MMD),
    out-of-distribution AUROC and, on shapes, MIG and the beta-VAE score. Writes
    comparison.json, comparison.md, rate_distortion.png and grids.png into --output and
    prints the tables (see docs/comparison.md)."""
    from ..analysis.comparison import compare_runs
    from ..report.compare import format_tables, write_comparison
    from ..runs.data import load_run_data

    shared.check_at_least(args, 1, "samples", "n")
    ests = _load(args.runs)
    data = load_run_data(ests[0].data_info_)
    options = {name: getattr(args, name) for name in ("n", "samples", "seed")}
    progress = shared.show_progress(args)
    result = compare_runs(ests, data, names=args.runs, progress=progress, **options)
    x = data.test if data.test.shape[0] else data.val
    files = write_comparison(result, args.output, ests, x if data.is_image else None)
    print(format_tables(result), end="")
    print("wrote " + ", ".join(str(f) for f in files))
    return 0

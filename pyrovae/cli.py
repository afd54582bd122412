"""The ``pyrovae`` command.

Verbs:

* ``pyrovae train``: train a model (VAE by default, on the built-in digits) into a run folder.
* ``pyrovae evaluate RUN``: test-set ELBO with its reconstruction and KL terms, as JSON.
* ``pyrovae sample RUN -n N``: an image grid (and ``.npy``) of prior samples.
* ``pyrovae components``: the registered components.

Errors a user can cause print one line ``pyrovae: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import math
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from .config import OPTIONS, RESUME_OVERRIDES, coerce, load_toml, resolve
from .errors import (
    CheckpointError,
    ConfigError,
    PyrovaeError,
    RunLockedError,
    TrainingInterrupted,
)
from .runs import hold, names, read_config, to_json, write_config, write_json
from .runs.config import has_config
from .runs.names import RUN_FILES

log = logging.getLogger("pyrovae")


def _registry(path: str):
    mod, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(mod), name)


# -- argument parsing --------------------------------------------------------------


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    groups = {
        "data": parser.add_argument_group("data"),
        "model": parser.add_argument_group("model"),
        "training": parser.add_argument_group("objective and training"),
    }
    for opt in OPTIONS:
        help_text = opt.help
        if opt.registry:
            help_text += f"; one of: {', '.join(_registry(opt.registry).names())}"
        if opt.default not in (None, {}, []):
            shown = (
                ",".join(map(str, opt.default)) if isinstance(opt.default, list) else opt.default
            )
            help_text += f" (default: {shown})"
        kwargs: dict[str, Any] = {"dest": opt.name, "default": argparse.SUPPRESS, "help": help_text}
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        if isinstance(opt.default, dict):
            groups[opt.group].add_argument(opt.flag, action="append", **kwargs)
        elif isinstance(opt.default, bool):
            groups[opt.group].add_argument(
                opt.flag, action=argparse.BooleanOptionalAction, **kwargs
            )
        else:
            groups[opt.group].add_argument(opt.flag, **kwargs)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pyrovae",
        description="Variational autoencoders as Pyro programs, with autoencoder baselines.",
    )
    parser.add_argument("--version", action="version", version=f"pyrovae {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train a VAE (or the ae/dae baselines) and write a run folder with "
        "config.toml, checkpoint.pt, metrics.csv and PNGs of reconstructions and samples. "
        "Options override the --config file, which overrides the defaults.",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file whose keys are the option names "
        "below with underscores (e.g. latent_dim = 8)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="run folder to create (default: runs/MODEL-DATA-TIMESTAMP)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue training the run in RUN from its checkpoint (--epochs and "
        "--time-budget set new totals)",
    )
    p.add_argument("--force", action="store_true", help="write into an existing run folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_config_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="test-set ELBO and its terms, as JSON",
        description="Evaluate a trained run on a held-out split: the ELBO per data point "
        "with its reconstruction and KL terms and their standard errors; prints JSON and "
        "writes it to RUN/evaluation.json.",
    )
    p.add_argument("run", metavar="RUN", help="run folder (or checkpoint file)")
    p.add_argument(
        "--split",
        default="test",
        choices=("test", "val", "train"),
        help="which split to evaluate (default: test)",
    )
    p.add_argument(
        "--particles",
        type=int,
        default=10,
        help="Monte Carlo samples of z per data point in the ELBO estimate (default: 10)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=0,
        metavar="K",
        help="also estimate log p(x) by importance sampling with K samples per data point "
        "(5000 for reported figures), with bits per dimension, the gap log p(x) - ELBO, "
        "KL per latent dimension, active units and I(x; z) (default: 0, off)",
    )
    p.add_argument(
        "--data", metavar="NAME|PATH", help="evaluate on this data instead of the run's own"
    )
    p.add_argument(
        "--output", metavar="FILE", help="JSON file to write (default: RUN/evaluation.json)"
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "sample",
        help="draw samples from the prior and write an image grid",
        description="Decode N draws of z from the prior (from the fitted code distribution "
        "for autoencoders) and write a PNG grid plus the samples as .npy.",
    )
    p.add_argument("run", metavar="RUN", help="run folder (or checkpoint file)")
    p.add_argument("-n", type=int, default=64, help="number of samples (default: 64)")
    p.add_argument("--output", metavar="FILE", help="PNG to write (default: RUN/samples-N.png)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--draw", action="store_true", help="draw x ~ p(x|z) instead of showing the mean E[x|z]"
    )
    p.set_defaults(func=cmd_sample)

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
    p.add_argument("run", metavar="RUN", help="run folder (or checkpoint file)")
    p.add_argument("--data", metavar="NAME|PATH", help="analyze this data instead of the run's")
    p.add_argument(
        "--split",
        default="test",
        choices=("test", "val", "train"),
        help="which split (default: test)",
    )
    p.add_argument(
        "--n", type=int, default=100, help="data points exported to ArviZ and scored (default: 100)"
    )
    p.add_argument(
        "--draws",
        type=int,
        default=200,
        help="posterior draws per data point in posterior.nc (default: 200)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=1000,
        metavar="K",
        help="importance samples for log p(x) and the OOD score (default: 1000)",
    )
    p.add_argument(
        "--mcmc-points",
        type=int,
        default=3,
        help="data points refined by NUTS (2 chains; 0: skip) (default: 3)",
    )
    p.add_argument(
        "--sbc", type=int, default=500, help="simulations for calibration (0: skip) (default: 500)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--output", metavar="DIR", help="folder for the outputs (default: RUN)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "select",
        help="model selection over trained runs: held-out log p(x), AIC and BIC",
        description="Score trained VAE runs (for example one per --latent-dim or per "
        "--prior, trained on the same data) by the importance-sampled log-likelihood of "
        "their validation data, AIC and BIC on their training data; print the table and "
        "the best run by each criterion, and write selection.json and selection.png.",
    )
    p.add_argument("runs", metavar="RUN", nargs="+", help="run folders (or checkpoints)")
    p.add_argument(
        "--samples",
        type=int,
        default=500,
        metavar="K",
        help="importance samples per data point (default: 500)",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        default=".",
        help="folder for selection.json and selection.png (default: .)",
    )
    p.set_defaults(func=cmd_select)

    p = sub.add_parser(
        "compare",
        help="compare runs (AE, DAE, VAE, beta-VAE, ...) trained on the same data",
        description="Score runs trained on the same data on one set of metrics: "
        "reconstruction error, held-out log p(x), rate and distortion, sample quality "
        "(label classifier, nearest-neighbour distances), latent smoothness, prior filling "
        "(MMD), out-of-distribution AUROC and, on shapes, MIG and the beta-VAE score. "
        "Writes comparison.json, comparison.md, rate_distortion.png and grids.png into "
        "--output and prints the tables (see docs/comparison.md).",
    )
    p.add_argument("runs", metavar="RUN", nargs="+", help="run folders (or checkpoints)")
    p.add_argument(
        "--output",
        metavar="DIR",
        default=".",
        help="folder for the comparison files (default: .)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=500,
        metavar="K",
        help="importance samples per data point for log p(x) and OOD scores (default: 500)",
    )
    p.add_argument("--n", type=int, default=500, help="held-out data points scored (default: 500)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run",
        description="Write one HTML file with the run's configuration and summary numbers, "
        "training curves, reconstructions with uncertainty maps, prior samples, latent "
        "traversals, linear and spherical interpolations, the latent space, KL per latent "
        "dimension and the posterior analysis of `pyrovae analyze` where it ran; figures "
        "are embedded, so the file stands alone.",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--output", metavar="FILE", help="HTML file to write (default: RUN/report.html)")
    p.add_argument(
        "--n",
        type=int,
        default=500,
        help="held-out data points for the latent view and the numbers (default: 500)",
    )
    p.add_argument("--data", metavar="NAME|PATH", help="show this data instead of the run's")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "components",
        help="list the registered components",
        description="List every registered prior, likelihood, guide, network, objective, "
        "beta schedule, model family, corruption, dataset and scaling.",
    )
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print the registries as the markdown table of docs/architecture.md",
    )
    p.set_defaults(func=cmd_components)
    return parser


# -- verbs ------------------------------------------------------------------------


def _default_output(cfg: dict[str, Any]) -> Path:
    stem = Path(str(cfg["data"])).stem or "data"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg['model']}-{stem}-{stamp}"


def _write_figures(est, data, run: Path) -> list[Path]:
    """Reconstructions and prior samples (image grids, or scatter matrices for tables)."""
    import torch

    from .plotting import save_image_rows, save_scatter_matrix

    torch.manual_seed(est.seed)
    x = data.test[:16] if data.test.shape[0] else data.train[:16]
    recon = est.reconstruct(x)
    samples = est.sample(64 if data.is_image else max(500, min(2000, data.train.shape[0])))
    if data.is_image:
        a = save_image_rows(run / names.RECONSTRUCTIONS, [x, recon], ["data", "reconstruction"])
        b = save_image_rows(
            run / names.SAMPLES,
            [s for s in samples.split(16)],
            ["samples from the prior", "", "", ""],
        )
        return [a, b]
    from .data.stream import is_stream

    def rows(x):  # a streamed split: the first rows only, read into memory
        return x[:2000] if is_stream(x) else x

    inv = data.scaler.inverse
    xs = rows(data.test if data.test.shape[0] else data.train)
    a = save_scatter_matrix(
        run / names.RECONSTRUCTIONS,
        {"data": inv(xs), "reconstruction": inv(est.reconstruct(xs))},
        names=data.feature_names,
    )
    b = save_scatter_matrix(
        run / names.SAMPLES,
        {"data": inv(rows(data.train)), "samples": inv(samples)},
        names=data.feature_names,
    )
    return [a, b]


def cmd_train(args: argparse.Namespace) -> int:
    from .config import OPTIONS_BY_NAME, resolve_device
    from .training import distributed

    explicit = {k: v for k, v in vars(args).items() if k in OPTIONS_BY_NAME}
    nproc, device = _launch_settings(args, explicit)
    if distributed.env_world_size() > 1:  # under torchrun, or a process of --nproc
        ctx = distributed.init_from_env(resolve_device(device))
    elif nproc > 1:
        return distributed.launch(nproc, _train_rank, args)
    else:
        ctx = None
    if ctx is not None and not ctx.is_main:  # rank 0 speaks for all
        log.setLevel(logging.WARNING)
        args.no_progress = True
    try:
        with contextlib.ExitStack() as held:
            return _train(args, explicit, ctx, held)
    except PyrovaeError:
        if ctx is not None and not ctx.is_main:
            raise SystemExit(2) from None
        raise
    except TrainingInterrupted as exc:
        if ctx is not None and not ctx.is_main:  # rank 0 says why
            raise SystemExit(exc.exit_status) from None
        raise
    finally:
        if ctx is not None:
            distributed.shutdown()


def _launch_settings(args: argparse.Namespace, explicit: dict[str, Any]) -> tuple[int, str]:
    """``nproc`` and ``device`` of a training command: from the flags, else the
    --config file, else (with --resume) the run's config.toml, else the defaults."""
    layers = [explicit]
    if args.resume and has_config(args.resume):
        layers.insert(0, read_config(args.resume))
    elif args.config:
        layers.insert(0, load_toml(args.config))
    cfg = resolve(
        *[{k: v for k, v in layer.items() if k in ("nproc", "device")} for layer in layers]
    )
    if cfg["nproc"] < 1:
        raise ConfigError(f"nproc must be a positive integer; got {cfg['nproc']}")
    return cfg["nproc"], cfg["device"]


def _train_rank(args: argparse.Namespace) -> int:
    """One process of ``pyrovae train --nproc N`` (started by
    :func:`pyrovae.training.distributed.launch`)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return cmd_train(args)
    except PyrovaeError as exc:
        print(f"pyrovae: error: {exc}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:
        print(f"pyrovae: {exc}", file=sys.stderr)
        return exc.exit_status


#: Options that ``--resume`` may change (besides --epochs and --time-budget): the
#: process count and the estimator settings :func:`pyrovae.api.resume` accepts.
RESUME_OPTIONS = ("nproc", *RESUME_OVERRIDES)


def _hold(held: contextlib.ExitStack, run: Path, ctx) -> None:
    """Hold the run folder until ``held`` closes: rank 0 takes its lock; if it cannot,
    every rank fails with its error (:func:`pyrovae.runs.hold`)."""
    from .training import distributed

    error = None
    if ctx is None or ctx.is_main:
        try:
            held.enter_context(hold(run))
        except RunLockedError as exc:
            if ctx is None:
                raise
            error = str(exc)
    if ctx is not None:
        error = distributed.broadcast_object(ctx, error)
        if error is not None:
            raise RunLockedError(error)


def _train(args: argparse.Namespace, explicit: dict[str, Any], ctx, held) -> int:
    from .estimators import ESTIMATORS, estimator_params, resume
    from .runs.data import data_info, load_run_data
    from .training import distributed

    main = ctx is None or ctx.is_main
    if args.resume:
        run = Path(args.resume)
        from .training.checkpoint import load_resumable, previous_path

        latest = run / names.CHECKPOINT
        if not (latest.exists() or previous_path(latest).exists()):
            raise CheckpointError(f"no checkpoint to resume in {str(run)!r}")
        _hold(held, run, ctx)  # until the figures are written
        ckpt, _ = load_resumable(run)
        extra = set(explicit) - {"epochs", "time_budget", *RESUME_OPTIONS}
        if args.config or args.output:
            raise ConfigError(
                "--resume continues the run in its own folder as configured; "
                "it takes no --config or --output"
            )
        if extra:
            allowed = ", ".join("--" + k.replace("_", "-") for k in RESUME_OPTIONS)
            raise ConfigError(
                f"--resume continues a run as configured; only --epochs, --time-budget, "
                f"{allowed} may change "
                f"(got {', '.join('--' + k.replace('_', '-') for k in sorted(extra))})"
            )
        epochs = coerce("epochs", explicit["epochs"]) if "epochs" in explicit else None
        budget = explicit.get("time_budget")
        budget = coerce("time_budget", budget) if budget is not None else None
        if epochs is not None and epochs <= 0:
            raise ConfigError(f"epochs must be a positive integer; got {epochs}")
        overrides = {
            k: coerce(k, v) for k, v in explicit.items() if k in RESUME_OPTIONS and k != "nproc"
        }
        data = load_run_data(ckpt.get("data", {}))
        t0 = time.perf_counter()
        est = resume(
            run,
            data.train,
            _nonempty(data.val),
            epochs=epochs,
            progress=not args.no_progress,
            train_transform=data.train_transform,
            time_budget=budget,
            **overrides,
        )
        return _finish_train(est, data, run, time.perf_counter() - t0) if main else 0

    file_cfg = load_toml(args.config) if args.config else {}
    cfg = resolve(file_cfg, explicit)
    run = Path(args.output) if args.output else _default_output(cfg)
    if ctx is not None and not args.output:  # one name for all ranks: rank 0's
        run = Path(distributed.broadcast_object(ctx, str(run)))
    if run.exists() and not run.is_dir():
        raise ConfigError(f"--output {str(run)!r} is a file, not a run folder")
    if run.exists() and any((run / f).exists() for f in RUN_FILES) and not args.force:
        raise ConfigError(
            f"run folder {str(run)!r} already holds a run; use --force to write "
            "into it or choose another --output"
        )
    from .runs.data import load_config_data

    data = load_config_data(cfg, given={*file_cfg, *explicit}, advice=main)
    cfg["likelihood"] = cfg["likelihood"] or data.likelihood
    cls = ESTIMATORS.get(cfg["model"])
    est = cls(**estimator_params(cfg["model"], cfg), progress=not args.no_progress)
    est.check_params()
    _check_model(est, data)
    distributed.barrier(ctx)  # every rank has checked the folder before rank 0 writes
    _hold(held, run, ctx)  # until the figures are written
    if main:
        run.mkdir(parents=True, exist_ok=True)
        write_config(run, cfg)
        where = f" ({ctx.world_size} processes)" if ctx is not None else ""
        print(
            f"training {cfg['model']} on {cfg['data']} ({data.train.shape[0]} train, "
            f"{data.val.shape[0]} validation rows) into {run}{where}",
            file=sys.stderr,
        )
    t0 = time.perf_counter()
    est.fit(
        data.train,
        X_val=_nonempty(data.val),
        run_dir=run,
        data_info=data_info(cfg, data),
        train_transform=data.train_transform,
    )
    return _finish_train(est, data, run, time.perf_counter() - t0) if main else 0


def _nonempty(x):
    """``x``, or None for an empty split (``--val-fraction 0``: no validation data)."""
    return x if x.shape[0] else None


def _check_model(est, data) -> None:
    """Build the model once and check the data's support, so that a bad component,
    option or likelihood fails before the run folder is created."""
    from .data.validation import check_support

    est.build(data.data_shape, est.likelihood)
    for split in (data.train, data.val, data.test):
        if split.shape[0]:
            check_support(est.module_.likelihood, split)
    est.check_runnable(data.train)


def _finish_train(est, data, run: Path, seconds: float) -> int:
    figures = _write_figures(est, data, run)
    last = est.history_[-1] if est.history_ else {}
    summary = {
        "run": str(run),
        "epochs": est.n_epochs_,
        "best_epoch": est.best_epoch_,
        "seconds": round(seconds, 2),
        "time_budget_spent": est.budget_spent_,
        "val_elbo": last.get("val_elbo"),
        "val_loss": last.get("val_loss"),
        "figures": [str(f) for f in figures],
    }
    print(to_json(summary))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .estimators import load
    from .runs.data import load_run_data

    est = load(args.run)
    data = load_run_data(est.data_info_, args.data)
    if args.particles < 1:
        raise ConfigError(f"--particles must be >= 1; got {args.particles}")
    x = data.split(args.split)
    if x.shape[0] == 0:
        raise ConfigError(
            f"the {args.split} split of {data.name!r} is empty (its fraction is 0); "
            "choose another --split"
        )
    if args.samples < 0:
        raise ConfigError(f"--samples must be >= 0; got {args.samples}")
    out = {"run": str(args.run), "split": args.split, "model": est.family}
    out.update(est.evaluate(x, particles=args.particles))
    if args.samples:
        out.update(est.analyze(x, samples=args.samples, particles=args.particles))
    text = to_json(out)
    print(text)
    run = Path(args.run)
    target = (
        Path(args.output)
        if args.output
        else (run if run.is_dir() else run.parent) / names.EVALUATION
    )
    write_json(target, out)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import pyro

    from .estimators import load
    from .plotting import save_image_rows, save_scatter_matrix

    if args.n < 1:
        raise ConfigError(f"-n must be >= 1; got {args.n}")
    est = load(args.run)
    pyro.set_rng_seed(args.seed)
    samples = est.sample(args.n, mean=not args.draw)
    run = Path(args.run)
    folder = run if run.is_dir() else run.parent
    png = Path(args.output) if args.output else folder / names.samples_grid(args.n)
    if not png.suffix:
        png = png.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    info = est.data_info_
    if info.get("scaler"):
        from .data import Scaler

        samples_out = Scaler.from_state(info["scaler"]).inverse(samples)
    else:
        samples_out = samples
    np.save(png.with_suffix(".npy"), samples_out.cpu().numpy())
    if len(est.data_shape_) >= 2:
        ncol = math.ceil(math.sqrt(args.n))
        save_image_rows(png, [samples], [f"{args.n} samples from the prior"], ncol=ncol)
    else:
        save_scatter_matrix(png, {"samples": samples_out}, names=info.get("feature_names"))
    print(to_json({"png": str(png), "npy": str(png.with_suffix(".npy"))}))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    import pyro
    import torch

    from . import arviz_compat
    from .analysis import elbo_decomposition, refine, sbc, to_arviz
    from .analysis.uncertainty import (
        ood_scores,
        plot_latent,
        plot_ood,
        plot_reconstruction_uncertainty,
        reconstruction_uncertainty,
    )
    from .atomic import atomic_write_text
    from .estimators import load
    from .inference.calibration import plot_rank_histograms
    from .runs.data import load_run_data

    for name in ("n", "draws", "samples"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be >= 1; got {getattr(args, name)}")
    if args.mcmc_points < 0 or args.sbc < 0:
        raise ConfigError("--mcmc-points and --sbc must be >= 0")
    est = load(args.run)
    if not est.module_.has_latent_sites:
        raise ConfigError(
            f"analyze needs a model with latent variables; this run is a {est.family}"
        )
    data = load_run_data(est.data_info_, args.data)
    x_all = data.split(args.split)
    if x_all.shape[0] == 0:
        raise ConfigError(f"the {args.split} split is empty; choose another --split")
    x = est.as_input(x_all[: args.n])
    labels = data.labels(args.split)
    run = Path(args.run)
    out = Path(args.output) if args.output else (run if run.is_dir() else run.parent)
    out.mkdir(parents=True, exist_ok=True)
    module = est.module_
    pyro.set_rng_seed(args.seed)
    files = []
    idata = to_arviz(module, x, draws=args.draws, feature_names=data.feature_names)
    files.append(arviz_compat.to_netcdf(idata, out / names.POSTERIOR))
    few = to_arviz(module, x[:5], draws=args.draws)
    files.append(arviz_compat.plot_forest(few, out / names.POSTERIOR_FOREST, ["z"]))
    table = arviz_compat.summary(idata, var_names=["z"])
    atomic_write_text(out / names.POSTERIOR_SUMMARY, table.to_csv())
    files.append(out / names.POSTERIOR_SUMMARY)
    diag: dict[str, Any] = {"run": str(args.run), "split": args.split, "n": int(x.shape[0])}
    diag["decomposition"] = elbo_decomposition(module, x, samples=args.samples)
    # out-of-distribution: the same data with every feature shuffled across rows
    g = torch.Generator().manual_seed(args.seed)
    shuffled = torch.stack(
        [col[torch.randperm(col.numel(), generator=g)] for col in x.reshape(x.shape[0], -1).T], 1
    ).reshape(x.shape)
    ood = ood_scores(module, x, shuffled, samples=args.samples)
    diag["ood"] = {"reference": "features shuffled across rows", "auroc": ood["auroc"]}
    plot_ood(ood, out / names.OOD, "features shuffled")
    files.append(out / names.OOD)
    if args.mcmc_points:
        ref = refine(module, x[: args.mcmc_points], seed=args.seed)
        diag["mcmc"] = {
            **ref["summary"],
            "khat": ref["khat"].tolist(),
            "mean_error": ref["mean_error"].tolist(),
            "sd_ratio": ref["sd_ratio"].tolist(),
            "coverage_90": ref["coverage"].tolist(),
        }
    if args.sbc:
        cal = sbc(module, n=args.sbc, seed=args.seed)
        diag["sbc"] = {
            "n": cal["n"],
            "p_values": cal["p_values"].tolist(),
            "coverage_50": cal["coverage_50"].tolist(),
            "coverage_90": cal["coverage_90"].tolist(),
        }
        plot_rank_histograms(cal, out / names.SBC)
        files.append(out / names.SBC)
    plot_latent(module, x, labels[: args.n] if labels is not None else None, out / names.LATENT)
    files.append(out / names.LATENT)
    if len(est.data_shape_) >= 2:
        mean, sd = reconstruction_uncertainty(module, x[:16])
        plot_reconstruction_uncertainty(x[:16], mean, sd, out / names.UNCERTAINTY)
        files.append(out / names.UNCERTAINTY)
    files.append(write_json(out / names.DIAGNOSTICS, diag))
    summary = {
        "log_likelihood": diag["decomposition"].get("log_likelihood"),
        "elbo": diag["decomposition"]["elbo"],
        "gap": diag["decomposition"].get("gap"),
        "active_units": diag["decomposition"]["active_units"],
        "ood_auroc": ood["auroc"],
        "files": [str(f) for f in files],
    }
    if "mcmc" in diag:
        summary["max_khat"] = diag["mcmc"]["max_khat"]
        summary["mcmc_max_rhat"] = diag["mcmc"]["max_rhat"]
    print(to_json(summary))
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from .analysis.comparison import check_same_data
    from .analysis.selection import best, plot_selection, score_model
    from .estimators import load
    from .runs.data import load_run_data

    if args.samples < 1:
        raise ConfigError(f"--samples must be >= 1; got {args.samples}")
    ests = [load(run) for run in args.runs]
    for run, est in zip(args.runs, ests, strict=True):
        if not est.module_.has_latent_sites:
            raise ConfigError(f"select needs models with latent variables; {run} is a {est.family}")
    # log-likelihoods and information criteria only compare on the same data
    check_same_data([(run, est.data_info_) for run, est in zip(args.runs, ests, strict=True)])
    rows = []
    for run, est in zip(args.runs, ests, strict=True):
        data = load_run_data(est.data_info_)
        label = f"{Path(run).name} (latent {est.latent_dim})"
        rows.append(
            {
                "label": label,
                "run": str(run),
                **score_model(est, data.train, data.val, samples=args.samples),
            }
        )
    result = {"rows": rows, "best": best(rows)}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / names.SELECTION, result)
    plot_selection(result, out / names.SELECTION_PLOT, xlabel="run")
    print(to_json(result))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .analysis.comparison import check_same_data, compare_runs
    from .estimators import load
    from .report.compare import format_tables, write_comparison
    from .runs.data import load_run_data

    for name in ("samples", "n"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be >= 1; got {getattr(args, name)}")
    ests = [load(run) for run in args.runs]
    check_same_data([(run, est.data_info_) for run, est in zip(args.runs, ests, strict=True)])
    data = load_run_data(ests[0].data_info_)
    result = compare_runs(
        ests, data, names=args.runs, n=args.n, samples=args.samples, seed=args.seed
    )
    x = data.test if data.test.shape[0] else data.val
    files = write_comparison(result, args.output, ests, x if data.is_image else None)
    print(format_tables(result), end="")
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    if args.n < 1:
        raise ConfigError(f"--n must be >= 1; got {args.n}")
    t0 = time.perf_counter()
    path = build_report(args.run, args.output, n=args.n, data=args.data, seed=args.seed)
    print(
        to_json(
            {
                "report": str(path),
                "bytes": path.stat().st_size,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    )
    return 0


#: Every registry, in the order ``pyrovae components`` lists them: a title and the
#: registry's dotted path.
REGISTRIES = (
    ("model families", "pyrovae.models.MODELS"),
    ("estimators", "pyrovae.estimators.ESTIMATORS"),
    ("priors", "pyrovae.priors.PRIORS"),
    ("likelihoods", "pyrovae.likelihoods.LIKELIHOODS"),
    ("guides", "pyrovae.guides.GUIDES"),
    ("networks", "pyrovae.nets.ENCODERS"),
    ("activations", "pyrovae.nets.ACTIVATIONS"),
    ("objectives", "pyrovae.objectives.OBJECTIVES"),
    ("beta schedules", "pyrovae.objectives.SCHEDULES"),
    ("dae corruptions", "pyrovae.models.CORRUPTIONS"),
    ("datasets", "pyrovae.data.DATASETS"),
    ("scalings", "pyrovae.data.SCALERS"),
    ("binarizations", "pyrovae.data.binarize.BINARIZATIONS"),
)


def registry_table() -> str:
    """The registries as a markdown table (docs/architecture.md embeds it; a test
    keeps the two equal)."""
    lines = ["| registry | where | names |", "|---|---|---|"]
    for _, path in REGISTRIES:
        module, _, name = path.rpartition(".")
        names = ", ".join(f"`{n}`" for n in _registry(path).names())
        lines.append(f"| `{name}` | `{module}` | {names} |")
    return "\n".join(lines) + "\n"


def cmd_components(args: argparse.Namespace) -> int:
    if args.markdown:
        print(registry_table(), end="")
        return 0
    for title, path in REGISTRIES:
        print(f"{title}:")
        for name, obj in _registry(path).items():
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            print(f"  {name:<16} {doc[0] if doc else ''}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyrovae`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # other libraries log at WARNING; pyrovae's own messages at INFO (DEBUG with -v)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # Warnings are held back while a verb runs: shown after it succeeds, dropped when it
    # fails, so that an error is exactly one line (a corrupt file can make torch warn first).
    with warnings.catch_warnings(record=True) as caught:
        try:
            status = args.func(args)
        except PyrovaeError as exc:
            for w in caught:
                log.debug("warning before the error: %s", w.message)
            print(f"pyrovae: error: {exc}", file=sys.stderr)
            return 2
        except TrainingInterrupted as exc:  # SIGINT or SIGTERM, its position saved
            print(f"pyrovae: {exc}", file=sys.stderr)
            return exc.exit_status
        except KeyboardInterrupt:
            print("pyrovae: interrupted; the last checkpoint is kept", file=sys.stderr)
            return 130
        except BrokenPipeError:  # output piped into a program that stopped reading
            sys.stderr.close()
            return 141
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

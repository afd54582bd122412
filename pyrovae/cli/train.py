"""``pyrovae train``: train a model into a run folder, continue one (``--resume``), or
launch the same command in several processes (``--nproc``).

The training options are generated from :data:`pyrovae.config.OPTIONS` (flag, help,
default and registry names); a ``--config`` file gives their values too, flags win.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import OPTIONS, RESUME_OVERRIDES, coerce, load_toml, resolve
from ..errors import CheckpointError, ConfigError, PyrovaeError, RunLockedError, TrainingInterrupted
from ..runs import hold, names, read_config, to_json, write_config
from ..runs.config import has_config
from ..runs.names import RUN_FILES
from . import args as shared
from .components import registry

log = logging.getLogger("pyrovae")

#: Options that ``--resume`` may change (besides --epochs and --time-budget): the
#: process count and the estimator settings :func:`pyrovae.api.resume` accepts.
RESUME_OPTIONS = ("nproc", *RESUME_OVERRIDES)


# -- arguments ---------------------------------------------------------------------------


def register(sub) -> None:
    """Add the ``train`` verb: its own arguments and one flag per training option."""
    p = shared.add_verb(sub, "train", cmd_train, "train a model into a run folder")
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
    shared.add_switch(p, "--force", "write into an existing run folder")
    shared.add_progress(p)
    add_config_options(p)


def _option_help(opt, names: bool = True) -> str:
    """An option's help text with its default and (``names``) its registry's names."""
    text = opt.help
    if opt.registry and names:
        text += f"; one of: {', '.join(registry(opt.registry).names())}"
    if opt.default not in (None, {}, []):
        shown = ",".join(map(str, opt.default)) if isinstance(opt.default, list) else opt.default
        text += f" (default: {shown})"
    return text


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One flag per :data:`pyrovae.config.OPTIONS` entry, in its group. Unset flags are
    absent from the namespace (``argparse.SUPPRESS``), so that only the options given
    override the ``--config`` file. The registered names join an option's help when the
    help is shown (``complete_help``): listing them imports the components, and torch."""
    groups = {
        "data": parser.add_argument_group("data"),
        "model": parser.add_argument_group("model"),
        "training": parser.add_argument_group("objective and training"),
    }
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {
            "dest": opt.name,
            "default": argparse.SUPPRESS,
            "help": _option_help(opt, names=False),
        }
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        if isinstance(opt.default, dict):
            kwargs["action"] = "append"
        elif isinstance(opt.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        action = groups[opt.group].add_argument(opt.flag, **kwargs)
        if opt.registry:
            action.complete_help = functools.partial(_option_help, opt)


# -- the verb ----------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    """Train a VAE (or the ae/dae baselines) and write a run folder with config.toml,
    checkpoint.pt, metrics.csv and PNGs of reconstructions and samples. Options override
    the --config file, which overrides the defaults."""
    from ..config import OPTIONS_BY_NAME, resolve_device
    from ..training import distributed

    explicit = {k: v for k, v in vars(args).items() if k in OPTIONS_BY_NAME}
    nproc, device = _launch_settings(args, explicit)
    if distributed.env_world_size() > 1:  # under torchrun, or a process of --nproc
        ctx = distributed.init_from_env(resolve_device(device))
    elif nproc > 1:
        return distributed.launch(nproc, train_rank, args)
    else:
        ctx = None
    progress = shared.show_progress(args)
    if ctx is not None and not ctx.is_main:  # rank 0 speaks for all
        log.setLevel(logging.WARNING)
        progress = False
    try:
        with contextlib.ExitStack() as held:
            if args.resume:
                return _resume(args, explicit, ctx, held, progress)
            return _train(args, explicit, ctx, held, progress)
    except (PyrovaeError, TrainingInterrupted) as exc:
        if ctx is not None and not ctx.is_main:  # rank 0 says why
            status = exc.exit_status if isinstance(exc, TrainingInterrupted) else 2
            raise SystemExit(status) from None
        raise
    finally:
        if ctx is not None:
            distributed.shutdown()


def train_rank(args: argparse.Namespace) -> int:
    """One process of ``pyrovae train --nproc N`` (started by
    :func:`pyrovae.training.distributed.launch`)."""
    from .app import run_verb, setup_logging

    setup_logging(args.verbose)
    return run_verb(args)


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


def _hold(held: contextlib.ExitStack, run: Path, ctx) -> None:
    """Hold the run folder until ``held`` closes: rank 0 takes its lock; if it cannot,
    every rank fails with its error (:func:`pyrovae.runs.hold`)."""
    from ..training import distributed

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


# -- resuming a run ------------------------------------------------------------------------


def _resume_settings(args: argparse.Namespace, explicit: dict[str, Any]) -> dict[str, Any]:
    """What ``--resume`` may change, checked and coerced: ``epochs``, ``time_budget``
    and the :data:`RESUME_OPTIONS` given."""
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
    return {"epochs": epochs, "time_budget": budget, **overrides}


def _resume(args, explicit, ctx, held, progress: bool) -> int:
    from ..estimators import resume
    from ..runs.data import load_run_data
    from ..training.checkpoint import load_resumable, previous_path

    run = Path(args.resume)
    latest = run / names.CHECKPOINT
    if not (latest.exists() or previous_path(latest).exists()):
        raise CheckpointError(f"no checkpoint to resume in {str(run)!r}")
    _hold(held, run, ctx)  # until the figures are written
    ckpt, _ = load_resumable(run)
    settings = _resume_settings(args, explicit)
    data = load_run_data(ckpt.get("data", {}))
    t0 = time.perf_counter()
    est = resume(
        run,
        data.train,
        _nonempty(data.val),
        y_train=targets(data, "train"),
        y_val=targets(data, "val"),
        progress=progress,
        train_transform=data.train_transform,
        **settings,
    )
    main = ctx is None or ctx.is_main
    return _finish_train(est, data, run, time.perf_counter() - t0) if main else 0


# -- a new run -----------------------------------------------------------------------------


def _default_output(cfg: dict[str, Any]) -> Path:
    stem = Path(str(cfg["data"])).stem or "data"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg['model']}-{stem}-{stamp}"


def _run_folder(args: argparse.Namespace, cfg: dict[str, Any], ctx) -> Path:
    """The folder of a new run, checked: not a file, and not a run unless ``--force``."""
    from ..training import distributed

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
    return run


def _train(args, explicit, ctx, held, progress: bool) -> int:
    from ..estimators import ESTIMATORS, estimator_params
    from ..runs.data import data_info, load_config_data
    from ..training import distributed

    main = ctx is None or ctx.is_main
    file_cfg = load_toml(args.config) if args.config else {}
    cfg = resolve(file_cfg, explicit)
    run = _run_folder(args, cfg, ctx)
    data = load_config_data(cfg, given={*file_cfg, *explicit}, advice=main)
    cfg["likelihood"] = cfg["likelihood"] or data.likelihood
    cfg["net_options"] = net_options(cfg)
    cls = ESTIMATORS.get(cfg["model"])
    est = cls(**estimator_params(cfg["model"], cfg), progress=progress)
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
        targets(data, "train"),
        X_val=_nonempty(data.val),
        y_val=targets(data, "val"),
        run_dir=run,
        data_info=data_info(cfg, data),
        train_transform=data.train_transform,
    )
    return _finish_train(est, data, run, time.perf_counter() - t0) if main else 0


def net_options(cfg: dict[str, Any]) -> dict[str, Any]:
    """The network options of a new run: those the architecture takes from the run's
    configuration (its decoder's ``options_from_run``, e.g. the grid of ``--data
    heston`` for the pricer decoder), overridden by ``--net-options``."""
    from ..nets import DECODERS

    hook = getattr(DECODERS.get(cfg["net"]), "options_from_run", None)
    return {**(hook(cfg) if hook is not None else {}), **dict(cfg.get("net_options") or {})}


def targets(data, split: str):
    """What a conditional family reads of split ``split``: its labels where the data have
    them, else its per-row conditions, else None (unconditional families ignore both)."""
    y = data.labels(split)
    return y if y is not None else data.conditions(split)


def _first(y, n: int):
    """The first ``n`` labels or conditions of ``y`` (None stays None)."""
    return None if y is None else y[:n]


def _nonempty(x):
    """``x``, or None for an empty split (``--val-fraction 0``: no validation data)."""
    return x if x.shape[0] else None


def _check_model(est, data) -> None:
    """Build the model once and check the data's support, so that a bad component,
    option or likelihood fails before the run folder is created."""
    from ..data.validation import check_support, observation_mask

    y = targets(data, "train")
    est.learn_targets(y)
    est.build(data.data_shape, est.likelihood)
    splits = {"training": data.train, "validation": data.val, "test": data.test}
    for name, split in splits.items():
        if split.shape[0]:
            if est.missing == "mask":  # the observed entries; every row observed somewhere
                observation_mask(split, f"the {name} data")
                split = split[~split.isnan()]
            check_support(est.module_.likelihood, split)
    observed = est.as_observed(data.train[:2], "the training data")
    est.check_runnable(est.with_targets(observed.x, _first(y, 2), mask=observed.mask))


# -- the end of training ---------------------------------------------------------------------


def _write_figures(est, data, run: Path) -> list[Path]:
    """Reconstructions and prior samples (image grids, or scatter matrices for tables)."""
    import torch

    from ..plotting import save_image_rows, save_scatter_matrix

    torch.manual_seed(est.seed)
    split = "test" if data.test.shape[0] else "train"
    x, y = data.split(split)[:16], _first(targets(data, split), 16)
    recon = est.reconstruct(x, y=y)
    n = 64 if data.is_image else max(500, min(2000, data.train.shape[0]))
    samples = est.sample(n, condition=est.sample_conditions(targets(data, "train"), n))
    if data.is_image:
        a = save_image_rows(run / names.RECONSTRUCTIONS, [x, recon], ["data", "reconstruction"])
        b = save_image_rows(
            run / names.SAMPLES,
            [s for s in samples.split(16)],
            ["samples from the prior", "", "", ""],
        )
        return [a, b]
    from ..data.stream import is_stream

    def rows(x):  # a streamed split: the first rows only, read into memory
        return x[:2000] if is_stream(x) else x

    inv = data.scaler.inverse
    xs = rows(data.split(split))
    a = save_scatter_matrix(
        run / names.RECONSTRUCTIONS,
        {
            "data": inv(xs),
            "reconstruction": inv(est.reconstruct(xs, y=_first(targets(data, split), xs.shape[0]))),
        },
        names=data.feature_names,
    )
    b = save_scatter_matrix(
        run / names.SAMPLES,
        {"data": inv(rows(data.train)), "samples": inv(samples)},
        names=data.feature_names,
    )
    return [a, b]


def _finish_train(est, data, run: Path, seconds: float) -> int:
    figures = _write_figures(est, data, run)
    if est.log:  # the trackers also get the figures and the final checkpoint
        from ..training.loggers import log_files

        log_files(getattr(est, "trainer_", None), [*figures, run / names.CHECKPOINT])
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

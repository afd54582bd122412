"""``pyrovae complete RUN --data PARTIAL``: condition a trained model on partly observed rows
and write the completions of the missing entries with their credible bands
(:meth:`pyrovae.api.Estimator.condition`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import ConfigError, DataError
from ..runs import names, to_json, write_json
from . import args as shared

#: Central credible levels of the bands written.
LEVELS = (0.5, 0.9)
#: Missing values shown in the figure of tabular completions.
FIGURE_VALUES = 40
#: The conditioners' options given as flags, and the method that takes each.
METHOD_FLAGS = {"steps": "svi", "lr": "svi", "warmup": "nuts", "chains": "nuts"}


def register(sub) -> None:
    """Add the ``complete`` verb."""
    p = shared.add_verb(
        sub,
        "complete",
        cmd_complete,
        "complete partly observed rows: posterior predictive of the missing entries",
    )
    shared.add_run_argument(p)
    p.add_argument(
        "--data",
        metavar="PARTIAL",
        required=True,
        help="rows to complete (.npy, .npz or .csv, in the data's units); NaN or empty "
        "cells are missing",
    )
    p.add_argument(
        "--mask",
        metavar="MASK",
        help="observation mask of PARTIAL's shape (.npy, .npz or .csv; nonzero = observed); "
        "default: the non-NaN entries",
    )
    p.add_argument(
        "--method",
        default="guide",
        help="guide (the amortized guide; for models trained with masks), svi (a per-row "
        "variational posterior) or nuts (MCMC) (default: guide)",
    )
    shared.add_count(p, "--draws", 1000, "posterior draws per row")
    p.add_argument("--steps", type=int, help="svi: optimisation steps (default: 500)")
    p.add_argument("--lr", type=float, help="svi: Adam step size (default: 0.05)")
    p.add_argument("--warmup", type=int, help="nuts: warm-up iterations per chain (default: 500)")
    p.add_argument("--chains", type=int, help="nuts: chains per row (default: 2)")
    p.add_argument(
        "--discrepancy",
        metavar="ROWS",
        help="complete rows (.npy, .npz or .csv, data units; held-out rows are best) whose "
        "reconstruction errors define a correlated Gaussian discrepancy that replaces the "
        "model's likelihood: the missing entries then move with the observed ones' errors "
        "(see docs/conditioning.md)",
    )
    p.add_argument(
        "--discrepancy-scale",
        choices=("fixed", "infer", "calibrated"),
        default="fixed",
        help="the discrepancy's scale: fixed at 1, sampled per row with z (--method nuts), "
        "or calibrated: fixed per observation pattern by the likelihood of a held-out "
        "fifth of ROWS' missing entries given their observed ones (default: fixed)",
    )
    p.add_argument(
        "--nugget",
        default="auto",
        help="the discrepancy's nugget as a fraction of the mean residual variance, or "
        "auto: chosen by the likelihood of a random fifth of ROWS (default: auto)",
    )
    shared.add_seed(p)
    shared.add_condition(p, "complete the rows")
    shared.add_progress(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help=f"folder for the outputs (default: RUN/{names.COMPLETION_DIR})",
    )


def _folder(run: str) -> Path:
    path = Path(run)
    return path if path.is_dir() else path.parent


def _read_mask(path: str, shape: tuple[int, ...], given: tuple[int, ...]):
    """The mask file as ``bool`` of ``shape`` (PARTIAL's rows in the model's shape;
    ``given``: PARTIAL's shape in its file), or a one-line DataError."""
    import torch

    from ..data.datasets import load_file

    raw = load_file(path, missing=True).x
    if bool(torch.isnan(raw).any()):
        raise DataError(f"the mask {Path(path).name!r} has NaN entries; use 0 and 1")
    if raw.shape[0] != shape[0] or math.prod(raw.shape[1:]) != math.prod(shape[1:]):
        raise DataError(f"the mask has shape {tuple(raw.shape)} but PARTIAL has {given}")
    return (raw != 0).reshape(shape)


def _options(args: argparse.Namespace) -> dict:
    """The conditioner's options given as flags; a flag of another method is refused."""
    out = {}
    for key, method in METHOD_FLAGS.items():
        value = getattr(args, key)
        if value is None:
            continue
        if args.method != method:
            raise ConfigError(f"--{key} is an option of --method {method}, not {args.method}")
        out[key] = value
    if args.method == "nuts":  # the chains' progress bars (Pyro's)
        out["progress"] = shared.show_progress(args)
    return out


def _row_conditions(args: argparse.Namespace, est):
    """The rows' condition for a conditional run (``--condition`` for all rows, or
    ``--condition-values`` with one row for all or one per row, broadcast by the
    estimator); None otherwise."""
    condition = shared.condition_given(args, est)
    if not est.is_conditional:
        if condition is not None:
            raise ConfigError(f"the {est.family} model is unconditional; drop --condition")
        return None
    if condition is None:
        raise ConfigError(
            f"the {est.family} model completes rows given their conditions: "
            "pass --condition or --condition-values"
        )
    return condition


def _nugget(text: str):
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise ConfigError(f"--nugget must be a number > 0 or auto; got {text!r}")
    return value


def _discrepancy(args: argparse.Namespace, est, scaler):
    """The discrepancy of ``--discrepancy ROWS`` (None without it), in the model's units."""
    from ..data.datasets import load_file

    if args.discrepancy is None:
        if args.discrepancy_scale != "fixed" or args.nugget != "auto":
            raise ConfigError("--discrepancy-scale and --nugget need --discrepancy ROWS")
        return None
    nugget = _nugget(args.nugget)
    if est.is_conditional:
        raise ConfigError(f"--discrepancy needs an unconditional model; this run is a {est.family}")
    rows = load_file(args.discrepancy, missing=True).x
    if math.prod(rows.shape[1:]) != est.n_features_in_:
        raise DataError(
            f"ROWS of --discrepancy have {math.prod(rows.shape[1:])} features per row; "
            f"the run's model has {est.n_features_in_}"
        )
    if bool(rows.isnan().any()):
        raise DataError("ROWS of --discrepancy must be complete (they have NaN entries)")
    rows = scaler.transform(rows.reshape(rows.shape[0], *est.data_shape_))
    return est.discrepancy(
        rows,
        nugget=nugget,
        infer_scale=args.discrepancy_scale == "infer",
        calibrate=args.discrepancy_scale == "calibrated",
    )


def cmd_complete(args: argparse.Namespace) -> int:
    """Condition a trained VAE on the observed entries of each row of PARTIAL (NaN or
    --mask marks the missing ones) and write, into RUN/completion (or --output): the
    completed rows (completion_mean.npy, observed entries kept), the central 50 % and
    90 % credible bands of every entry (completion_bands.npz), a figure (images:
    observed / completed / width of the 90 % band; tabular: each missing value with its
    bands), completion.csv (tabular: one line per missing value), completion.nc (ArviZ:
    posterior of z, posterior predictive of x, the data and the mask) and
    completion.json (method and diagnostics). Values are in the data's units."""
    import numpy as np
    import torch

    from ..arviz_compat import to_netcdf
    from ..data import Scaler
    from ..data.datasets import load_file
    from ..estimators import load
    from ..inference.conditioning import CONDITIONERS

    shared.check_at_least(args, 2, "draws")
    CONDITIONERS.get(args.method)  # a one-line error for an unknown method
    options = _options(args)
    est = load(args.run)
    if not est.module_.has_latent_sites:
        raise ConfigError(
            f"complete needs a model with latent variables; this run is a {est.family}"
        )
    x = load_file(args.data, missing=True).x
    features = math.prod(x.shape[1:])
    if features != est.n_features_in_:
        raise DataError(
            f"PARTIAL has {features} features per row; the run's model has {est.n_features_in_}"
        )
    given = tuple(x.shape)
    x = x.reshape(x.shape[0], *est.data_shape_)
    mask = ~torch.isnan(x)
    if args.mask:
        mask = _read_mask(args.mask, tuple(x.shape), given) & mask
    seen = mask.reshape(mask.shape[0], -1).any(1)
    if not bool(seen.all()):
        raise DataError(
            f"PARTIAL has {int((~seen).sum())} row(s) with no observed entry, "
            f"first row {int((~seen).nonzero()[0])}"
        )
    y = _row_conditions(args, est)
    info = est.data_info_
    scaler = Scaler.from_state(info["scaler"]) if info.get("scaler") else Scaler("none")
    noise = _discrepancy(args, est, scaler)
    if noise is not None:
        options["noise"] = noise
    filled = torch.where(mask, x, torch.zeros_like(x))
    scaled = torch.where(mask, scaler.transform(filled.reshape(x.shape)), torch.zeros_like(x))
    comp = est.condition(
        scaled,
        mask=mask,
        method=args.method,
        draws=args.draws,
        levels=LEVELS,
        seed=args.seed,
        y=y,
        **options,
    )
    # everything is computed; only writing is left
    inv = scaler.inverse
    mean = torch.where(mask, x, inv(comp.mean.cpu()))
    bands = {level: (inv(lo.cpu()), inv(hi.cpu())) for level, (lo, hi) in comp.bands.items()}
    out = Path(args.output) if args.output else _folder(args.run) / names.COMPLETION_DIR
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / names.COMPLETION_MEAN, mean.numpy())
    band_arrays = {}
    for level, (lo, hi) in bands.items():
        pct = round(100 * level)
        band_arrays[f"lower_{pct}"] = lo.numpy()
        band_arrays[f"upper_{pct}"] = hi.numpy()
    np.savez(out / names.COMPLETION_BANDS, mask=mask.numpy(), **band_arrays)
    to_netcdf(comp.to_arviz(), out / names.COMPLETION_NC)
    files = [names.COMPLETION_MEAN, names.COMPLETION_BANDS, names.COMPLETION_NC]
    if info.get("is_image", len(est.data_shape_) >= 2):
        _image_figure(out / names.COMPLETION_FIGURE, x, mask, mean, bands[0.9])
    else:
        _table(out / names.COMPLETION_TABLE, mean, mask, bands, info.get("feature_names"))
        _tabular_figure(out / names.COMPLETION_FIGURE, mean, mask, bands, info.get("feature_names"))
        files.append(names.COMPLETION_TABLE)
    files.append(names.COMPLETION_FIGURE)
    summary = {
        "run": str(args.run),
        "data": str(args.data),
        "method": args.method,
        "discrepancy": None
        if noise is None
        else {
            "rows": str(args.discrepancy),
            "nugget": noise.nugget,
            "scale": args.discrepancy_scale,
            # ŝ of each row's observation pattern (all 1 unless calibrated)
            "pattern_scales": [noise.pattern_scale(m.reshape(-1)) for m in mask],
        },
        "rows": int(x.shape[0]),
        "missing_entries": int((~mask).sum()),
        "draws": int(args.draws),
        "levels": list(LEVELS),
        "diagnostics": comp.diagnostics,
        "files": [str(out / f) for f in files],
    }
    write_json(out / names.COMPLETION_JSON, summary)
    print(to_json(summary))
    return 0


def _image_figure(path: Path, x, mask, mean, band) -> None:
    """Observed (missing entries grey), completed, and the 90 % band's width (scaled to
    the largest width) of up to 16 images."""
    import torch

    from ..plotting import save_image_rows

    n = min(16, x.shape[0])
    observed = torch.where(mask, x, torch.full_like(x, 0.5))[:n]
    width = (band[1] - band[0])[:n]
    width = width / width.max().clamp_min(1e-12)
    save_image_rows(
        path,
        [observed, mean[:n], width],
        ["observed (missing: grey)", "completed (posterior predictive mean)", "90 % band width"],
    )


def _missing_entries(mean, mask, names_):
    """(row, feature index, feature name) of each missing entry, row by row."""
    rows, cols = (~mask.reshape(mask.shape[0], -1)).nonzero(as_tuple=True)
    label = lambda j: names_[j] if names_ is not None and j < len(names_) else f"feature {j}"  # noqa: E731
    return [(int(r), int(c), label(int(c))) for r, c in zip(rows, cols, strict=True)]


def _table(path: Path, mean, mask, bands, feature_names) -> None:
    from ..atomic import atomic_write_text

    flat = mean.reshape(mean.shape[0], -1)
    levels = sorted(bands)
    head = ["row", "feature", "mean"] + [
        f"{side}_{round(100 * lv)}" for lv in levels for side in ("lower", "upper")
    ]
    lines = [",".join(head)]
    for r, c, name in _missing_entries(mean, mask, feature_names):
        cells = [str(r), name, f"{float(flat[r, c]):.6g}"]
        for lv in levels:
            lo, hi = (b.reshape(b.shape[0], -1) for b in bands[lv])
            cells += [f"{float(lo[r, c]):.6g}", f"{float(hi[r, c]):.6g}"]
        lines.append(",".join(cells))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _tabular_figure(path: Path, mean, mask, bands, feature_names) -> None:
    """Each missing value (up to :data:`FIGURE_VALUES`) with its 50 % and 90 % bands."""
    from ..plotting import pyplot

    plt = pyplot()
    entries = _missing_entries(mean, mask, feature_names)[:FIGURE_VALUES]
    flat = mean.reshape(mean.shape[0], -1)
    fig, ax = plt.subplots(figsize=(7, 0.25 * max(4, len(entries)) + 1))
    for k, (r, c, _name) in enumerate(entries):
        for lv, lw in ((0.9, 1.0), (0.5, 4.0)):
            lo, hi = (b.reshape(b.shape[0], -1) for b in bands[lv])
            ax.plot([float(lo[r, c]), float(hi[r, c])], [k, k], color="C0", lw=lw, alpha=0.6)
        ax.plot(float(flat[r, c]), k, "o", color="C1", ms=4)
    ax.set_yticks(range(len(entries)))
    ax.set_yticklabels([f"row {r}: {name}" for r, _c, name in entries], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("value (posterior predictive mean; 50 % and 90 % bands)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

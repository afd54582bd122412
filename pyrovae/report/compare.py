"""Files of a comparison of runs: ``comparison.json``, ``comparison.md`` (markdown tables,
one row per run), ``rate_distortion.png`` and ``grids.png`` (reconstructions and
samples of every run side by side).

The metrics come from :func:`pyrovae.analysis.comparison.compare_runs`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..atomic import atomic_write_text
from ..plotting import pyplot, save_image_rows
from ..runs import names, write_json

#: (title, [(key or (key, subkey), column header, format)]) of the markdown tables.
TABLES = (
    (
        "Reconstruction and likelihood",
        [
            ("squared_error", "squared error / image", ".3f"),
            ("recon_loglik", "recon. term", ".2f"),
            ("log_likelihood", "log p(x)", ".2f"),
            ("rate", "rate (KL)", ".2f"),
            ("distortion", "distortion", ".2f"),
        ],
    ),
    (
        "Samples and prior filling",
        [
            ("recon_accuracy", "classifier acc. on recon.", ".3f"),
            ("sample_confidence", "sample confidence", ".3f"),
            ("sample_label_entropy", "label entropy", ".3f"),
            ("sample_nn_distance", "sample-train NN dist.", ".3f"),
            ("fill_fraction", "fill fraction", ".3f"),
            ("mmd", "MMD² q(z) vs prior", ".4f"),
        ],
    ),
    (
        "Latent space, out-of-distribution detection, disentanglement",
        [
            ("path_ratio", "path ratio", ".3f"),
            ("path_max_step", "max step", ".3f"),
            (("ood_auroc", "noise"), "AUROC noise", ".3f"),
            (("ood_auroc", "inverted"), "AUROC inverted", ".3f"),
            (("ood_auroc", "other"), "AUROC other", ".3f"),
            ("mig", "MIG", ".3f"),
            ("beta_vae_score", "β-VAE score", ".3f"),
        ],
    ),
)


def _cell(row: dict, key, fmt: str) -> str:
    v = row.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else row.get(key)
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, fmt)


def _table(rows: list[dict], columns) -> list[str]:
    head = ["run"] + [c[1] for c in columns]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|",
    ]
    for row in rows:
        cells = [row["label"]] + [_cell(row, k, f) for k, _, f in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def format_tables(result: dict) -> str:
    """The comparison as markdown: one table per group of metrics, one row per run,
    and a line of reference values measured on real test data."""
    s, ref = result["settings"], result["reference"]
    lines = [
        f"Comparison on {result['data']!r}: {s['n']} {ref.get('split', 'test')} points, "
        f"{s['samples']} importance samples, {s['n_samples']} prior samples, "
        f"{s['pairs']} interpolation pairs x {s['steps']} steps, seed {s['seed']}.",
        "",
    ]
    for title, columns in TABLES:
        lines += [f"### {title}", ""] + _table(result["rows"], columns) + [""]
    parts = []
    if "classifier_test_accuracy" in ref:
        parts.append(
            f"classifier accuracy on real test data {ref['classifier_test_accuracy']:.3f}, "
            f"confidence {ref['test_confidence']:.3f}, label entropy "
            f"{ref['test_label_entropy']:.3f} (max {ref['max_label_entropy']:.3f})"
        )
    parts.append(
        f"test-train NN distance {ref['test_nn_distance']:.3f} "
        f"(95th percentile {ref['nn_threshold_q95']:.3f})"
    )
    if "other_dataset" in ref:
        parts.append(f"'other' OOD set: {ref['other_dataset']} (resized)")
    lines.append("Reference: " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def plot_rate_distortion(result: dict, path) -> Path:
    """Rate (KL) against distortion (-E log p(x|z)) of the VAE runs, joined in order of
    beta and labelled; autoencoders (no rate) as horizontal lines at their distortion."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    rows = result["rows"]
    vae = sorted([r for r in rows if r.get("rate") is not None], key=lambda r: r.get("beta") or 0)
    if vae:
        ax.plot([r["rate"] for r in vae], [r["distortion"] for r in vae], "o-", color="C0")
        for r in vae:
            ax.annotate(
                r["label"],
                (r["rate"], r["distortion"]),
                fontsize=8,
                textcoords="offset points",
                xytext=(4, 4),
            )
    for i, r in enumerate(r for r in rows if r.get("rate") is None):
        ax.axhline(
            r["distortion"], ls="--", lw=1, color=f"C{i + 1}", label=f"{r['label']} (no rate)"
        )
    ax.set_xlabel("rate: KL(q(z|x) || p(z)) (nats)")
    ax.set_ylabel("distortion: -E log p(x|z) (nats)")
    ax.set_title(f"Rate-distortion on {result['data']} test data")
    if any(r.get("rate") is None for r in rows):
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@torch.no_grad()
def save_grids(path, estimators, labels, x: torch.Tensor, n: int = 8, seed: int = 0) -> Path:
    """One PNG: ``n`` test images, then for each run its reconstructions and ``n`` samples
    (image data only)."""
    x = x[:n]
    rows, titles = [x], ["test data"]
    for est, label in zip(estimators, labels, strict=True):
        torch.manual_seed(int(seed))
        rows += [est.reconstruct(est.as_input(x)).cpu(), est.sample(n).cpu()]
        titles += [f"{label}: reconstructions", f"{label}: samples"]
    return save_image_rows(path, rows, titles, ncol=n)


def write_comparison(result: dict, out, estimators=None, x=None) -> list[Path]:
    """Write comparison.json, comparison.md, rate_distortion.png and, given the
    estimators and image data ``x``, grids.png into folder ``out``; return the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [write_json(out / names.COMPARISON, result), out / names.COMPARISON_TABLES]
    atomic_write_text(files[1], format_tables(result))
    files.append(plot_rate_distortion(result, out / names.RATE_DISTORTION))
    if estimators is not None and x is not None and x.dim() >= 3:
        labels = [r["label"] for r in result["rows"]]
        files.append(
            save_grids(out / names.GRIDS, estimators, labels, x, seed=result["settings"]["seed"])
        )
    return files

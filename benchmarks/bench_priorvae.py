"""PriorVAE against the exact Gaussian process: accuracy, calibration and NUTS time.

A VAE (Gaussian likelihood, latent dimension 10) is trained on draws of a zero-mean,
unit-variance GP with an RBF kernel on 100 grid points of [0, 1], each draw with its own
lengthscale uniform on ``--ls-range`` (``examples/prior_vae_gp.py``). For each of
``--functions`` held-out draws, observed at 10 random grid points with Gaussian noise:

* NUTS over z in the user's model ``f = prior(); y ~ N(f[idx], noise)``
  (:func:`pyrovae.prior_module`, jit, dense mass matrix);
* the exact GP posterior at the function's true lengthscale (closed form);
* RMSE between the two posterior means over the grid (in prior sd: the GP has unit
  variance), and the share of grid points where the 90 % central band of the NUTS draws
  covers the true function;
* on the first ``--timed`` functions, interleaved with the runs over z in the same
  process, NUTS with the same warm-up and number of draws over the GP's 100 function
  values: non-centred, f = L eta with eta ~ N(0, I) and L the Cholesky factor of the
  kernel at the true lengthscale (``gp``), and, with ``--gp-lengthscale``, with the
  lengthscale inferred as well under its uniform prior (``gp-ls``, a Cholesky
  factorisation per gradient: the model that the VAE's prior stands for).

Resumable: the trained VAE is saved in ``--work`` and each function's result is written to
``--out``/priorvae.json as soon as it is done; a rerun skips the functions already there
(with the same settings).

    OMP_NUM_THREADS=1 python benchmarks/bench_priorvae.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, restores_threads  # noqa: E402

import pyrovae  # noqa: E402
from pyrovae.atomic import atomic_write_text  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "prior_vae_gp.py"
NAME = "priorvae"
#: The settings of the trained VAE (a rerun with the same ones loads it from ``--work``).
TRAIN_SETTINGS = "train epochs latent_dim hidden batch_size lr decoder_scale ls_range seed".split()
#: The settings that must match for a rerun to reuse saved results.
SETTINGS = [*TRAIN_SETTINGS, *"obs noise warmup samples".split()]


def example():
    """``examples/prior_vae_gp.py`` as a module (``examples/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("prior_vae_gp", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def nuts_over_gp(ex, t, idx, y, noise, warmup, samples, seed, lengthscale=None, ls_range=None):
    """NUTS over the GP's values (non-centred): the draws of f, the wall time and the MCMC
    object. With ``lengthscale`` None, the lengthscale is sampled too, uniform on
    ``ls_range``. ``ex`` is :func:`example`'s module."""
    eye = ex.JITTER * torch.eye(t.numel())
    chol_fixed = None
    if lengthscale is not None:
        chol_fixed = torch.linalg.cholesky(ex.rbf(t, float(lengthscale)) + eye)

    def model(idx, y):
        if chol_fixed is None:
            ls = pyro.sample("ls", dist.Uniform(*ls_range))
            chol = torch.linalg.cholesky(ex.rbf(t, ls) + eye)
        else:
            chol = chol_fixed
        eta = pyro.sample("eta", dist.Normal(0.0, 1.0).expand([t.numel()]).to_event(1))
        f = pyro.deterministic("f", chol @ eta, event_dim=1)
        pyro.sample("y", dist.Normal(f[idx], noise).to_event(1), obs=y)

    pyro.set_rng_seed(seed)
    kernel = NUTS(model, jit_compile=True, ignore_jit_warnings=True)
    mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=True)
    t0 = time.perf_counter()
    mcmc.run(idx, y)
    seconds = time.perf_counter() - t0
    s = mcmc.get_samples()
    if chol_fixed is not None:
        f = s["eta"] @ chol_fixed.T
    else:
        f = torch.stack(
            [
                torch.linalg.cholesky(ex.rbf(t, float(ls)) + eye) @ e
                for ls, e in zip(s["ls"], s["eta"], strict=True)
            ]
        )
    return f, seconds, mcmc


def divergences(mcmc) -> int:
    return int(sum(len(v) for v in mcmc.diagnostics().get("divergences", {}).values()))


def train_or_load(args, ex) -> pyrovae.VAE:
    work = Path(args.work)
    path = work / f"{NAME}_vae.pt"
    key = json.dumps({k: getattr(args, k) for k in TRAIN_SETTINGS}, sort_keys=True)
    if path.is_file() and (work / f"{NAME}_vae.json").is_file():
        if (work / f"{NAME}_vae.json").read_text() == key:
            print(f"loaded the trained VAE from {path}", flush=True)
            return pyrovae.VAE.load(path)
    vae = ex.train_prior(args)
    work.mkdir(parents=True, exist_ok=True)
    vae.save(path)
    atomic_write_text(work / f"{NAME}_vae.json", key)
    return vae


@restores_threads
def run(args) -> dict:
    ex = example()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) / f"{NAME}.json" if args.out else None
    settings = {k: getattr(args, k) for k in SETTINGS}
    record = {"settings": settings, "functions": []}
    if out is not None and out.is_file():
        saved = json.loads(out.read_text())
        if saved.get("settings") == settings:
            record = saved
            print(f"resuming: {len(record['functions'])} functions already done", flush=True)
    vae = train_or_load(args, ex)
    record["train_seconds"] = record.get("train_seconds") or getattr(vae, "fit_time_", None)
    prior = pyrovae.prior_module(vae, "gp")
    t = ex.grid()
    done = {r["function"] for r in record["functions"]}
    for i in range(args.functions):
        g = torch.Generator().manual_seed(10_000 + args.seed * 1000 + i)
        f_true, ls = ex.draw_gp(1, t, args.ls_range, g)
        f_true, ls = f_true[0], float(ls[0])
        idx, y = ex.observe(f_true, args.obs, args.noise, g)
        if i in done:
            continue
        mean_gp, cov_gp = ex.exact_posterior(t, ls, idx, y, args.noise)
        f, sec, mcmc = ex.nuts_over_z(prior, idx, y, args.noise, args.warmup, args.samples, i)
        row = {"function": i, "lengthscale": ls, **ex.compare(f, f_true, mean_gp, cov_gp)}
        row.update(seconds_z=sec, divergences_z=divergences(mcmc))
        if i < args.timed:
            f_gp, sec_gp, m_gp = nuts_over_gp(
                ex, t, idx, y, args.noise, args.warmup, args.samples, i, lengthscale=ls
            )
            gp = ex.compare(f_gp, f_true, mean_gp, cov_gp)
            row.update(
                seconds_gp=sec_gp,
                divergences_gp=divergences(m_gp),
                rmse_mean_gp_nuts=gp["rmse_mean"],
                coverage_gp_nuts=gp["coverage"],
            )
            if args.gp_lengthscale:
                f_l, sec_l, m_l = nuts_over_gp(
                    ex, t, idx, y, args.noise, args.warmup, args.samples, i, ls_range=args.ls_range
                )
                row.update(
                    seconds_gp_ls=sec_l,
                    divergences_gp_ls=divergences(m_l),
                    rmse_mean_gp_ls_nuts=ex.compare(f_l, f_true, mean_gp, cov_gp)["rmse_mean"],
                )
        record["functions"].append(row)
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
        print(shown, flush=True)
        if out is not None:
            record["summary"] = summary(record["functions"])
            record["machine"] = machine_info(args.threads)
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    record["summary"] = summary(record["functions"])
    record["machine"] = machine_info(args.threads)
    return record


def summary(rows: list[dict]) -> dict:
    """Means over functions (RMSE, coverage) and median times and their ratios."""
    mean = lambda k: statistics.fmean(r[k] for r in rows)  # noqa: E731
    out = {
        "functions": len(rows),
        "rmse_mean": mean("rmse_mean"),
        "rmse_mean_max": max(r["rmse_mean"] for r in rows),
        "coverage_90": mean("coverage"),
        "coverage_90_exact_gp": mean("coverage_gp"),
        "band_width": mean("band_width"),
        "band_width_exact_gp": mean("band_width_gp"),
        "seconds_z_median": statistics.median(r["seconds_z"] for r in rows),
        "divergences_z": sum(r["divergences_z"] for r in rows),
    }
    for key in ("gp", "gp_ls"):
        timed = [r for r in rows if f"seconds_{key}" in r]
        if timed:
            ratio = [r[f"seconds_{key}"] / r["seconds_z"] for r in timed]
            out[f"timed_{key}"] = len(timed)
            out[f"seconds_{key}_median"] = statistics.median(r[f"seconds_{key}"] for r in timed)
            out[f"seconds_z_median_timed_{key}"] = statistics.median(r["seconds_z"] for r in timed)
            out[f"speedup_{key}_median"] = statistics.median(ratio)
            out[f"speedup_{key}_total"] = sum(r[f"seconds_{key}"] for r in timed) / sum(
                r["seconds_z"] for r in timed
            )
            out[f"divergences_{key}"] = sum(r[f"divergences_{key}"] for r in timed)
    return out


def markdown(record: dict) -> str:
    s, c = record["summary"], record["settings"]
    lines = [
        f"GP on 100 grid points, lengthscale uniform on {c['ls_range']}; VAE latent "
        f"{c['latent_dim']}, trained on {c['train']} draws for {c['epochs']} epochs; "
        f"{c['obs']} observations, noise sd {c['noise']}; NUTS {c['warmup']} warm-up + "
        f"{c['samples']} draws.",
        "",
        "| quantity | value |",
        "|---|---:|",
        f"| functions | {s['functions']} |",
        f"| posterior-mean RMSE vs exact GP (prior sd), mean | {s['rmse_mean']:.3f} |",
        f"| ... worst function | {s['rmse_mean_max']:.3f} |",
        f"| 90 % band coverage, PriorVAE | {s['coverage_90']:.3f} |",
        f"| 90 % band coverage, exact GP | {s['coverage_90_exact_gp']:.3f} |",
        f"| mean 90 % band width, PriorVAE / exact GP | {s['band_width']:.2f} / "
        f"{s['band_width_exact_gp']:.2f} |",
        f"| NUTS over z, median seconds | {s['seconds_z_median']:.1f} |",
        f"| divergences over z (all functions) | {s['divergences_z']} |",
    ]
    for key, what in (("gp", "GP values, true lengthscale"), ("gp_ls", "GP values + lengthscale")):
        if f"timed_{key}" in s:
            lines += [
                f"| NUTS over {what}: functions timed | {s[f'timed_{key}']} |",
                f"| ... median seconds (z on the same functions) | "
                f"{s[f'seconds_{key}_median']:.1f} ({s[f'seconds_z_median_timed_{key}']:.1f}) |",
                f"| ... speed-up of z, median of ratios / total | "
                f"{s[f'speedup_{key}_median']:.1f}x / {s[f'speedup_{key}_total']:.1f}x |",
                f"| ... divergences | {s[f'divergences_{key}']} |",
            ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = example().parser()
    p.description = __doc__.split("\n\n")[0]
    p.add_argument("--functions", type=int, default=100, help="held-out functions")
    p.add_argument("--timed", type=int, default=10, help="functions also run with NUTS on the GP")
    p.add_argument(
        "--gp-lengthscale",
        action="store_true",
        help="also time NUTS over the GP's values with the lengthscale inferred",
    )
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--work", default="/tmp/pyrovae_bench_priorvae", help="trained VAE here")
    p.add_argument("--out", metavar="DIR", help="write priorvae.json and priorvae.md here")
    args = p.parse_args(argv)
    args.ls_range = list(args.ls_range)
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    record = run(args)
    table = markdown(record)
    print(table)
    if args.out:
        atomic_write_text(Path(args.out) / f"{NAME}.md", table)
    return record


if __name__ == "__main__":
    main()

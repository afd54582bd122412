"""Fitting held-out Heston surfaces: the notes' Adam fit of z, the NUTS posterior mean,
and the pricer decoder (issue 19).

Two models are trained on the notes' 625 surfaces (``--data heston``, cells present in
every surface) and cached in ``OUT/heston_fit/``:

* ``mlp``: the notes' VAE (encoder 32-64-128, decoder 128-64-32, LeakyReLU, latent 4,
  Gaussian likelihood of scale 0.1 on standardized total variance, beta 1, Adam lr 0.01
  with weight decay 0.01, learning rate halved on a 10-epoch plateau);
* ``pricer``: the same encoder and MLP widths with the pricer decoder
  (``--net heston-pricer``: z -> Heston parameters -> the pricer), on implied vols
  (unscaled), Gaussian likelihood of scale 0.01 (one vol point).

Held-out surfaces: ``--surfaces`` parameter sets drawn uniformly in the notes' ranges
(``params=random``, seed ``--seed``, v0 = 0.05), priced on the same grid; each is
fitted on the models' cells under five observation patterns: ``all`` cells, ``hide50``
and ``hide90`` (50 % and 90 % hidden at random), ``short`` (maturities of at most 52
days observed) and ``atm`` (|k| <= 0.1 observed). Methods:

* (a) ``adam``: the notes' fit, Adam on z (``--adam-steps``, lr 0.05, from z = 0)
  minimising the squared error on the observed cells, MLP decoder;
* (b) ``nuts``: NUTS over z ~ N(0, I) given the observed cells, obs ~ Normal(decoder
  mean, noise) with the noise level the model's reconstruction RMSE on the validation
  surfaces; the five patterns of a surface are sampled in one chain over their joint
  (independent) posterior (``--warmup``/``--draws``); the posterior mean of the
  surface, and the 5 %/95 % quantiles of the posterior predictive (decoded means plus
  noise) as the 90 % band;
* (c) ``pricer``: Adam on the pricer decoder's z (``--pricer-steps``), squared error in
  implied vol; its band from the Laplace approximation at that optimum, N(z*, H^-1) with
  the Gauss-Newton Hessian H = J^T J / noise^2 + I (J by central differences), through
  the same predictive (NUTS through the pricer is out of reach on this machine: about
  0.3 s per gradient of one surface).

RMSE in volatility points (100 x implied vol) over all the model's cells (``rmse``) and
over the hidden ones (``rmse_hidden``); coverage of the hidden cells by the 90 % bands;
and static-arbitrage violation rates (:mod:`pyrovae.finance.arbitrage`) of
``--prior-samples`` prior samples of each decoder on the kept cells. Results per surface
are JSON files in ``OUT/heston_fit/`` (the run resumes where it stopped; ``--time-limit``
stops before a new surface once that many seconds have passed), and the summary over
all of them is ``OUT/heston_fit.json`` and ``.md``.

    python benchmarks/bench_heston_fit.py --surfaces 100 --out benchmarks/results
    python benchmarks/bench_heston_fit.py --grid small --surfaces 2 ...   # the smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, restores_threads, write_outputs  # noqa: E402

from pyrovae.api import VAE, load  # noqa: E402
from pyrovae.data import load_data  # noqa: E402
from pyrovae.data.heston import HestonSpec, heston_surfaces  # noqa: E402
from pyrovae.finance import arbitrage_report  # noqa: E402

#: The smoke test's grid: 4 maturities x 13 strikes, 3^4 = 81 training surfaces.
SMALL = {"maturity_days": [6, 30, 91, 182], "strikes": 12, "levels": 3}
PATTERNS = ("all", "hide50", "hide90", "short", "atm")
SHORT_DAYS = 52
ATM_K = 0.1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", choices=("notes", "small"), default="notes")
    p.add_argument("--surfaces", type=int, default=100)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--epochs", type=int, default=300, help="epochs of the notes' VAE")
    p.add_argument("--pricer-epochs", type=int, default=40)
    p.add_argument("--pricer-budget", type=float, default=1200.0, help="seconds")
    p.add_argument("--adam-steps", type=int, default=400)
    p.add_argument("--pricer-steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--laplace-draws", type=int, default=200)
    p.add_argument("--prior-samples", type=int, default=1000)
    p.add_argument("--time-limit", type=float, default=None, help="seconds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    if args.surfaces < 1 or args.warmup < 1 or args.draws < 2 or args.prior_samples < 1:
        p.error("--surfaces, --warmup and --prior-samples must be >= 1, --draws >= 2")
    return args


# -- models --------------------------------------------------------------------------------
def _net(**kw) -> dict:
    return dict(latent_dim=4, hidden=(32, 64, 128), activation="leaky_relu", seed=0, **kw)


def _fit(est: VAE, data, path: Path, weight_decay: float) -> VAE:
    """Train through the build-and-train seam (for Adam's weight decay) and save."""
    est.check_params()
    pyro.set_rng_seed(est.seed)
    est.build(data.data_shape, est.likelihood)
    est.check_runnable(data.train)
    trainer = est.make_trainer(None, {})
    for group in trainer.optimizer.param_groups:
        group["weight_decay"] = weight_decay
    est.fit_with(trainer, data.train, data.val)
    est.save(path)
    return est


def models(args, grid: dict, folder: Path):
    """The two models (trained, or loaded from ``folder``) and their data."""
    mlp_data = load_data("heston", scale="standardize", data_options=grid)
    iv_options = {**grid, "observable": "iv"}
    pricer_data = load_data("heston", data_options=iv_options)
    common = dict(learning_rate=0.01, lr_decay_patience=10, patience=40, batch_size=32)
    path = folder / "mlp.pt"
    if path.exists():
        mlp = load(path)
    else:
        est = VAE(**_net(likelihood="gaussian", epochs=args.epochs, **common))
        mlp = _fit(est, mlp_data, path, 0.01)
    path = folder / "pricer.pt"
    if path.exists():
        pricer = load(path)
    else:
        est = VAE(
            **_net(
                net="heston-pricer",
                net_options=iv_options,
                likelihood="gaussian",
                likelihood_options={"scale": 0.01},
                epochs=args.pricer_epochs,
                time_budget=args.pricer_budget,
                **common,
            )
        )
        pricer = _fit(est, pricer_data, path, 0.01)
    return mlp, mlp_data, pricer, pricer_data


def frozen_mean(est: VAE):
    module = est.module_
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    return lambda z: module.decode(z).mean


def validation_noise(est: VAE, x: torch.Tensor) -> float:
    """RMSE of the reconstructions (at the encoder's mean) of ``x``, model units."""
    with torch.no_grad():
        recon = est.module_.decode(est.module_.encode(x).mean).mean
    return float((recon - x).square().mean().sqrt())


# -- held-out surfaces ---------------------------------------------------------------------------
class Setting:
    """Grid geometry of the models' rows and the maps between units."""

    def __init__(self, grid: dict, mlp_data):
        self.surfaces = heston_surfaces(**grid)
        self.keep = self.surfaces.cells("common")
        tau = np.broadcast_to(self.surfaces.maturities[:, None], self.keep.shape)[self.keep]
        k = np.broadcast_to(self.surfaces.log_moneyness[None, :], self.keep.shape)[self.keep]
        self.tau = torch.from_numpy(tau.copy())
        self.k = torch.from_numpy(k.copy())
        self.scaler = mlp_data.scaler

    def mlp_iv(self, rows: torch.Tensor) -> torch.Tensor:
        """MLP rows (standardized w) -> implied vol (w < 0 read as 0), float64."""
        w = self.scaler.inverse(rows).double()
        return torch.sqrt(torch.clamp(w, min=0.0) / self.tau)

    def mlp_rows(self, iv: torch.Tensor) -> torch.Tensor:
        return self.scaler.transform((iv**2 * self.tau).float())

    def patterns(self, valid: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``(5, D)`` observed masks of :data:`PATTERNS` (within the valid cells)."""
        u = torch.from_numpy(rng.random(valid.shape[0]))
        short = self.tau <= SHORT_DAYS / 365 + 1e-12
        if not bool(short.any()):
            short = self.tau <= self.tau.min()
        masks = [torch.ones_like(valid), u >= 0.5, u >= 0.9, short, self.k.abs() <= ATM_K]
        return torch.stack(masks) & valid


def adam_z(mean_fn, target, observed, steps: int, lr: float = 0.05) -> torch.Tensor:
    """Adam on z ``(S, 4)`` from 0: squared error on each pattern's observed cells."""
    z = torch.zeros(observed.shape[0], 4, requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr)
    target = torch.where(observed, target, torch.zeros_like(target))
    for _ in range(steps):
        opt.zero_grad()
        err = torch.where(observed, mean_fn(z) - target, torch.zeros_like(target))
        err.square().sum().backward()
        opt.step()
    return z.detach()


def nuts_z(mean_fn, target, observed, noise: float, warmup: int, draws: int, seed: int):
    """NUTS over the patterns' independent z ``(S, 4)`` jointly: draws ``(draws, S, 4)``."""
    target = torch.where(observed, target, torch.zeros_like(target))

    def model():
        z = pyro.sample("z", dist.Normal(torch.zeros(observed.shape[0], 4), 1.0).to_event(2))
        like = dist.Normal(mean_fn(z), noise).mask(observed).to_event(2)
        pyro.sample("obs", like, obs=target)

    pyro.set_rng_seed(seed)
    mcmc = MCMC(NUTS(model), num_samples=draws, warmup_steps=warmup, disable_progbar=True)
    mcmc.run()
    div = sum(len(v) for v in mcmc.diagnostics().get("divergences", {}).values())
    return mcmc.get_samples()["z"], int(div)


def central_jacobian(mean_fn, z: torch.Tensor, h: float = 1e-2) -> torch.Tensor:
    """The Jacobian of ``mean_fn`` at ``z`` (one z ``(d,)`` or a batch ``(S, d)``) by
    central differences of step ``h``: ``(..., D, d)``, float64."""
    cols = []
    with torch.no_grad():
        for j in range(z.shape[-1]):
            e = torch.zeros_like(z)
            e[..., j] = h
            cols.append((mean_fn(z + e) - mean_fn(z - e)).double() / (2 * h))
    return torch.stack(cols, -1)


def laplace_z(mean_fn, z_hat, observed, noise: float, draws: int, h: float = 1e-2):
    """Draws ``(draws, S, 4)`` of N(z*, H^-1), H = J^T J / noise^2 + I on the observed
    cells, J by central differences of step ``h``."""
    s, d = z_hat.shape
    with torch.no_grad():
        jac = central_jacobian(mean_fn, z_hat, h) * observed[..., None]  # (S, D, 4)
        hess = jac.transpose(-1, -2) @ jac / noise**2 + torch.eye(d, dtype=torch.float64)
        chol = torch.linalg.cholesky(torch.linalg.inv(hess))
        eps = torch.randn(draws, s, d, 1, dtype=torch.float64)
        return (z_hat.double() + (chol @ eps).squeeze(-1)).float()


def band_metrics(iv_draws, truth, observed, valid) -> dict:
    """Posterior-mean RMSE (vol points, all and hidden valid cells) and the 90 % band's
    coverage of the hidden cells, per pattern."""
    mean = iv_draws.mean(0)
    q = torch.tensor([0.05, 0.95], dtype=iv_draws.dtype)
    lo, hi = torch.quantile(iv_draws, q, dim=0)
    out = _rmse(mean, truth, observed, valid)
    hidden = valid & ~observed
    inside = (truth >= lo) & (truth <= hi)
    out["coverage90"] = [
        float(inside[i][hidden[i]].float().mean()) if hidden[i].any() else None
        for i in range(len(hidden))
    ]
    return out


def _rmse(iv, truth, observed, valid) -> dict:
    err = (iv - truth) * 100
    hidden = valid & ~observed
    all_ = [float(err[i][valid].square().mean().sqrt()) for i in range(len(observed))]
    hid = [
        float(err[i][hidden[i]].square().mean().sqrt()) if hidden[i].any() else None
        for i in range(len(observed))
    ]
    return {"rmse": all_, "rmse_hidden": hid}


def fit_surface(i, truth, ctx, args) -> dict:
    """All methods on held-out surface ``i`` (implied vols on the kept cells)."""
    rng = np.random.default_rng([args.seed, i])
    valid = ~torch.isnan(truth)
    truth = torch.nan_to_num(truth, nan=0.0)
    observed = ctx["setting"].patterns(valid, rng)
    s = len(PATTERNS)
    setting, mlp_mean, pricer_mean = ctx["setting"], ctx["mlp_mean"], ctx["pricer_mean"]
    record: dict = {"surface": i, "params": ctx["params"][i].tolist(), "patterns": list(PATTERNS)}
    record["observed_cells"] = observed.sum(1).tolist()
    x_mlp = setting.mlp_rows(truth).expand(s, -1)

    t0 = time.perf_counter()
    z = adam_z(mlp_mean, x_mlp, observed, args.adam_steps)
    with torch.no_grad():
        iv = setting.mlp_iv(mlp_mean(z))
    record["adam"] = {**_rmse(iv, truth, observed, valid), "seconds": time.perf_counter() - t0}

    t0 = time.perf_counter()
    zs, div = nuts_z(
        mlp_mean, x_mlp, observed, ctx["mlp_noise"], args.warmup, args.draws, args.seed + i
    )
    with torch.no_grad():
        rows = mlp_mean(zs)
        iv_draws = setting.mlp_iv(rows + ctx["mlp_noise"] * torch.randn_like(rows))
    record["nuts"] = {
        **band_metrics(iv_draws, truth, observed, valid),
        "divergences": div,
        "seconds": time.perf_counter() - t0,
    }

    t0 = time.perf_counter()
    x_iv = truth.float().expand(s, -1)
    z = adam_z(pricer_mean, x_iv, observed, args.pricer_steps)
    with torch.no_grad():
        iv = pricer_mean(z).double()
    fit = _rmse(iv, truth, observed, valid)
    zs = laplace_z(pricer_mean, z, observed, ctx["pricer_noise"], args.laplace_draws)
    with torch.no_grad():
        draws = pricer_mean(zs.reshape(-1, 4)).reshape(*zs.shape[:2], -1).double()
        draws = draws + ctx["pricer_noise"] * torch.randn_like(draws)
    bands = band_metrics(draws, truth, observed, valid)
    record["pricer"] = {
        **fit,
        "laplace_rmse": bands["rmse"],
        "coverage90": bands["coverage90"],
        "seconds": time.perf_counter() - t0,
    }
    return record


# -- arbitrage of prior samples ---------------------------------------------------------------
def prior_arbitrage(mlp, pricer, setting, n: int, seed: int) -> dict:
    torch.manual_seed(seed)
    k = setting.surfaces.log_moneyness
    tau = setting.surfaces.maturities[:, None]
    out = {}
    with torch.no_grad():
        rows = frozen_mean(mlp)(torch.randn(n, 4))
        w = setting.scaler.inverse(rows).double().numpy()
        out["mlp"] = arbitrage_report(setting.surfaces.to_grid(w, "common"), k).as_dict()
        out["mlp"]["negative_w_cells"] = int((w < 0).sum())
        ivs = torch.cat([frozen_mean(pricer)(z) for z in torch.randn(n, 4).split(100)])
        w = ivs.double().numpy() ** 2 * np.broadcast_to(tau, setting.keep.shape)[setting.keep]
        out["pricer"] = arbitrage_report(setting.surfaces.to_grid(w, "common"), k).as_dict()
    return out


# -- summary ----------------------------------------------------------------------------------
def summarize(records: list[dict]) -> dict:
    """Mean and median per method and pattern over the surfaces done."""
    out: dict = {}
    for method, keys in (
        ("adam", ("rmse", "rmse_hidden")),
        ("nuts", ("rmse", "rmse_hidden", "coverage90")),
        ("pricer", ("rmse", "rmse_hidden", "laplace_rmse", "coverage90")),
    ):
        for key in keys:
            for j, pattern in enumerate(PATTERNS):
                vals = [r[method][key][j] for r in records if r[method][key][j] is not None]
                if vals:
                    out.setdefault(method, {}).setdefault(pattern, {})[key] = {
                        "mean": statistics.fmean(vals),
                        "median": statistics.median(vals),
                        "n": len(vals),
                    }
        out.setdefault(method, {})["seconds_per_surface"] = statistics.fmean(
            r[method]["seconds"] for r in records
        )
    out["nuts"]["divergences"] = sum(r["nuts"]["divergences"] for r in records)
    return out


def table(record: dict) -> str:
    s = record["summary"]
    lines = [
        f"Held-out Heston surfaces: {record['surfaces_done']} of {record['surfaces']}; "
        "RMSE in vol points, mean over surfaces, over all cells / over the hidden cells; "
        "coverage of the hidden cells by the 90 % bands",
        "",
        "| pattern | (a) Adam, MLP | (b) NUTS mean, MLP | (c) Adam, pricer "
        "| (b) coverage | (c) coverage (Laplace) |",
        "|---|---|---|---|---|---|",
    ]

    def cell(method, pattern, key):
        v = s.get(method, {}).get(pattern, {}).get(key)
        return "–" if v is None else f"{v['mean']:.3f}"

    def both(method, pattern):
        return f"{cell(method, pattern, 'rmse')} / {cell(method, pattern, 'rmse_hidden')}"

    for pattern in PATTERNS:
        lines.append(
            f"| {pattern} | {both('adam', pattern)} | {both('nuts', pattern)} "
            f"| {both('pricer', pattern)} | {cell('nuts', pattern, 'coverage90')} "
            f"| {cell('pricer', pattern, 'coverage90')} |"
        )
    lines.append("")
    for name, rep in record["arbitrage"].items():
        lines.append(
            f"Prior samples of the {name} decoder: calendar rate {rep['calendar_rate']:.4g}, "
            f"butterfly rate {rep['butterfly_rate']:.4g}, "
            f"{rep['surfaces_with_violations']} of {rep['surfaces']} surfaces with violations"
        )
    return "\n".join(lines) + "\n"


@restores_threads
def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    grid = dict(SMALL) if args.grid == "small" else {}
    out = Path(args.out)
    folder = out / "heston_fit"
    folder.mkdir(parents=True, exist_ok=True)
    mlp, mlp_data, pricer, pricer_data = models(args, grid, folder)
    setting = Setting(grid, mlp_data)
    arb_path = folder / "arbitrage.json"
    if arb_path.exists():
        arbitrage = json.loads(arb_path.read_text())
    else:
        arbitrage = prior_arbitrage(mlp, pricer, setting, args.prior_samples, args.seed)
        arb_path.write_text(json.dumps(arbitrage, indent=1))
    held = HestonSpec(**grid, params="random", n=args.surfaces, seed=args.seed, cells="all")
    test = heston_surfaces(held)
    truths = torch.from_numpy(test.iv[:, setting.keep])
    ctx = {
        "setting": setting,
        "params": test.params,
        "mlp_mean": frozen_mean(mlp),
        "pricer_mean": frozen_mean(pricer),
        "mlp_noise": validation_noise(mlp, mlp_data.val),
        "pricer_noise": validation_noise(pricer, pricer_data.val),
    }
    for i in range(args.surfaces):
        path = folder / f"surface-{args.seed}-{i:03d}.json"
        if path.exists():
            continue
        if args.time_limit is not None and time.perf_counter() - start > args.time_limit:
            break
        record = fit_surface(i, truths[i], ctx, args)
        path.write_text(json.dumps(record))
        rmse = {m: [round(v, 3) for v in record[m]["rmse"]] for m in ("adam", "nuts", "pricer")}
        print(f"surface {i}: rmse {json.dumps(rmse)}", flush=True)
    records = [
        json.loads((folder / f"surface-{args.seed}-{i:03d}.json").read_text())
        for i in range(args.surfaces)
        if (folder / f"surface-{args.seed}-{i:03d}.json").exists()
    ]
    record = {
        "grid": args.grid,
        "surfaces": args.surfaces,
        "surfaces_done": len(records),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "models": {
            "mlp": {"epochs": mlp.n_epochs_, "noise_standardized": ctx["mlp_noise"]},
            "pricer": {"epochs": pricer.n_epochs_, "noise_iv": ctx["pricer_noise"]},
        },
        "arbitrage": arbitrage,
        "summary": summarize(records) if records else {},
        "machine": machine_info(args.threads),
    }
    write_outputs(out, "heston_fit", record, table(record) if records else "no surfaces yet\n")
    return record


if __name__ == "__main__":
    rec = main()
    print(json.dumps({k: rec[k] for k in ("surfaces_done", "models", "arbitrage")}, indent=1))
    print(table(rec) if rec["summary"] else "no surfaces yet")

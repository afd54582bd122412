"""Image completion with Pyro's CVAE protocol: 1, 2 or 3 of the 4 quadrants observed.

One VAE (Bernoulli likelihood, MLP) is trained with ``mask_rate`` (entries dropped at
random in every minibatch, so that its guide reads partial images) on binarized images;
then, for each held-out image and each number of observed quadrants (Pyro's CVAE example:
1 = the bottom-left quadrant, 2 = the left half, 3 = all but the bottom-right quadrant),
the model is conditioned on the observed quadrants by each method (``guide``, ``svi``,
``nuts``; :meth:`pyrovae.api.Estimator.condition`) and scored on the missing ones:

* ``nll_predictive``: -log (1/S) sum_s p(x_miss | z_s) with z_s the method's S >= 1000
  posterior draws: the posterior predictive log score of the method (for exact posterior
  draws, a consistent estimate of -log p(x_miss | x_obs) that errs high by O(1/S));
* ``nll_is``: the model's importance-sampled -log p(x_miss | x_obs) with K = ``--k``
  guide proposals (:func:`pyrovae.inference.conditioning.conditional_log_likelihood`),
  one figure per model and quadrant setting (it does not depend on the method);
* seconds per image of each method (wall clock, one process, interleaved).

Nats per image (the sum over the missing pixels). Data (``--data``): ``digits``
(scikit-learn's 8x8 digits thresholded at 0.5; offline) or a folder holding static
binarized MNIST (``binarized_mnist_train.amat`` for training and
``binarized_mnist_valid.amat`` for the held-out images; never downloaded here).

    OMP_NUM_THREADS=1 python benchmarks/bench_completion.py --data digits --out results/
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_binarized_mnist, machine_info, restores_threads  # noqa: E402

from pyrovae import sites  # noqa: E402
from pyrovae.api import VAE  # noqa: E402
from pyrovae.atomic import atomic_write_text  # noqa: E402
from pyrovae.data import load_data  # noqa: E402
from pyrovae.inference.conditioning import conditional_log_likelihood  # noqa: E402

NAME = "completion"
#: Pyro's CVAE example: the observed quadrants for 1, 2 and 3 inputs.
QUADRANTS = {
    1: ("bottom-left",),
    2: ("top-left", "bottom-left"),
    3: ("top-left", "top-right", "bottom-left"),
}
SETTINGS = "data train_rows images epochs latent_dim hidden mask_rate draws k seed methods".split()


def quadrant_mask(side: int, observed: int) -> torch.Tensor:
    """``bool`` ``(side, side)``, ``True`` on the observed quadrants of Pyro's protocol."""
    h = side // 2
    mask = torch.zeros(side, side, dtype=torch.bool)
    where = {
        "top-left": (slice(0, h), slice(0, h)),
        "top-right": (slice(0, h), slice(h, side)),
        "bottom-left": (slice(h, side), slice(0, h)),
    }
    for q in QUADRANTS[observed]:
        mask[where[q]] = True
    return mask


def load(args) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    if args.data == "digits":
        d = load_data("digits")
        train = (d.train > 0.5).float().reshape(-1, 64)
        held = (d.test > 0.5).float().reshape(-1, 64)
        return train, held, 8, "digits thresholded at 0.5 (train / test)"
    root = Path(args.data)
    train = load_binarized_mnist(root / "binarized_mnist_train.amat", args.train_rows)
    held = load_binarized_mnist(root / "binarized_mnist_valid.amat", args.images)
    return train, held, 28, "static binarized MNIST (train / validation)"


def predictive_nll(est, z: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> float:
    """-log (1/S) sum_s p(x_miss | z_s) for one row ``x`` ``(D,)`` and draws ``z`` ``(S, L)``."""
    with torch.no_grad():
        px = est.module_.decode(z)  # batch (S,), event (D,)
        base = px.base_dist if hasattr(px, "base_dist") else px
        lp = base.log_prob(x.expand(z.shape[0], -1))  # (S, D)
        lp = (lp * (~mask).to(lp.dtype)).sum(-1)
        return -float(torch.logsumexp(lp, 0) - math.log(z.shape[0]))


def method_options(method: str, args) -> dict:
    if method == "svi":
        return {"steps": args.svi_steps, "lr": args.svi_lr}
    if method == "nuts":
        return {"warmup": args.warmup, "chains": args.chains}
    return {}


@restores_threads
def run(args) -> dict:
    torch.set_num_threads(args.threads)
    train, held, side, data_name = load(args)
    held = held[: args.images]
    out = Path(args.out) / f"{NAME}.json" if args.out else None
    settings = {k: getattr(args, k) for k in SETTINGS}
    record = {"settings": settings, "data_name": data_name, "rows": []}
    if out is not None and out.is_file():
        saved = json.loads(out.read_text())
        if saved.get("settings") == settings:
            record = saved
            print(f"resuming: {len(record['rows'])} results already done", flush=True)
    t0 = time.perf_counter()
    est = VAE(
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        likelihood="bernoulli",
        epochs=args.epochs,
        mask_rate=args.mask_rate,
        patience=0,
        seed=args.seed,
    ).fit(train)
    record["train_seconds"] = time.perf_counter() - t0
    print(f"trained in {record['train_seconds']:.0f} s", flush=True)
    done = {(r["observed"], r["image"], r["method"]) for r in record["rows"]}
    is_done = {r["observed"] for r in record.get("nll_is", [])}
    record.setdefault("nll_is", [])
    for observed in (1, 2, 3):
        mask1 = quadrant_mask(side, observed).reshape(-1)
        mask = mask1.expand(held.shape[0], -1)
        if observed not in is_done:
            ll, se = conditional_log_likelihood(
                est.module_,
                est.as_input(held),
                mask.reshape(held.shape[0], *est.data_shape_),
                samples=args.k,
                seed=args.seed,
            )
            record["nll_is"].append(
                {
                    "observed": observed,
                    "nll": -float(ll.mean()),
                    "se_mc": float(se.mean()),
                    "se_images": float(ll.std() / math.sqrt(ll.numel()))
                    if ll.numel() > 1
                    else math.nan,
                }
            )
        for i in range(held.shape[0]):
            for method in args.methods:
                if (observed, i, method) in done:
                    continue
                x = held[i : i + 1]
                t1 = time.perf_counter()
                comp = est.condition(
                    x,
                    mask=mask1[None],
                    method=method,
                    draws=args.draws,
                    seed=args.seed + i,
                    **method_options(method, args),
                )
                seconds = time.perf_counter() - t1
                z = comp.z[sites.LATENT][:, 0]
                row = {
                    "observed": observed,
                    "image": i,
                    "method": method,
                    "nll_predictive": predictive_nll(est, z, x[0], mask1),
                    "seconds": seconds,
                }
                summary = comp.diagnostics.get("summary")
                if summary:
                    row.update({f"nuts_{k}": v for k, v in summary.items()})
                record["rows"].append(row)
                print(
                    {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()},
                    flush=True,
                )
                if out is not None:
                    save(out, record, args)
    record["summary"] = summarize(record)
    record["machine"] = machine_info(args.threads)
    return record


def save(out: Path, record: dict, args) -> None:
    record["summary"] = summarize(record)
    record["machine"] = machine_info(args.threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")


def summarize(record: dict) -> list[dict]:
    table = []
    for observed in (1, 2, 3):
        for method in record["settings"]["methods"]:
            rows = [
                r for r in record["rows"] if r["observed"] == observed and r["method"] == method
            ]
            if not rows:
                continue
            nll = [r["nll_predictive"] for r in rows]
            entry = {
                "observed": observed,
                "method": method,
                "images": len(rows),
                "nll_predictive": statistics.fmean(nll),
                "nll_predictive_se": statistics.stdev(nll) / math.sqrt(len(nll))
                if len(nll) > 1
                else math.nan,
                "seconds_per_image": statistics.fmean(r["seconds"] for r in rows),
            }
            if method == "nuts":
                entry["max_rhat"] = max((r.get("nuts_max_rhat") or math.nan) for r in rows)
                entry["divergences"] = sum(r.get("nuts_divergences", 0) for r in rows)
            table.append(entry)
    return table


def markdown(record: dict) -> str:
    c = record["settings"]
    is_nll = {r["observed"]: r for r in record["nll_is"]}
    lines = [
        f"{record['data_name']}; VAE latent {c['latent_dim']}, hidden {c['hidden']}, "
        f"{c['epochs']} epochs, mask rate {c['mask_rate']}; {c['draws']} posterior draws "
        f"per image; importance-sampled figure with K = {c['k']} guide proposals.",
        "",
        "| observed quadrants | method | images | -log p(x_miss given x_obs), predictive (nats) "
        "| ± s.e. | importance-sampled, model (nats) | seconds / image |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for e in record["summary"]:
        is_row = is_nll.get(e["observed"])
        lines.append(
            f"| {e['observed']} | {e['method']} | {e['images']} | {e['nll_predictive']:.2f} | "
            f"{e['nll_predictive_se']:.2f} | {is_row['nll']:.2f} | {e['seconds_per_image']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="digits", help="digits, or a binarized MNIST folder")
    p.add_argument("--train-rows", type=int, help="MNIST: read at most this many training images")
    p.add_argument("--images", type=int, default=20, help="held-out images completed")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--latent-dim", type=int, default=8)
    p.add_argument("--hidden", type=int, nargs="+", default=[200])
    p.add_argument("--mask-rate", type=float, default=0.5)
    p.add_argument("--draws", type=int, default=1000, help="posterior draws per image (S)")
    p.add_argument("--k", type=int, default=1000, help="importance proposals (K)")
    p.add_argument("--methods", nargs="+", default=["guide", "svi", "nuts"])
    p.add_argument("--svi-steps", type=int, default=300)
    p.add_argument("--svi-lr", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", metavar="DIR", help="write completion.json and completion.md here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    record = run(args)
    table = markdown(record)
    print(table)
    if args.out:
        save(Path(args.out) / f"{NAME}.json", record, args)
        atomic_write_text(Path(args.out) / f"{NAME}.md", table)
    return record


if __name__ == "__main__":
    main()

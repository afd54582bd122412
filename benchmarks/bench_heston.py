"""Time to price and invert the lecture notes' Heston surfaces, against QuantLib.

pyrovae's side: :func:`pyrovae.finance.heston_implied_vol` on the default ``--data
heston`` grid (625 parameter sets x 17 maturities x 101 strikes = 1,073,125 options):
the out-of-the-money price of every option (little-trap characteristic function,
Lewis integral, composite Gauss–Legendre) and its Black–Scholes implied volatility,
vectorised, float64, ``--rounds`` times; the table gives the median, min and max, the
price-only time, and the arbitrage diagnostics of the resulting surfaces.

QuantLib's side: the same options, one at a time, as a QuantLib user writes it:
``AnalyticHestonEngine(model)`` (QuantLib's default integration) for the price of the
out-of-the-money option, then ``VanillaOption.impliedVolatility(price, process,
1e-12, 1000, 1e-7, 4.0)``. Looping over all 1,073,125 options takes minutes, so a
seeded subset of ``--ql-surfaces`` whole surfaces is timed and the time per option is
extrapolated to the grid (the record says so). On the same subset the implied
volatilities are compared with ours wherever QuantLib's inversion succeeds on a price
above 1e-9 (below that it returns its lower bound or rounding noise); the
``--ql-accurate`` surfaces where the two differ most are priced again with QuantLib's
adaptive Gauss–Lobatto engine at relative tolerance 1e-13, its most accurate setting, to
say which side the differences come from.

    python benchmarks/bench_heston.py --rounds 3 --threads 1 --out results/
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, summarize, write_outputs  # noqa: E402

from pyrovae.data.heston import HestonSpec  # noqa: E402
from pyrovae.finance import (  # noqa: E402
    HestonParams,
    arbitrage_report,
    heston_implied_vol,
    heston_otm_price,
    total_variance,
)

#: A small grid for smoke tests (``--grid small``).
SMALL = {"maturity_days": (6, 30, 182), "strikes": 20, "levels": 2}


def _spec(args) -> HestonSpec:
    return HestonSpec(**SMALL) if args.grid == "small" else HestonSpec()


def _ours(spec: HestonSpec, rounds: int):
    params = spec.parameters()
    p = HestonParams(spec.v0, *torch.from_numpy(params).unbind(1))
    k = torch.from_numpy(spec.log_moneyness)
    tau = torch.from_numpy(spec.maturities)
    price_s, total_s = [], []
    iv = ok = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        heston_otm_price(p, k, tau)
        price_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        iv, ok = heston_implied_vol(p, k, tau, iv_tol=spec.iv_tol)
        total_s.append(time.perf_counter() - t0)
    return params, iv, ok, price_s, total_s


def _quantlib(spec: HestonSpec, params: np.ndarray, rows: list[int], accurate: bool):
    """QuantLib's implied vols of the surfaces ``rows`` (NaN where its inversion fails),
    their prices, and the seconds spent."""
    import QuantLib as ql

    today = ql.Date(1, 1, 2020)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    flat = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc))
    spot = ql.QuoteHandle(ql.SimpleQuote(1.0))
    vol = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), 0.2, dc))
    bs_process = ql.BlackScholesMertonProcess(spot, flat, flat, vol)
    k = spec.log_moneyness
    iv = np.full((len(rows), len(spec.maturity_days), k.size), np.nan)
    price = np.full_like(iv, np.nan)
    t0 = time.perf_counter()
    for a, row in enumerate(rows):
        kappa, eta, rho, sigma = params[row]
        model = ql.HestonModel(ql.HestonProcess(flat, flat, spot, spec.v0, kappa, eta, sigma, rho))
        engine = (
            ql.AnalyticHestonEngine(model, 1e-13, 1_000_000)
            if accurate
            else ql.AnalyticHestonEngine(model)
        )
        for t, days in enumerate(spec.maturity_days):
            exercise = ql.EuropeanExercise(today + int(days))
            for j, kj in enumerate(k):
                kind = ql.Option.Call if kj >= 0 else ql.Option.Put
                opt = ql.VanillaOption(ql.PlainVanillaPayoff(kind, math.exp(kj)), exercise)
                opt.setPricingEngine(engine)
                try:
                    price[a, t, j] = opt.NPV()
                except RuntimeError:  # the adaptive engine can exhaust its evaluations
                    continue
                try:
                    iv[a, t, j] = opt.impliedVolatility(
                        price[a, t, j], bs_process, 1e-12, 1000, 1e-7, 4.0
                    )
                except RuntimeError:
                    pass
    return iv, price, time.perf_counter() - t0


def _compare(ours: np.ndarray, ok: np.ndarray, theirs: np.ndarray, price: np.ndarray) -> dict:
    both = ok & ~np.isnan(theirs) & (np.nan_to_num(price) > 1e-9)
    diff = np.abs(ours - theirs)[both]
    above = np.abs(ours - theirs)[both & (np.nan_to_num(price) > 1e-6)]
    return {
        "cells_compared": int(both.sum()),
        "max_abs_iv_difference": float(diff.max()) if diff.size else None,
        "max_abs_iv_difference_price_above_1e-6": float(above.max()) if above.size else None,
        "median_abs_iv_difference": float(np.median(diff)) if diff.size else None,
        "quantlib_price_failed": int(np.isnan(price).sum()),
        "quantlib_inversion_failed": int((np.isnan(theirs) & ~np.isnan(price)).sum()),
        "quantlib_resolvable_but_ours_missing": int((~ok & (np.nan_to_num(price) > 1e-9)).sum()),
    }


def run(args) -> dict:
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        spec = _spec(args)
        params, iv, ok, price_s, total_s = _ours(spec, args.rounds)
        n_options = int(iv.numel())
        record = {
            "grid": args.grid,
            "surfaces": int(params.shape[0]),
            "maturities": len(spec.maturity_days),
            "strikes": int(spec.log_moneyness.size),
            "options": n_options,
            "rounds": args.rounds,
            "price_seconds": price_s,
            "price_and_iv_seconds": total_s,
            "summary": summarize(total_s),
            "price_summary": summarize(price_s),
            "cells_with_iv": float(ok.double().mean()),
            "common_cells": int(ok.all(0).sum()),
            "arbitrage": arbitrage_report(
                total_variance(iv, torch.from_numpy(spec.maturities)),
                torch.from_numpy(spec.log_moneyness),
            ).as_dict(),
            "machine": machine_info(args.threads),
        }
        try:
            import QuantLib as ql
        except ImportError:
            record["quantlib"] = None
            return record
        rng = np.random.default_rng(args.seed)
        rows = sorted(rng.choice(params.shape[0], size=args.ql_surfaces, replace=False).tolist())
        q_iv, q_price, q_s = _quantlib(spec, params, rows, accurate=False)
        n_subset = q_iv.size
        per_option = q_s / n_subset
        ours_np, ok_np = iv.numpy()[rows], ok.numpy()[rows]
        record["quantlib"] = {
            "version": ql.__version__,
            "engine": "AnalyticHestonEngine(model) (defaults)",
            "surfaces_timed": rows,
            "options_timed": n_subset,
            "seconds_timed": q_s,
            "seconds_per_option": per_option,
            "extrapolated_seconds_full_grid": per_option * n_options,
            "extrapolated": True,
            "ratio_quantlib_over_pyrovae": per_option * n_options / record["summary"]["median"],
            "vs_pyrovae": _compare(ours_np, ok_np, q_iv, q_price),
        }
        if args.ql_accurate:
            # the surfaces where the default engine and pyrovae differ most
            both = ok_np & ~np.isnan(q_iv) & (np.nan_to_num(q_price) > 1e-9)
            worst = np.where(both, np.abs(ours_np - q_iv), 0.0).max(axis=(1, 2))
            pick = sorted(np.argsort(-worst, kind="stable")[: args.ql_accurate].tolist())
            acc_rows = [rows[i] for i in pick]
            a_iv, a_price, a_s = _quantlib(spec, params, acc_rows, accurate=True)
            record["quantlib_accurate"] = {
                "engine": "AnalyticHestonEngine(model, 1e-13, 1000000) (adaptive Gauss-Lobatto)",
                "surfaces": acc_rows,
                "seconds_per_option": a_s / a_iv.size,
                "vs_pyrovae": _compare(iv.numpy()[acc_rows], ok.numpy()[acc_rows], a_iv, a_price),
                "default_engine_vs_accurate": _compare(
                    q_iv[pick], ~np.isnan(q_iv[pick]), a_iv, a_price
                ),
            }
        return record
    finally:
        torch.set_num_threads(threads)


def markdown(record: dict) -> str:
    s, p = record["summary"], record["price_summary"]
    lines = [
        f"Heston surfaces: {record['surfaces']} parameter sets x {record['maturities']} "
        f"maturities x {record['strikes']} strikes = {record['options']:,} options, "
        f"{record['rounds']} rounds, {record['machine']['torch_threads']} torch thread(s).",
        "",
        "| step | median (s) | min (s) | max (s) |",
        "|---|---:|---:|---:|",
        f"| prices | {p['median']:.2f} | {p['min']:.2f} | {p['max']:.2f} |",
        f"| prices + implied vols | {s['median']:.2f} | {s['min']:.2f} | {s['max']:.2f} |",
        "",
        f"Cells with an implied vol: {100 * record['cells_with_iv']:.1f} %; in every "
        f"surface: {record['common_cells']}. Arbitrage: {record['arbitrage']['calendar_rate']:g} "
        f"calendar and {record['arbitrage']['butterfly_rate']:g} butterfly violation rate.",
    ]
    q = record.get("quantlib")
    if q:
        v = q["vs_pyrovae"]
        lines += [
            "",
            f"QuantLib {q['version']} ({q['engine']}, price + impliedVolatility per option): "
            f"{1e6 * q['seconds_per_option']:.0f} us per option over {q['options_timed']:,} "
            f"options ({len(q['surfaces_timed'])} surfaces), extrapolated to "
            f"{q['extrapolated_seconds_full_grid']:.0f} s for the grid: "
            f"**{q['ratio_quantlib_over_pyrovae']:.0f}x** pyrovae's median. Largest implied-vol "
            f"difference on {v['cells_compared']:,} cells: {v['max_abs_iv_difference']:.1e}.",
        ]
    a = record.get("quantlib_accurate")
    if a:
        lines += [
            f"QuantLib's adaptive engine at 1e-13 on the {len(a['surfaces'])} surfaces where they "
            "differ most: largest "
            f"difference to pyrovae {a['vs_pyrovae']['max_abs_iv_difference']:.1e} (prices "
            f"above 1e-6: {a['vs_pyrovae']['max_abs_iv_difference_price_above_1e-6']:.1e}), to "
            f"QuantLib's default engine "
            f"{a['default_engine_vs_accurate']['max_abs_iv_difference']:.1e}.",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--grid", choices=("notes", "small"), default="notes")
    p.add_argument("--ql-surfaces", type=int, default=10, help="surfaces QuantLib loops over")
    p.add_argument("--ql-accurate", type=int, default=2, help="of them, with the 1e-13 engine")
    p.add_argument("--seed", type=int, default=0, help="seed of the QuantLib subset")
    p.add_argument("--out", metavar="DIR", help="write heston.json and heston.md here")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    n = 16 if args.grid == "small" else 625
    if not 1 <= args.ql_surfaces <= n or not 0 <= args.ql_accurate <= args.ql_surfaces:
        p.error(f"need 1 <= --ql-surfaces <= {n} and 0 <= --ql-accurate <= --ql-surfaces")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    record = run(args)
    table = markdown(record)
    print(table)
    write_outputs(args.out, "heston", record, table)
    return record


if __name__ == "__main__":
    main()

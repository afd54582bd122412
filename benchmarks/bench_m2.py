"""Semi-supervised M2 with few labels, and the cost of summing the label out.

Two parts, each writing one JSON file per setting under ``--out`` (default
``benchmarks/results/m2``) and skipping the settings whose file exists, so an
interrupted run continues where it stopped:

**Test error with few labels** (``error-DATA-nN-drawD.json``). For each number of labels N
and label draw D, the labels of N training rows are kept, drawn stratified by class with
seed D (:func:`pyrovae.data.labels.keep_labels`); the other training rows and the
validation rows are unlabelled. Three classifiers are scored on the test split:

* M2 (:class:`pyrovae.api.M2`) trained on every training row (labelled and unlabelled),
  early-stopped on the validation ELBO (no labels), its prediction argmax q(y|x);
* scikit-learn's ``LogisticRegression`` on the N labelled rows alone;
* scikit-learn's ``MLPClassifier`` with M2's q(y|x) hidden widths and activation, on the N
  labelled rows alone.

``--data digits`` (offline, 1,455 training and 180 test rows) or ``--data mnist`` with
``--data-root`` holding the MNIST files (the paper's 100 / 600 / 1000 / 3000 labels): a
missing MNIST is reported as such and nothing is trained.

**Enumeration cost** (``throughput-DATA-bB.json``). Training steps per second of M2
(every row unlabelled: the label summed out, the decoder run over classes x rows in one
call) and of the unconditional VAE with the same encoder, decoder widths, latent size and
likelihood, interleaved as ``bench_throughput.py`` does: each round times ``--steps``
steps of each side (each side first in turn); the ratio M2 / VAE per round is summarised
by its median over ``--rounds`` rounds. The VAE is timed twice: with ``TraceELBO``'s
direct route (its default training step) and with Pyro's traces (``direct=False``, the
route M2's ``TraceEnum_ELBO`` always takes), so that the ratio to the latter isolates the
cost of the enumerated classes.

Usage::

    python benchmarks/bench_m2.py --labels 10,30,100 --draws 5 --epochs 200
    python benchmarks/bench_m2.py --part throughput --batch-sizes 128
    python benchmarks/bench_m2.py --data mnist --data-root ~/data --labels 100,600,1000,3000
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

import numpy as np
import torch

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE), str(_HERE.parent)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _common import machine_info, parse_int_list, restores_threads, summarize  # noqa: E402

from pyrovae.api import M2  # noqa: E402
from pyrovae.data import TensorBatches, load_data  # noqa: E402
from pyrovae.data.labels import keep_labels  # noqa: E402
from pyrovae.errors import PyrovaeError  # noqa: E402
from pyrovae.models import ModuleSpec, build_module  # noqa: E402
from pyrovae.objectives import EnumELBO, TraceELBO  # noqa: E402
from pyrovae.training import make_adam, train_step  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "m2"


def load(args):
    """The data split, or None with the reason when MNIST's files are missing."""
    try:
        return load_data(args.data, root=args.data_root, download=False), None
    except PyrovaeError as exc:
        return None, str(exc)


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)


def _baselines(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, args, seed: int):
    """Test errors of the labelled-only classifiers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    logreg = LogisticRegression(max_iter=5000).fit(x, y)
    mlp = MLPClassifier(
        hidden_layer_sizes=tuple(args.hidden), max_iter=5000, random_state=seed
    ).fit(x, y)
    return {
        "logreg_error": float((logreg.predict(xt) != yt).mean()),
        "mlp_error": float((mlp.predict(xt) != yt).mean()),
    }


def error_setting(data, n_labels: int, draw: int, args) -> dict:
    """One label draw: the test errors of M2 and of the two labelled-only classifiers."""
    y = keep_labels(data.y_train, n_labels, seed=draw)
    labelled = y >= 0
    t0 = time.perf_counter()
    est = M2(
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        aux_weight=args.aux_weight,
        likelihood="bernoulli",
        seed=draw,
    )
    y_val = torch.full_like(data.y_val, -1) if data.y_val is not None else None
    est.fit(data.train, y, X_val=data.val, y_val=y_val)
    seconds = time.perf_counter() - t0
    test_error = 1.0 - est.score(data.test, data.y_test)
    flat = data.train.reshape(len(data.train), -1).numpy()
    flat_test = data.test.reshape(len(data.test), -1).numpy()
    base = _baselines(
        flat[labelled.numpy()],
        data.y_train[labelled].numpy(),
        flat_test,
        data.y_test.numpy(),
        args,
        draw,
    )
    return {
        "data": args.data,
        "n_labels": n_labels,
        "draw": draw,
        "labelled_per_class": torch.bincount(y[labelled]).tolist(),
        "m2_error": test_error,
        **base,
        "test_rows": len(data.test),
        "epochs_trained": est.n_epochs_,
        "best_epoch": est.best_epoch_,
        "val_elbo": est.history_[est.best_epoch_ - 1]["val_elbo"] if est.best_epoch_ else None,
        "seconds": round(seconds, 1),
        "settings": {
            k: getattr(args, k)
            for k in ("latent_dim", "hidden", "epochs", "batch_size", "learning_rate")
        }
        | {"patience": args.patience, "aux_weight": args.aux_weight},
    }


def _timed(step, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def throughput_setting(data, batch_size: int, args) -> dict:
    """Steps per second of M2 (labels summed out) and of the VAE, interleaved."""
    spec = dict(
        data_shape=tuple(data.data_shape),
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        likelihood="bernoulli",
    )
    n_classes = int(data.y_train.max()) + 1
    torch.manual_seed(0)
    vae = build_module("vae", ModuleSpec(**spec))
    m2 = build_module("m2", ModuleSpec(**spec, model_options={"n_classes": n_classes}))
    x = data.train[: batch_size * 4]
    unlabelled = torch.full((len(x),), -1)
    plain = [b for b in TensorBatches(x, batch_size)]
    vae_traced = build_module("vae", ModuleSpec(**spec))
    vae_traced.load_state_dict(vae.state_dict())
    sides = {
        "vae": (vae, TraceELBO(), plain),
        "vae_traces": (vae_traced, TraceELBO(direct=False), plain),
        "m2": (
            m2,
            EnumELBO(),
            [b.replace(y=unlabelled[: len(b)]) for b in TensorBatches(x, batch_size)],
        ),
    }
    steppers = {}
    for name, (module, objective, batches) in sides.items():
        optimizer = make_adam(module.parameters(), lr=1e-3)
        counter = {"i": 0}

        def step(module=module, objective=objective, batches=batches, opt=optimizer, c=counter):
            train_step(module, objective, opt, batches[c["i"] % len(batches)])
            c["i"] += 1

        steppers[name] = step
        for _ in range(3):  # warm-up (and Pyro's first, validated call)
            step()
    names = list(sides)
    rates: dict[str, list] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % 3 :] + names[: r % 3]:  # each side first in turn
            rates[name].append(_timed(steppers[name], args.steps))
    ratios = [m / v for m, v in zip(rates["m2"], rates["vae"], strict=True)]
    ratios_traced = [m / v for m, v in zip(rates["m2"], rates["vae_traces"], strict=True)]
    return {
        "data": args.data,
        "batch_size": batch_size,
        "n_classes": n_classes,
        "vae_steps_per_s": summarize(rates["vae"]),
        "m2_steps_per_s": summarize(rates["m2"]),
        "vae_traces_steps_per_s": summarize(rates["vae_traces"]),
        "ratio_m2_over_vae": summarize(ratios),
        "ratio_m2_over_vae_traces": summarize(ratios_traced),
        "rounds": args.rounds,
        "steps": args.steps,
        "settings": {"latent_dim": args.latent_dim, "hidden": list(args.hidden)},
    }


def _mean_sd(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    sd = 100 * statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{mean:.1f} ± {sd:.1f}"


def table(out: Path, data: str) -> str:
    """Markdown tables of every result file of ``data`` under ``out``."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob(f"error-{data}-n*-draw*.json"))]
    lines = []
    if rows:
        lines += [
            "| labels | draws | M2 error % | logistic regression % | MLP % |",
            "|---:|---:|---:|---:|---:|",
        ]
        for n in sorted({r["n_labels"] for r in rows}):
            rs = [r for r in rows if r["n_labels"] == n]
            cols = [_mean_sd([r[k] for r in rs]) for k in ("m2_error", "logreg_error", "mlp_error")]
            lines.append(f"| {n} | {len(rs)} | " + " | ".join(cols) + " |")
    tp = [json.loads(p.read_text()) for p in sorted(out.glob(f"throughput-{data}-b*.json"))]
    if tp:
        lines += [
            "",
            "| batch | VAE steps/s (direct route) | VAE steps/s (traces) | M2 steps/s | "
            "M2 / VAE direct (median, min-max) | M2 / VAE traces |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in tp:
            ratio, traced = r["ratio_m2_over_vae"], r["ratio_m2_over_vae_traces"]
            lines.append(
                f"| {r['batch_size']} | {r['vae_steps_per_s']['median']:.1f} | "
                f"{r['vae_traces_steps_per_s']['median']:.1f} | "
                f"{r['m2_steps_per_s']['median']:.1f} | {ratio['median']:.3f} "
                f"({ratio['min']:.3f}-{ratio['max']:.3f}) | {traced['median']:.3f} "
                f"({traced['min']:.3f}-{traced['max']:.3f}) |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("error", "throughput", "both"), default="both")
    p.add_argument("--data", default="digits", help="digits, or mnist with --data-root")
    p.add_argument("--data-root", default=None, help="folder holding the MNIST files")
    p.add_argument("--labels", type=parse_int_list, default=[10, 30, 100])
    p.add_argument("--draws", type=int, default=5, help="label draws per number of labels")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--hidden", type=parse_int_list, default=[256])
    p.add_argument("--aux-weight", type=float, default=0.1)
    p.add_argument("--batch-sizes", type=parse_int_list, default=[128])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder of the JSON files")
    return p.parse_args(argv)


@restores_threads
def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data, missing = load(args)
    if data is None:
        message = f"{args.data} is not available here ({missing}); nothing was trained"
        print(message, file=sys.stderr)
        _write(out / f"missing-{args.data}.json", {"data": args.data, "missing": missing})
        return {"missing": missing}
    if data.y_train is None:
        raise SystemExit(f"{args.data} has no labels")
    done = []
    if args.part in ("error", "both"):
        for n in args.labels:
            for draw in range(args.draws):
                path = out / f"error-{args.data}-n{n}-draw{draw}.json"
                if path.exists():
                    continue
                record = error_setting(data, n, draw, args)
                record["machine"] = machine_info(args.threads)
                _write(path, record)
                done.append(path.name)
                print(
                    json.dumps(
                        {
                            k: record[k]
                            for k in (
                                "n_labels",
                                "draw",
                                "m2_error",
                                "logreg_error",
                                "mlp_error",
                                "seconds",
                            )
                        }
                    )
                )
    if args.part in ("throughput", "both"):
        for b in args.batch_sizes:
            path = out / f"throughput-{args.data}-b{b}.json"
            if path.exists():
                continue
            record = throughput_setting(data, b, args)
            record["machine"] = machine_info(args.threads)
            _write(path, record)
            done.append(path.name)
    text = table(out, args.data)
    (out / f"{args.data}.md").write_text(text)
    print(text)
    return {"written": done, "table": text}


if __name__ == "__main__":
    main()

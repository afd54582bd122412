"""Peak memory of training and of log-likelihood evaluation.

Each measurement runs in a fresh Python process. A process first imports torch
and pyrovae and builds its data; then the kernel's peak-RSS mark is reset
(``/proc/self/clear_refs``) and the resident set size recorded as ``baseline``;
then it runs the workload, and the peak RSS (``VmHWM``) is read afterwards:

* ``train``: a VAE (MLP, Bernoulli likelihood) trained for ``--epochs`` epochs;
* ``evaluate``: importance-sampled log p(x) with K samples per image, chunked
  under :func:`pyrovae.analysis.log_likelihood`'s memory budget (``--memory``).

Reported per workload: peak RSS, the increase over the baseline, and, for
reference, the bytes of the data and of the parameters (with Adam's two
moment buffers, parameters cost 4x their size while training). Linux only
(``/proc/self/status``).

    python benchmarks/bench_memory.py --mnist ../shared/data/binarized_mnist --out results/
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, synthetic_binary, write_outputs  # noqa: E402

MIB = 2**20


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (0 where absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> float:
    """Reset the kernel's peak-RSS mark (``/proc/self/clear_refs``); return RSS in MiB.

    Loading data can leave a high peak behind (parsing, temporaries); resetting it
    makes the peak measured afterwards the workload's own.
    """
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # pragma: no cover - old kernels or restricted /proc
        pass
    return _status_kib("VmRSS") / 1024


def _peak() -> float:
    """Peak RSS in MiB since the last reset (VmHWM), else the process's ru_maxrss."""
    return (_status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _data(args):
    import torch

    if args.mnist:
        from pyrovae.data import load_data

        d = load_data("binarized-mnist", root=args.mnist, download=False)
        x = d.train
    else:
        x = synthetic_binary(args.rows, seed=args.seed)
    if args.rows:
        x = x[: args.rows]
    return x.reshape(x.shape[0], -1).to(torch.float32).contiguous()


def child(args) -> dict:
    """Run one workload in this process and return its memory figures."""
    import torch

    from pyrovae.analysis import log_likelihood
    from pyrovae.api import VAE

    if args.threads:
        torch.set_num_threads(args.threads)
    x = _data(args)
    vae = VAE(
        likelihood="bernoulli",
        hidden=tuple(args.hidden),
        latent_dim=args.latent_dim,
        epochs=1,
        batch_size=args.batch_size,
        patience=0,
        seed=args.seed,
    )
    if args.child == "train":
        base = _reset_peak()
        vae.set_params(epochs=args.epochs).fit(x)
    else:
        vae.fit(x[: args.batch_size])  # one step: a fitted model to evaluate
        base = _reset_peak()
        n = min(args.eval_rows, x.shape[0])
        log_likelihood(vae.module_, x[:n], samples=args.samples, memory=args.memory * MIB)
    peak = _peak()
    n_params = sum(p.numel() for p in vae.module_.parameters())
    return {
        "workload": args.child,
        "baseline_mib": base,
        "peak_mib": peak,
        "increase_mib": peak - base,
        "rss_anon_end_mib": _status_kib("RssAnon") / 1024,
        "data_mib": x.numel() * x.element_size() / MIB,
        "params_mib": n_params * 4 / MIB,
        "rows": int(x.shape[0]),
    }


def _measure(workload: str, argv: Sequence[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", workload]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{workload} measurement failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args, argv: Sequence[str]) -> dict:
    rows = [_measure(w, argv) for w in ("train", "evaluate")]
    for r in rows:
        print(
            f"{r['workload']:>8}: peak {r['peak_mib']:.0f} MiB "
            f"(+{r['increase_mib']:.0f} over {r['baseline_mib']:.0f} MiB)",
            flush=True,
        )
    return {
        "data": "static binarized MNIST (train)" if args.mnist else "random binary vectors",
        "hidden": args.hidden,
        "latent_dim": args.latent_dim,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "samples": args.samples,
        "eval_rows": args.eval_rows,
        "memory_budget_mib": args.memory,
        "machine": machine_info(args.threads),
        "results": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        f"{result['data']}, MLP {result['hidden']} latent {result['latent_dim']}, batch "
        f"{result['batch_size']}; training {result['epochs']} epoch(s); evaluation K = "
        f"{result['samples']} on {result['eval_rows']} images under a "
        f"{result['memory_budget_mib']} MiB chunk budget:",
        "",
        "| workload | peak RSS (MiB) | baseline (MiB) | increase (MiB) | data (MiB) "
        "| parameters (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"]:
        lines.append(
            f"| {r['workload']} | {r['peak_mib']:.0f} | {r['baseline_mib']:.0f} | "
            f"{r['increase_mib']:.0f} | {r['data_mib']:.0f} | {r['params_mib']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", metavar="DIR", help="folder with binarized MNIST .amat files")
    p.add_argument("--rows", type=int, default=50_000, help="training rows (default 50000)")
    p.add_argument("--hidden", type=int, nargs="+", default=[300, 300], help="hidden widths")
    p.add_argument("--latent-dim", type=int, default=40, help="latent size (default 40)")
    p.add_argument("--batch-size", type=int, default=100, help="minibatch (default 100)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs (default 1)")
    p.add_argument("--samples", type=int, default=5000, help="importance samples K (5000)")
    p.add_argument("--eval-rows", type=int, default=500, help="images scored (default 500)")
    p.add_argument("--memory", type=int, default=512, help="chunk budget, MiB (default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--out", metavar="DIR", help="write memory.json and memory.md here")
    p.add_argument("--child", choices=("train", "evaluate"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        result = child(args)
        print(json.dumps(result))
        return result
    passed = [a for a in argv]
    if args.out:  # children write nothing
        i = passed.index("--out")
        del passed[i : i + 2]
    result = run(args, passed)
    table = markdown(result)
    print(table)
    write_outputs(args.out, "memory", result, table)
    return result


if __name__ == "__main__":
    main()

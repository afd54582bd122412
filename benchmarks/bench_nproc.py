"""Multi-process efficiency on one machine: ``--nproc 2`` against one process with two threads.

The same model and data in three set-ups, each in a fresh Python process, interleaved
round by round (the order rotates each round):

* ``threads``: one process, ``--cores`` torch threads, global batch B (the default way
  to use the machine);
* ``nproc``: ``--cores`` processes of one thread each (:func:`pyrovae.training.
  distributed.launch`, as ``pyrovae train --nproc`` runs them, gloo backend), global
  batch B, so each rank computes B / W rows per step and DDP all-reduces the
  gradients;
* ``rank_alone``: one process, one thread, batch B / W: what one rank computes per
  step without the other ranks and without communication. W times its samples per
  second is what ``nproc`` would reach with free communication and no contention
  between the processes (the ideal);
* ``pair``: W such lone ranks at the same time, independent processes that do not
  communicate: the sum of their rates is the ideal less the contention between
  processes (shared caches and memory bandwidth), without any communication.

Workload: the MLP 784-400-50 VAE with a Bernoulli likelihood (the throughput table's),
``--rows`` seeded random binary rows, no validation split, ``--epochs`` epochs; the
rate of a run is rows / the median of its epochs' ``seconds`` (the trainer's
``metrics.csv`` column; the first epoch is left out as warm-up). The ``nproc`` ranks
also time ``--reduce-reps`` all-reduces of one flat float32 tensor the size of the
model's parameters (what DDP's single gradient bucket sends each step), so the
overhead can be split into communication and the rest, and the latency of the small
all-reduce of the trainer's per-step flags (divergence, time budget, stop request: three
values, ``MAX``).

    python benchmarks/bench_nproc.py --batches 128,1024 --out benchmarks/results/

Nothing is downloaded; the runs use no files but a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE), str(_HERE.parent)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _common import machine_info, parse_int_list, summarize, write_outputs  # noqa: E402

#: The set-ups in the order of the first round.
SETUPS = ("threads", "nproc", "rank_alone", "pair")

#: The VAE every set-up trains (the throughput table's networks).
MODEL = {
    "latent_dim": 50,
    "hidden": (400,),
    "likelihood": "bernoulli",
    "learning_rate": 1e-3,
}


def _estimator(batch: int, epochs: int):
    from pyrovae.api import VAE

    return VAE(**MODEL, batch_size=int(batch), epochs=int(epochs), seed=0, progress=False)


def _data(rows: int):
    from _common import synthetic_binary

    return synthetic_binary(int(rows), 784, seed=0, p=0.2)


def _rate(history: list[dict], rows: int) -> float:
    """Rows per second from the median epoch time, the first epoch left out."""
    seconds = [float(h["seconds"]) for h in history[1:]] or [float(history[0]["seconds"])]
    return rows / statistics.median(seconds)


def _time_all_reduce(numel: int, reps: int, op=None) -> float:
    """Median seconds of one all-reduce of ``numel`` float32 values in the group."""
    import torch
    import torch.distributed as dist

    t = torch.ones(int(numel))
    times = []
    for _ in range(int(reps)):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rank(out: str, rows: int, batch: int, epochs: int, reps: int) -> int:
    """One rank of the ``nproc`` set-up (run by :func:`launch` in a new process)."""
    import torch

    from pyrovae.training import distributed

    ctx = distributed.init_from_env()
    est = _estimator(batch, epochs).fit(_data(rows))
    numel = sum(p.numel() for p in est.module_.parameters())
    import torch.distributed as dist

    reduce_s = _time_all_reduce(numel, reps)
    flags_s = _time_all_reduce(3, reps, dist.ReduceOp.MAX)
    if ctx is None or ctx.rank == 0:
        record = {
            "rate": _rate(est.history_, rows),
            "threads": torch.get_num_threads(),
            "world": ctx.world_size if ctx else 1,
            "parameters": numel,
            "all_reduce_s": reduce_s,
            "flags_all_reduce_s": flags_s,
            "steps_per_epoch": -(-rows // batch),
        }
        Path(out).write_text(json.dumps(record))
    distributed.shutdown()
    return 0


def worker(args) -> None:
    """Run one set-up in this process and write its record to ``--result``."""
    import torch

    if args.worker == "nproc":
        from pyrovae.training.distributed import launch

        status = launch(
            args.cores, _rank, args.result, args.rows, args.batch, args.epochs, args.reduce_reps
        )
        if status:
            raise SystemExit(f"the nproc ranks failed with status {status}")
        return
    # rank_alone: one rank's share of every step (B / W rows) and of the epoch
    share = 1 if args.worker == "threads" else args.cores
    torch.set_num_threads(args.cores // share)
    rows = args.rows // share
    est = _estimator(args.batch // share, args.epochs).fit(_data(rows))
    record = {"rate": _rate(est.history_, rows), "threads": torch.get_num_threads()}
    Path(args.result).write_text(json.dumps(record))


def _run_setup(setup: str, batch: int, args, folder: Path) -> dict:
    if setup == "pair":  # W lone ranks at once; their rates add up
        procs = [
            _start("rank_alone", batch, args, folder / f"pair{r}-{batch}.json")
            for r in range(args.cores)
        ]
        records = [_finish(*p) for p in procs]
        return {"rate": sum(r["rate"] for r in records), "threads": records[0]["threads"]}
    return _finish(*_start(setup, batch, args, folder / f"{setup}-{batch}.json"))


def _finish(proc: subprocess.Popen, result: Path) -> dict:
    if proc.wait():
        raise SystemExit(f"a benchmark process failed with status {proc.returncode}")
    return json.loads(result.read_text())


def _start(setup: str, batch: int, args, result: Path) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "OMP_NUM_THREADS": "1" if setup != "threads" else str(args.cores)}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        setup,
        "--result",
        str(result),
        "--batch",
        str(batch),
        "--rows",
        str(args.rows),
        "--epochs",
        str(args.epochs),
        "--cores",
        str(args.cores),
        "--reduce-reps",
        str(args.reduce_reps),
    ]
    return subprocess.Popen(cmd, env=env), result


def run(args) -> dict:
    """Every set-up at every batch size for ``--rounds`` rounds; per-batch medians."""
    per_batch = {}
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batches:
            if batch % args.cores:
                raise SystemExit(f"batch {batch} is not divisible by --cores {args.cores}")
            rounds = []
            for r in range(args.rounds):
                order = SETUPS[r % len(SETUPS) :] + SETUPS[: r % len(SETUPS)]
                rounds.append({s: _run_setup(s, batch, args, Path(tmp)) for s in order})
                print(f"batch {batch} round {r + 1}: " + _round_line(rounds[-1], args), flush=True)
            per_batch[batch] = _summarise(rounds, batch, args.cores)
    return {
        "model": MODEL,
        "rows": args.rows,
        "epochs": args.epochs,
        "cores": args.cores,
        "rounds": args.rounds,
        "machine": machine_info(args.cores),
        "results": per_batch,
    }


def _round_line(rnd: dict, args) -> str:
    ideal = args.cores * rnd["rank_alone"]["rate"]
    return (
        f"threads {rnd['threads']['rate']:,.0f}/s, nproc {rnd['nproc']['rate']:,.0f}/s, "
        f"pair {rnd['pair']['rate']:,.0f}/s, ideal {ideal:,.0f}/s"
    )


def _summarise(rounds: list[dict], batch: int, w: int) -> dict:
    threads = [r["threads"]["rate"] for r in rounds]
    nproc = [r["nproc"]["rate"] for r in rounds]
    ideal = [w * r["rank_alone"]["rate"] for r in rounds]
    ratio = [r["nproc"]["rate"] / r["threads"]["rate"] for r in rounds]
    eff = [r["nproc"]["rate"] / (w * r["rank_alone"]["rate"]) for r in rounds]
    # the share of an nproc step that the gradient all-reduce takes, measured alone
    steps = [r["nproc"]["rate"] / batch for r in rounds]
    comm = [s * r["nproc"]["all_reduce_s"] for s, r in zip(steps, rounds, strict=True)]
    flags = [s * r["nproc"]["flags_all_reduce_s"] for s, r in zip(steps, rounds, strict=True)]
    return {
        "threads_rate": summarize(threads),
        "nproc_rate": summarize(nproc),
        "ideal_rate": summarize(ideal),
        "nproc_over_threads": summarize(ratio),
        "nproc_over_ideal": summarize(eff),
        "pair_rate": summarize([r["pair"]["rate"] for r in rounds]),
        "pair_over_ideal": summarize(
            [r["pair"]["rate"] / i for r, i in zip(rounds, ideal, strict=True)]
        ),
        "flags_all_reduce_ms": summarize([1e3 * r["nproc"]["flags_all_reduce_s"] for r in rounds]),
        "flags_share_of_step": summarize(flags),
        "all_reduce_ms": summarize([1e3 * r["nproc"]["all_reduce_s"] for r in rounds]),
        "all_reduce_share_of_step": summarize(comm),
        "parameters": rounds[0]["nproc"]["parameters"],
        "rounds": rounds,
    }


def table(record: dict) -> str:
    lines = [
        "| batch | 1 process × 2 threads (rows/s) | --nproc 2 (rows/s) | ratio "
        "| ideal 2 × rank alone (rows/s) | 2 lone ranks at once (rows/s) | nproc / ideal "
        "| gradient all-reduce (ms, share of a step) | flags all-reduce (ms, share) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for batch, r in record["results"].items():
        lines.append(
            f"| {batch} | {r['threads_rate']['median']:,.0f} | {r['nproc_rate']['median']:,.0f} "
            f"| {r['nproc_over_threads']['median']:.2f} | {r['ideal_rate']['median']:,.0f} "
            f"| {r['pair_rate']['median']:,.0f} | {r['nproc_over_ideal']['median']:.2f} "
            f"| {r['all_reduce_ms']['median']:.2f} ({r['all_reduce_share_of_step']['median']:.2f}) "
            f"| {r['flags_all_reduce_ms']['median']:.3f} "
            f"({r['flags_share_of_step']['median']:.3f}) |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=parse_int_list, default=[128, 1024])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is warm-up)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cores", type=int, default=2, help="processes of --nproc, threads of one")
    p.add_argument("--reduce-reps", type=int, default=50)
    p.add_argument("--out", default=None)
    p.add_argument("--worker", choices=SETUPS, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    if args.rows < 2 * max(args.batches) or args.epochs < 1 or args.rounds < 1 or args.cores < 2:
        p.error("need --rows >= 2 x the largest batch, --epochs/--rounds >= 1, --cores >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return None
    record = run(args)
    text = table(record)
    print(text)
    write_outputs(args.out, "nproc", record, text)
    return record


if __name__ == "__main__":
    main()

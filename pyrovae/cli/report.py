"""``pyrovae report RUN``: one self-contained HTML page of a run
(:func:`pyrovae.report.build_report`)."""

from __future__ import annotations

import argparse
import time

from ..runs import to_json
from . import args as shared


def register(sub) -> None:
    """Add the ``report`` verb."""
    p = shared.add_verb(sub, "report", cmd_report, "write a self-contained HTML report of a run")
    p.add_argument("run", metavar="RUN", help="run folder")
    shared.add_output(p, "HTML file to write (default: RUN/report.html)")
    shared.add_n(p, "held-out data points for the latent view and the numbers")
    shared.add_data_options(p, split=False)
    shared.add_seed(p)
    shared.add_progress(p)


def cmd_report(args: argparse.Namespace) -> int:
    """Write one HTML file with the run's configuration and summary numbers, training
    curves, reconstructions with uncertainty maps, prior samples, latent traversals,
    linear and spherical interpolations, the latent space, KL per latent dimension and
    the posterior analysis of `pyrovae analyze` where it ran; figures are embedded, so
    the file stands alone."""
    from ..report import build_report

    shared.check_at_least(args, 1, "n")
    t0 = time.perf_counter()
    path = build_report(args.run, args.output, n=args.n, data=args.data, seed=args.seed)
    seconds = round(time.perf_counter() - t0, 2)
    print(to_json({"report": str(path), "bytes": path.stat().st_size, "seconds": seconds}))
    return 0

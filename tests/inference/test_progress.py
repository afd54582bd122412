"""The long analyses draw a progress bar on stderr only when asked (``progress=True``), and
the bar never changes a result: the same seed gives the same numbers either way."""

from __future__ import annotations

import re

import numpy as np
import pyro
import pytest
import torch

from pyrovae.analysis.uncertainty import ood_scores
from pyrovae.inference.calibration import CHUNK, sbc
from pyrovae.inference.loglik import elbo_decomposition, log_likelihood
from pyrovae.inference.mcmc import refine


def _run(capsys, fn, progress: bool):
    capsys.readouterr()
    pyro.set_rng_seed(0)
    out = fn(progress)
    return out, capsys.readouterr().err


def _bar(desc: str) -> re.Pattern:
    """A tqdm bar line: ``DESC: NN%|...``."""
    return re.compile(re.escape(desc) + r":\s+\d+%\|")


def _same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, torch.Tensor | np.ndarray):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    else:
        assert a == b or (a != a and b != b)  # NaN equals NaN here


CASES = {
    "log_likelihood": (lambda m, x, p: log_likelihood(m, x, samples=20, progress=p), "log p(x)"),
    "elbo_decomposition": (
        lambda m, x, p: elbo_decomposition(m, x, samples=20, progress=p),
        "log p(x)",
    ),
    "ood_scores": (lambda m, x, p: ood_scores(m, x, x + 3, samples=20, progress=p), "log p(x)"),
    "sbc": (lambda m, x, p: sbc(m, n=CHUNK + 30, draws=9, progress=p), "SBC"),
    # Pyro's bar starts as "Warmup" and is renamed "Sample" without a redraw, so only
    # "Warmup" is drawn whatever the machine's speed
    "refine": (
        lambda m, x, p: refine(m, x[:1], num_samples=5, warmup=5, chains=2, progress=p),
        "Warmup",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_bar_only_when_asked_and_the_same_result(ppca_class, capsys, monkeypatch, name):
    # Pyro never draws its MCMC bar where CI is set in the environment (as on CI
    # machines) or in a pytest-xdist worker
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    fn, desc = CASES[name]
    m = ppca_class(exact=False)
    torch.manual_seed(0)
    x = m.marginal().sample((150,))
    quiet, err_quiet = _run(capsys, lambda p: fn(m, x, p), False)
    shown, err_shown = _run(capsys, lambda p: fn(m, x, p), True)
    assert err_quiet == ""
    assert _bar(desc).search(err_shown), err_shown[-500:]
    _same(quiet, shown)


def test_sbc_in_chunks_ranks_every_simulation_once(ppca_class):
    """Simulations beyond one chunk (:data:`CHUNK`) are each ranked once."""
    n, draws = 2 * CHUNK + 30, 9
    out = sbc(ppca_class(exact=True), n=n, draws=draws, bins=10, seed=3)
    assert out["ranks"].shape == (n, 2) and out["n"] == n
    assert out["ranks"].min() >= 0 and out["ranks"].max() <= draws
    assert (out["histogram"].sum(1) == n).all()

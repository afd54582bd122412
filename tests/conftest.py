"""Shared fixtures: small slices of the built-in digits and generated data, a fake
clock for time budgets, and a guard against global state leaking between tests."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae.data import load_data
from pyrovae.guides import FullNormalGuide, LowRankNormalGuide
from pyrovae.guides.normal import MIN_SCALE
from pyrovae.models import ModuleSpec, VAEModule
from pyrovae.training.trainer import CLOCKS

#: Under pytest-xdist each worker runs torch on one thread, and so do the processes
#: its tests start: the workers share the machine's cores (one worker per core).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

#: Environment variables that change how torch or pyrovae run (threads, and the
#: torchrun variables that make pyrovae join a process group); a test may change them
#: only through ``monkeypatch``.
GUARDED_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_USE_AGENT_STORE",
)


class LeakedStateError(AssertionError):
    """A test left process-wide state changed."""


def _global_state() -> dict:
    return {
        "torch threads": torch.get_num_threads(),
        "torch default dtype": torch.get_default_dtype(),
        "torch grad mode": torch.is_grad_enabled(),
        **{f"${name}": os.environ.get(name) for name in GUARDED_ENV},
    }


@contextlib.contextmanager
def restoring_global_state():
    """Restore torch's thread count, default dtype, grad mode and :data:`GUARDED_ENV`
    on exit, and raise :class:`LeakedStateError` naming whatever the body changed."""
    before = _global_state()
    try:
        yield
    finally:
        after = _global_state()
        changed = [k for k in before if before[k] != after[k]]
        if "torch threads" in changed:
            torch.set_num_threads(before["torch threads"])
        torch.set_default_dtype(before["torch default dtype"])
        torch.set_grad_enabled(before["torch grad mode"])
        for name in GUARDED_ENV:
            value = before[f"${name}"]
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if changed:
        changed = [f"{k}: {before[k]!r} -> {after[k]!r}" for k in changed]
        raise LeakedStateError("the test left global state changed: " + "; ".join(changed))


@pytest.fixture(autouse=True)
def _no_leaked_global_state():
    """Every test leaves torch's threads, default dtype, grad mode and the guarded
    environment as it found them (restored either way; a leak fails the test)."""
    with restoring_global_state():
        yield


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Each test starts from a clean param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield


class FakeClock:
    """A clock that advances ``tick`` seconds each time it is read, so that a time
    budget is a number of reads: the trainer reads its budget clock once when training
    starts, once after every optimizer step, at every checkpoint and once at the end,
    whatever the machine's speed.

    Attributes
    ----------
    tick : float
        Seconds added per read (may be changed by a test).
    now : float
        The time the last read returned.
    reads : int
        Number of reads so far.
    """

    def __init__(self, tick: float = 1.0) -> None:
        self.tick, self.now, self.reads = float(tick), 0.0, 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.tick
        return self.now


@pytest.fixture
def fake_clock(monkeypatch):
    """Replace the trainer's budget clocks by two :class:`FakeClock` (one "second" per
    read): ``fake_clock.wall`` and ``fake_clock.cpu``."""
    clocks = SimpleNamespace(wall=FakeClock(), cpu=FakeClock())
    monkeypatch.setitem(CLOCKS, "wall", clocks.wall)
    monkeypatch.setitem(CLOCKS, "cpu", clocks.cpu)
    return clocks


@pytest.fixture(scope="session")
def digits():
    """The built-in digits, split (1,455 / 162 / 180), shape (1, 8, 8) in [0, 1]."""
    return load_data("digits")


@pytest.fixture(scope="session")
def small_digits(digits):
    """(train, val): 300 and 100 digit images, for quick training runs."""
    return digits.train[:300], digits.val[:100]


@pytest.fixture(scope="session")
def bench_throughput():
    """``benchmarks/bench_throughput.py`` as a module (``benchmarks/`` is not a package):
    its hand-written reference VAE, and the benchmark itself."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_throughput.py"
    spec = importlib.util.spec_from_file_location("bench_throughput", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_throughput", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tabular():
    """Generated continuous data: 200 rows, 5 correlated features."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200, 2, generator=g)
    w = torch.randn(2, 5, generator=g)
    return z @ w + 0.1 * torch.randn(200, 5, generator=g)


# -- the probabilistic PCA model with closed forms (inference and analysis tests) --
# The probabilistic PCA model with closed forms, shared by the analysis tests.
#
# p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I) and
# p(z|x) = N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^{-1} (Tipping & Bishop 1999).
#
# It is a registered VAE (linear bodies, fixed-scale Gaussian likelihood) whose weights
# are set to these closed forms: the decoder to W and b, and the guide head either to
# the exact posterior (the ``full`` or ``lowrank`` guide) or to a diagonal Gaussian with
# the exact means and ``widen`` times the posterior sds (the ``normal`` guide).


D, L, S = 5, 2, 0.5


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


class PPCA(VAEModule):
    """A linear-Gaussian VAE with an exact or a mismatched Gaussian guide."""

    def __init__(
        self, exact: bool, widen: float = 1.5, dtype=torch.float32, guide=None, w=None
    ) -> None:
        spec = ModuleSpec(
            data_shape=(D,),
            latent_dim=L,
            net="linear",
            likelihood="gaussian",
            likelihood_options={"scale": S},
            guide=guide or ("full" if exact else "normal"),
        )
        with torch.random.fork_rng(devices=[]):  # leave the caller's random stream alone
            super().__init__(spec)
        self.to(dtype)
        g = torch.Generator().manual_seed(0)
        self.W = torch.randn(D, L, generator=g).to(dtype)
        self.b = torch.randn(D, generator=g).to(dtype)
        if w is not None:
            self.W = torch.as_tensor(w, dtype=dtype)
        self.exact, self.widen = exact, widen
        eye = torch.eye(L, dtype=dtype)
        self.cov_post = torch.linalg.inv(eye + self.W.T @ self.W / S**2)
        self.set_guide(self.cov_post, widen)
        with torch.no_grad():
            self.decoder.linear.weight.copy_(self.W)
            self.decoder.linear.bias.copy_(self.b)
        self.eval()

    def set_guide(self, cov: torch.Tensor, widen: float = 1.0, shift=None) -> None:
        """Guide means (x - b) W S^T / s^2 (+ ``shift``); covariance ``cov`` (full and
        lowrank guides) or diagonal sds ``widen`` * sqrt(diag cov_post) (normal guide)."""
        a = self.cov_post @ self.W.T / S**2  # (L, D): mean = a (x - b)
        lin = self.guide_head.linear
        with torch.no_grad():
            lin.weight.zero_()
            lin.bias.zero_()
            lin.weight[:L] = a
            lin.bias[:L] = -a @ self.b + (0 if shift is None else torch.as_tensor(shift))
            head = self.guide_head
            if isinstance(head, FullNormalGuide):
                chol = torch.linalg.cholesky(cov)
                entries = chol[head.rows, head.cols]
                diag = inverse_softplus(entries - MIN_SCALE)
                lin.bias[L:] = torch.where(head.is_diag, diag, entries)
            elif isinstance(head, LowRankNormalGuide):
                # cov = F F^T + d I with d half the smallest eigenvalue, F of rank L
                d = 0.5 * torch.linalg.eigvalsh(cov)[0]
                factor = torch.linalg.cholesky(cov - d * torch.eye(L, dtype=cov.dtype))
                factor = torch.cat([factor, factor.new_zeros(L, head.rank - L)], 1)
                lin.bias[L : 2 * L] = inverse_softplus((d - MIN_SCALE).sqrt().expand(L))
                lin.bias[2 * L :] = factor.reshape(-1)
            else:
                sd = widen * self.cov_post.diagonal().sqrt()
                lin.bias[L:] = inverse_softplus(sd - MIN_SCALE)

    def marginal(self) -> dist.Distribution:
        eye = torch.eye(D, dtype=self.W.dtype)
        return dist.MultivariateNormal(self.b, self.W @ self.W.T + S**2 * eye)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        """The exact p(z|x)."""
        loc = (x - self.b) @ self.W @ self.cov_post.T / S**2
        return dist.MultivariateNormal(loc, covariance_matrix=self.cov_post)


@pytest.fixture
def ppca_class():
    return PPCA

"""The probabilistic PCA model with closed forms, shared by the analysis tests.

p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I) and
p(z|x) = N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^{-1} (Tipping & Bishop 1999).

It is a registered VAE (linear bodies, fixed-scale Gaussian likelihood) whose weights
are set to these closed forms: the decoder to W and b, and the guide head either to
the exact posterior (the ``full`` or ``lowrank`` guide) or to a diagonal Gaussian with
the exact means and ``widen`` times the posterior sds (the ``normal`` guide).
"""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch

from pyrovae.guides import FullNormalGuide, LowRankNormalGuide
from pyrovae.guides.normal import MIN_SCALE
from pyrovae.models import ModuleSpec, VAEModule

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

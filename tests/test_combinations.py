"""Bad combinations of components fail with one clear line before training starts."""

from __future__ import annotations

import pytest
import torch

from pyrovae.api import HVAE, VAE
from pyrovae.errors import ConfigError, DataError

SMALL = dict(hidden=(16,), latent_dim=2, epochs=1)


def test_counts_likelihood_rejects_negative_data(tabular):
    with pytest.raises(DataError, match="poisson likelihood needs non-negative integer counts"):
        VAE(likelihood="poisson", **SMALL).fit(tabular)


def test_eight_bit_likelihood_rejects_off_grid_values(small_digits):
    x = small_digits[0] * 0.999  # grey levels no longer on the k/255 grid
    with pytest.raises(DataError, match="8-bit grey levels"):
        VAE(likelihood="discretized-logistic", **SMALL).fit(x)


def test_meanfield_objective_needs_a_mean_field_model(small_digits):
    with pytest.raises(ConfigError, match="assumes a mean-field guide"):
        HVAE(objective="meanfield", **SMALL).fit(small_digits[0])


@pytest.mark.parametrize("guide", ["full", "lowrank", "iaf"])
def test_free_bits_needs_factorized_guide(guide, small_digits):
    with pytest.raises(ConfigError, match="free bits needs a factorized guide"):
        VAE(objective="freebits", guide=guide, **SMALL).fit(small_digits[0])


def test_flow_components_need_two_latent_dimensions(small_digits):
    with pytest.raises(ConfigError, match="latent_dim >= 2"):
        VAE(prior="flow", **{**SMALL, "latent_dim": 1}).fit(small_digits[0])


def test_unknown_objective_option(small_digits):
    with pytest.raises(ConfigError, match="bad options for objective 'trace'"):
        VAE(objective_options={"free_bits": 1.0}, **SMALL).fit(small_digits[0])


def test_errors_come_before_any_training(small_digits, tmp_path):
    with pytest.raises(ConfigError):
        VAE(objective="freebits", guide="full", **SMALL).fit(small_digits[0], run_dir=tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.csv").exists()
    assert torch.isfinite(small_digits[0]).all()


def test_hvae_checks_the_guide_and_prior_sizes(small_digits):
    from pyrovae.guides import DiagonalNormalGuide
    from pyrovae.priors import StandardNormalPrior

    with pytest.raises(ConfigError, match="the guide has latent size 3"):
        HVAE(guide=DiagonalNormalGuide(16, 3), **SMALL).fit(small_digits[0])
    with pytest.raises(ConfigError, match="the prior has latent size 5"):
        HVAE(prior=StandardNormalPrior(5), top_dim=2, **SMALL).fit(small_digits[0])

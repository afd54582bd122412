"""ArviZ export of a fitted VAE's posterior for chosen inputs."""

from __future__ import annotations

import pytest
import torch

from pyrovae import arviz_compat as ax
from pyrovae.analysis import posterior_groups, to_arviz
from pyrovae.api import AE, VAE
from pyrovae.errors import ConfigError


@pytest.fixture(scope="module")
def vae(small_digits):
    x, xv = small_digits
    return VAE(epochs=2, hidden=(32,), latent_dim=3).fit(x, X_val=xv)


def test_groups_are_consistent_with_the_model(vae, digits):
    x = digits.test[:4]
    torch.manual_seed(0)
    g = posterior_groups(vae.module_, x, draws=50)
    z = torch.as_tensor(g["posterior"]["z"][0])
    assert z.shape == (50, 4, 3)
    # the pointwise log-likelihood is log p(x_i | z_s) for the exported draws
    expected = vae.module_.decode(z).log_prob(x)
    torch.testing.assert_close(torch.as_tensor(g["log_likelihood"]["x"][0]), expected)
    assert g["posterior_predictive"]["x"].shape == (1, 50, 4, 64)
    torch.testing.assert_close(torch.as_tensor(g["observed_data"]["x"]), x.reshape(4, 64))
    # draws follow q(z|x): their mean is within 5 standard errors of the guide's mean
    q = vae.module_.encode(x)
    se = q.stddev / 50**0.5
    assert ((z.mean(0) - q.mean).abs() < 5 * se).all()


def test_to_arviz_netcdf_and_summary(vae, digits, tmp_path):
    data = to_arviz(vae.module_, digits.test[:3], draws=100, index=[7, 8, 9])
    assert list(ax.group(data, "posterior")["z"]["datum"].values) == [7, 8, 9]
    back = ax.from_netcdf(ax.to_netcdf(data, tmp_path / "posterior.nc"))
    assert set(ax.group_names(back)) >= {"posterior", "log_likelihood", "observed_data"}
    table = ax.summary(data, var_names=["z"])
    assert table.shape[0] == 9 and {"mean", "sd"} <= set(table.columns)


def test_autoencoders_cannot_be_exported(small_digits):
    ae = AE(epochs=1, hidden=(16,), latent_dim=2).fit(small_digits[0])
    with pytest.raises(ConfigError, match="latent variables"):
        to_arviz(ae.module_, small_digits[0][:2])


def test_feature_coordinates_are_the_features_names(tabular):
    vae = VAE(epochs=1, hidden=(8,), latent_dim=2).fit(tabular)
    names = ["a", "b", "c", "d", "worst area"]
    data = to_arviz(vae.module_, tabular[:3], draws=10, feature_names=names)
    for group in ("observed_data", "posterior_predictive"):
        assert list(ax.group(data, group)["x"]["feature"].values) == names
    unnamed = to_arviz(vae.module_, tabular[:3], draws=10)
    assert list(ax.group(unnamed, "observed_data")["x"]["feature"].values) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="feature_names has 2 names for 5 features"):
        to_arviz(vae.module_, tabular[:3], draws=10, feature_names=["a", "b"])

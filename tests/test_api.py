"""The scikit-learn-style estimators."""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch

from pyrovae.api import AE, DAE, ESTIMATORS, VAE, load
from pyrovae.errors import CheckpointError, ConfigError
from pyrovae.likelihoods import GaussianLikelihood
from pyrovae.priors import Prior

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=64, epochs=2)


@pytest.fixture(scope="module")
def fitted(small_digits):
    x, xv = small_digits
    return VAE(**SMALL).fit(x, X_val=xv)


def test_init_stores_params_only():
    vae = VAE(latent_dim=5, beta=4.0)
    assert vae.get_params()["latent_dim"] == 5 and vae.get_params()["beta"] == 4.0
    assert not [a for a in vars(vae) if a.endswith("_")]
    assert repr(vae) == "VAE(latent_dim=5, beta=4.0)"
    assert vae.set_params(latent_dim=3) is vae and vae.latent_dim == 3
    with pytest.raises(ConfigError, match="no parameter 'latentdim'"):
        vae.set_params(latentdim=3)


def test_fitted_attributes(fitted):
    for attr in (
        "module_",
        "history_",
        "n_epochs_",
        "best_epoch_",
        "likelihood_",
        "data_shape_",
        "n_features_in_",
        "fit_time_",
    ):
        assert hasattr(fitted, attr), attr
    assert fitted.data_shape_ == (1, 8, 8) and fitted.n_features_in_ == 64
    assert fitted.likelihood_ == "bernoulli"


def test_unfitted_use_is_an_error():
    with pytest.raises(ConfigError, match="not fitted"):
        VAE().encode(torch.rand(2, 64))


def test_inference_methods(fitted, digits):
    x = digits.test[:5]
    q = fitted.encode(x)
    assert isinstance(q, dist.Distribution)
    assert q.mean.shape == (5, 2) and (q.stddev > 0).all()
    px = fitted.decode(q.mean)
    assert px.mean.shape == (5, 1, 8, 8)
    rec = fitted.reconstruct(x)
    assert rec.shape == (5, 1, 8, 8) and ((rec >= 0) & (rec <= 1)).all()
    assert fitted.sample(7).shape == (7, 1, 8, 8)
    draws = fitted.sample(7, mean=False)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    elbo = fitted.elbo(x, particles=4)
    assert elbo.shape == (5,) and (elbo < 0).all()
    ev = fitted.evaluate(x)
    assert ev["elbo"] == pytest.approx(ev["recon"] - ev["kl"], abs=1e-4)
    assert fitted.score(x) == pytest.approx(fitted.evaluate(x)["elbo"], rel=0.2)
    # flattened rows are accepted and reshaped
    assert fitted.encode(x.reshape(5, 64)).mean.shape == (5, 2)


def test_numpy_input_and_gaussian_default(tabular):
    vae = VAE(**SMALL).fit(tabular.numpy())
    assert vae.likelihood_ == "gaussian" and vae.data_shape_ == (5,)
    assert vae.reconstruct(tabular[:3].numpy()).shape == (3, 5)


class ShiftedPrior(Prior):
    """A user's own prior object: N(shift, I) with a learnable shift."""

    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.shift = torch.nn.Parameter(torch.full((latent_dim,), 0.5))

    def forward(self):
        return dist.Normal(self.shift, torch.ones(self.latent_dim)).to_event(1)


def test_components_as_objects(small_digits, tmp_path):
    x, xv = small_digits
    vae = VAE(prior=ShiftedPrior(2), **SMALL).fit(x, X_val=xv)
    assert isinstance(vae.module_.prior, ShiftedPrior)
    assert not torch.equal(vae.module_.prior.shift.detach(), torch.full((2,), 0.5))  # learned
    vae.save(tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="custom prior object"):
        load(tmp_path / "m.pt")
    again = VAE.load(tmp_path / "m.pt", prior=ShiftedPrior(2))
    torch.testing.assert_close(again.module_.prior.shift, vae.module_.prior.shift)
    lik = GaussianLikelihood((1, 8, 8), scale=0.2)
    vae2 = VAE(likelihood=lik, **SMALL).fit(x)
    assert vae2.module_.likelihood is lik


def test_mismatched_latent_sizes_rejected(small_digits):
    x, _ = small_digits
    with pytest.raises(ConfigError, match="latent size 3 but the model's latent_dim is 2"):
        VAE(prior=ShiftedPrior(3), **SMALL).fit(x)


def test_load_checks_family(fitted, tmp_path):
    fitted.save(tmp_path / "v.pt")
    assert isinstance(load(tmp_path / "v.pt"), VAE)
    with pytest.raises(CheckpointError, match="holds a 'vae' model"):
        AE.load(tmp_path / "v.pt")


@pytest.mark.parametrize(
    "bad",
    [
        dict(epochs=0),
        dict(batch_size=-1),
        dict(latent_dim=1.5),
        dict(learning_rate=0),
        dict(patience=-1),
        dict(particles=0),
    ],
)
def test_bad_hyperparameters(bad, small_digits):
    with pytest.raises(ConfigError):
        VAE(**{**SMALL, **bad}).fit(small_digits[0])


def test_estimators_registry_covers_families():
    from pyrovae.config import defaults

    assert {"ae", "dae", "vae"} <= set(ESTIMATORS.names())
    keys = set(defaults())
    for _, cls in ESTIMATORS.items():  # every estimator parameter is a config option
        assert set(cls._param_names()) - {"progress"} <= keys


def test_autoencoders_sample_from_fitted_code_distribution(small_digits):
    x, xv = small_digits
    ae = DAE(noise=0.3, corruption="gaussian", **SMALL).fit(x, X_val=xv)
    codes = ae.encode(x).mean
    torch.testing.assert_close(ae.module_.code_loc, codes.mean(0), rtol=1e-4, atol=1e-4)
    assert ae.sample(4).shape == (4, 1, 8, 8)
    assert (ae.encode(x[:3]).variance == 0).all()


@pytest.mark.parametrize("prior", ["learned", "mog"])
def test_nothing_enters_pyros_global_param_store(prior, small_digits):
    import pyro

    pyro.clear_param_store()
    vae = VAE(prior=prior, **SMALL).fit(small_digits[0])
    assert list(pyro.get_param_store().keys()) == []
    assert any(p.grad is not None for p in vae.module_.prior.parameters())  # and it learns

"""The batch seam: Batch, as_batch, TensorBatches over a data set with labels and a mask,
and the documented scaling of global latent sites against minibatches."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyrovae import sites
from pyrovae.data import Batch, TensorBatches, as_batch
from pyrovae.errors import DataError
from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import MeanFieldELBO, TraceELBO


def _data(n=10, d=3):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, d, generator=g)
    return x, torch.arange(n), torch.rand(n, d, generator=g) > 0.3


def test_slicing_keeps_the_data_size_and_slices_every_field():
    x, y, mask = _data()
    batch = Batch(x, y, mask)
    assert len(batch) == batch.n == 10 and batch.global_scale == 1.0
    part = batch[torch.tensor([7, 2, 5])]
    assert torch.equal(part.x, x[[7, 2, 5]]) and part.y.tolist() == [7, 2, 5]
    assert torch.equal(part.mask, mask[[7, 2, 5]])
    assert (len(part), part.n, part.global_scale) == (3, 10, 0.3)
    rank1 = batch[1::2]  # a data-parallel rank's slice
    assert rank1.y.tolist() == [1, 3, 5, 7, 9] and rank1.n == 10


def test_as_batch_wraps_a_tensor_as_the_whole_data_set():
    x, _, _ = _data()
    batch = as_batch(x)
    assert batch.x is x and batch.y is None and batch.mask is None and batch.n == 10
    assert as_batch(batch) is batch


def test_to_returns_the_batch_itself_on_its_device_and_replace_copies():
    x, y, mask = _data()
    batch = Batch(x, y, mask)
    assert batch.to("cpu") is batch
    moved = batch.replace(x=x.double())
    assert moved.x.dtype == torch.float64 and moved.n == batch.n and moved.y is y


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"y": torch.arange(3)}, "y has 3 rows but x has 10"),
        ({"mask": torch.ones(10, 2, dtype=torch.bool)}, r"mask has shape \(10, 2\)"),
        ({"mask": torch.ones(10, 3)}, "mask must be bool"),
    ],
)
def test_bad_fields_are_one_line_errors(kwargs, message):
    x, _, _ = _data()
    with pytest.raises(DataError, match=message):
        Batch(x, **kwargs)


def test_tensor_batches_cut_labels_and_mask_with_the_rows():
    x, y, mask = _data(n=23)
    g = torch.Generator().manual_seed(4)
    batches = list(TensorBatches(Batch(x, y, mask), 5, shuffle=True, generator=g))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3] and {b.n for b in batches} == {23}
    seen = torch.cat([b.y for b in batches])
    assert sorted(seen.tolist()) == list(range(23))  # one pass over every row
    for b in batches:
        assert torch.equal(b.x, x[b.y]) and torch.equal(b.mask, mask[b.y])


@pytest.mark.parametrize("family", ["vae", "hvae", "ae", "dae"])
def test_families_ignore_labels_and_score_a_mask(family):
    torch.manual_seed(0)
    module = build_module(family, ModuleSpec(data_shape=(6,), latent_dim=2, hidden=(8,)))
    module.eval()
    x = (torch.rand(4, 6) > 0.5).float()
    pyro.set_rng_seed(1)
    plain = TraceELBO()(module.model, module.guide, x)
    pyro.set_rng_seed(1)
    labelled = TraceELBO()(module.model, module.guide, Batch(x, y=torch.arange(4)))
    assert torch.equal(plain.loss, labelled.loss)
    pyro.set_rng_seed(1)
    full = TraceELBO()(module.model, module.guide, Batch(x, mask=torch.ones_like(x, dtype=bool)))
    torch.testing.assert_close(full.loss, plain.loss)
    mask = torch.ones_like(x, dtype=bool)
    mask[:, 3:] = False
    pyro.set_rng_seed(1)
    part = TraceELBO()(module.model, module.guide, Batch(x, mask=mask))
    assert torch.isfinite(part.loss) and not torch.equal(part.loss, plain.loss)


class _GlobalSite(torch.nn.Module):
    """x_n ~ N(0, 1) observed; a global theta ~ N(0, 1) outside the data plate, scaled
    by the batch's global scale, with guide q(theta) = N(m, s)."""

    def __init__(self):
        super().__init__()
        self.m = torch.nn.Parameter(torch.tensor([0.7]))
        self.log_s = torch.nn.Parameter(torch.tensor([-0.4]))

    def model(self, batch, beta=1.0):
        batch = as_batch(batch)
        with poutine.scale(scale=batch.global_scale):
            pyro.sample("theta", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
        with pyro.plate(sites.DATA_PLATE, len(batch)):
            pyro.sample(sites.OBS, dist.Normal(0.0, 1.0).expand([3]).to_event(1), obs=batch.x)

    def guide(self, batch, beta=1.0):
        batch = as_batch(batch)
        with poutine.scale(scale=batch.global_scale):
            pyro.sample("theta", dist.Normal(self.m, self.log_s.exp()).to_event(1))


def test_global_sites_scaled_by_b_over_n_count_once_per_epoch():
    """The documented convention (pyrovae.data.batch): the minibatch losses of an epoch
    add up to the full-data loss, in which the global KL counts once; checked exactly
    with the analytic KL (the data term does not depend on theta)."""
    x, _, _ = _data(n=23)
    module = _GlobalSite()
    objective = MeanFieldELBO()
    full = objective(module.model, module.guide, x).loss  # one batch: scale 1
    epoch = sum(objective(module.model, module.guide, b).loss for b in TensorBatches(x, 5))
    q = dist.Normal(module.m, module.log_s.exp())
    kl = torch.distributions.kl_divergence(q, dist.Normal(0.0, 1.0)).sum()
    nll = -dist.Normal(0.0, 1.0).log_prob(x).sum()
    torch.testing.assert_close(full, nll + kl)
    torch.testing.assert_close(epoch, nll + kl)

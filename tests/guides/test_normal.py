"""The fast Normal of the guides behaves like ``Normal(...).to_event`` under ``expand``."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from pyrovae.guides.normal import IndependentNormal


def test_expand_is_free_to_the_own_shape_and_real_otherwise():
    d = IndependentNormal(dist.Normal(torch.zeros(4, 6), torch.ones(4, 6)), 1)
    assert d.expand((4,)) is d
    bigger = d.expand((2, 4))
    assert bigger.batch_shape == (2, 4) and bigger.event_shape == (6,)
    assert type(bigger) is type(d)
    assert bigger.log_prob(d.sample()).shape == (2, 4)

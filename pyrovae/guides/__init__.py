"""Amortized guides q(z|x).

A guide head is an ``nn.Module`` mapping encoder features ``(B, in_features)``
to a distribution over ``z`` with batch shape ``(B,)`` and event shape
``(latent_dim,)``; it must be reparameterizable. Registry: :data:`GUIDES`.
"""

from __future__ import annotations

from ..registry import Registry

GUIDES: Registry = Registry("guide")

from .base import GuideHead  # noqa: E402
from .flow import IAFGuide  # noqa: E402
from .gaussian import FullNormalGuide, LowRankNormalGuide  # noqa: E402
from .normal import DiagonalNormalGuide  # noqa: E402

__all__ = [
    "GUIDES",
    "DiagonalNormalGuide",
    "FullNormalGuide",
    "GuideHead",
    "IAFGuide",
    "LowRankNormalGuide",
]

r"""Procedural shapes with known generative factors (a small dSprites).

pyrovae draws these images itself, so they need no download and come out the same
on every machine. Each image is 32 x 32 grey levels in [0, 1]: one white shape on a
black background, anti-aliased by 4 x 4 supersampling (the grey value of a pixel is
the fraction of its 16 sub-pixel centres that fall inside the shape). The factors
are independent and every combination occurs once in the full factorial grid
(3 x 6 x 10 x 10 = 1,800 images), as in dSprites (Matthey et al. 2017):

=========  ======  =========================================================
factor     values  meaning
=========  ======  =========================================================
shape      3       0 square, 1 ellipse, 2 triangle
scale      6       size 0.5, 0.6, ..., 1.0; at 1.0 the shape's half-width is
                   6 px (square half-side 0.85 x 6 px, ellipse semi-axes
                   6 px and 3.9 px, triangle apex-to-base 12 px)
pos_x      10      centre x = 7, 9, ..., 25 px (0 = left)
pos_y      10      centre y = 7, 9, ..., 25 px (0 = top)
=========  ======  =========================================================

Labels are the factor *indices*, an ``(N, 4)`` integer array in the column order of
the table, so that analysis code (for example :mod:`pyrovae.analysis.disentanglement`)
can use them. ``pyrovae train --data shapes`` loads the full grid; :func:`make_shapes`
gives the grid or a seeded sample of it, and :class:`ShapesGenerator` renders the
image of any factor combination (the beta-VAE score draws images with one factor held
fixed this way).

Reference: L. Matthey, I. Higgins, D. Hassabis, A. Lerchner (2017), dSprites:
disentanglement testing sprites dataset, https://github.com/deepmind/dsprites-dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from . import DATASETS
from .datasets import RawData

SHAPE_NAMES = ("square", "ellipse", "triangle")


@dataclass(frozen=True)
class Factor:
    """One generative factor: its name and the values its indices stand for."""

    name: str
    values: tuple
    description: str = ""

    @property
    def size(self) -> int:
        return len(self.values)


class ShapesGenerator:
    """Renders shape images from factor indices (see the module docstring).

    Parameters
    ----------
    size : int
        Image height and width in pixels.
    n_scales : int
        Number of scale values between 0.5 and 1.0.
    n_positions : int
        Number of x (and of y) positions.
    supersample : int
        Sub-pixels per pixel along each axis used for anti-aliasing.
    """

    def __init__(
        self, size: int = 32, n_scales: int = 6, n_positions: int = 10, supersample: int = 4
    ) -> None:
        if size < 8 or n_scales < 1 or n_positions < 1 or supersample < 1:
            raise DataError(
                "shapes need size >= 8 and at least one scale, position and sub-pixel; got "
                f"size={size}, n_scales={n_scales}, n_positions={n_positions}, "
                f"supersample={supersample}"
            )
        self.size, self.supersample = int(size), int(supersample)
        self.radius = 6.0 * size / 32  # half-width at scale 1, in pixels
        margin = self.radius + 1.0
        scales = np.round(np.linspace(0.5, 1.0, n_scales), 6) if n_scales > 1 else np.ones(1)
        pos = np.linspace(margin, size - margin, n_positions)
        if n_positions == 1:
            pos = np.array([size / 2.0])
        self.factors = (
            Factor("shape", SHAPE_NAMES, "0 square, 1 ellipse, 2 triangle"),
            Factor("scale", tuple(float(s) for s in scales), "relative size"),
            Factor("pos_x", tuple(float(p) for p in pos), "centre x in pixels"),
            Factor("pos_y", tuple(float(p) for p in pos), "centre y in pixels"),
        )
        self._grid: torch.Tensor | None = None

    # -- factors ------------------------------------------------------------------
    @property
    def factor_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.factors)

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        return tuple(f.size for f in self.factors)

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def all_factors(self) -> np.ndarray:
        """Every factor combination, ``(prod(factor_sizes), 4)`` int64, in C order."""
        grids = np.meshgrid(*[np.arange(s) for s in self.factor_sizes], indexing="ij")
        return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor combinations drawn independently and uniformly, ``(n, 4)`` int64."""
        return np.stack([rng.integers(0, s, size=int(n)) for s in self.factor_sizes], axis=1)

    def _check(self, factors) -> np.ndarray:
        f = np.asarray(factors)
        if f.ndim != 2 or f.shape[1] != len(self.factors):
            raise DataError(
                f"factors must have shape (N, {len(self.factors)}); got {tuple(f.shape)}"
            )
        if not np.issubdtype(f.dtype, np.integer):
            raise DataError(f"factors must be integer indices; got dtype {f.dtype}")
        sizes = np.asarray(self.factor_sizes)
        if f.size and ((f < 0).any() or (f >= sizes).any()):
            raise DataError(f"factor indices out of range; the factor sizes are {tuple(sizes)}")
        return f.astype(np.int64)

    def index(self, factors) -> np.ndarray:
        """Position of each factor combination in :meth:`all_factors` (``(N,)``)."""
        f = self._check(factors)
        return np.ravel_multi_index(tuple(f.T), self.factor_sizes)

    # -- images ---------------------------------------------------------------------
    def draw(self, factors) -> torch.Tensor:
        """Render the images of ``factors`` (``(N, 4)`` indices): ``(N, 1, size, size)``."""
        f = self._check(factors)
        s, k = self.size, self.supersample
        # sub-pixel centres, in pixel units
        c = (np.arange(s * k) + 0.5) / k
        out = np.empty((f.shape[0], s, s), dtype=np.float32)
        for start in range(0, f.shape[0], 256):
            chunk = f[start : start + 256]
            shape = chunk[:, 0][:, None, None]
            r = (np.asarray(self.factors[1].values)[chunk[:, 1]] * self.radius)[:, None, None]
            dx = c[None, None, :] - np.asarray(self.factors[2].values)[chunk[:, 2]][:, None, None]
            dy = c[None, :, None] - np.asarray(self.factors[3].values)[chunk[:, 3]][:, None, None]
            square = (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
            ellipse = (dx / r) ** 2 + (dy / (0.65 * r)) ** 2 <= 1.0
            # upward triangle: apex at dy = -r, base at dy = +r, half-width r at the base
            triangle = (dy <= r) & (np.abs(dx) <= (dy + r) / 2.0)
            inside = np.where(shape == 0, square, np.where(shape == 1, ellipse, triangle))
            n = chunk.shape[0]
            out[start : start + n] = inside.reshape(n, s, k, s, k).mean(axis=(2, 4))
        return torch.from_numpy(out).unsqueeze(1)

    def grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The full factorial data set: images ``(M, 1, size, size)`` and factor indices
        ``(M, 4)``, in the order of :meth:`all_factors` (rendered once, then cached)."""
        factors = self.all_factors()
        if self._grid is None:
            self._grid = self.draw(factors)
        return self._grid, torch.from_numpy(factors)

    def render(self, factors) -> torch.Tensor:
        """Images of ``factors`` (``(N, 4)`` indices) looked up in the cached grid."""
        images, _ = self.grid()
        return images[torch.from_numpy(self.index(factors))]

    def factor_table(self) -> str:
        """The factors as a plain-text table (name, number of values, values)."""
        lines = []
        for f in self.factors:
            shown = ", ".join(str(v) if isinstance(v, str) else f"{v:g}" for v in f.values)
            lines.append(f"{f.name:<6} {f.size:>3}  {shown}")
        return "\n".join(lines)


#: The generator behind ``--data shapes``.
SHAPES = ShapesGenerator()


def make_shapes(
    n: int | None = None, seed: int = 0, generator: ShapesGenerator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape images and their factor indices.

    Parameters
    ----------
    n : int, optional
        None: the full factorial grid (every combination once, in C order). Otherwise
        ``n`` combinations drawn uniformly with the seed (without replacement when
        ``n`` does not exceed the grid, with replacement beyond it).
    seed : int
        Seed of the sample.
    generator : ShapesGenerator, optional
        Another geometry (default: the one behind ``--data shapes``).

    Returns
    -------
    x : Tensor
        ``(N, 1, size, size)`` float32 in [0, 1].
    y : Tensor
        ``(N, 4)`` int64 factor indices (shape, scale, pos_x, pos_y).
    """
    gen = generator or SHAPES
    images, factors = gen.grid()
    if n is None:
        return images.clone(), factors.clone()
    if int(n) < 1:
        raise DataError(f"n must be a positive number of images; got {n}")
    rng = np.random.default_rng(int(seed))
    total = images.shape[0]
    idx = torch.from_numpy(rng.choice(total, size=int(n), replace=int(n) > total))
    return images[idx], factors[idx]


@DATASETS.register("shapes")
def load_shapes(root=None, download: bool = True) -> RawData:
    """Procedural 32x32 shapes (square/ellipse/triangle x 6 scales x 10 x 10 positions)."""
    x, y = make_shapes()
    return RawData(x=x, y=y, is_image=True, likelihood="bernoulli")


#: Datasets with known factors expose their generator on the registered loader.
load_shapes.factor_generator = SHAPES


def factor_generator(spec: str):
    """The :class:`ShapesGenerator`-like object of a registered dataset with known
    factors (it has ``factor_sizes``, ``sample_factors``, ``render``, ``grid``), or None."""
    if str(spec) not in DATASETS:
        return None
    return getattr(DATASETS.get(str(spec)), "factor_generator", None)

"""Figures of the HTML report: slerp, traversals, the 2-D projection, the plots."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from pyrovae.report import figures
from pyrovae.report.figures import lerp, project_2d, slerp, traversal_codes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _angle(u: torch.Tensor, v: torch.Tensor) -> float:
    cos = torch.dot(u, v) / (u.norm() * v.norm())
    return float(torch.arccos(cos.clamp(-1, 1)))


def _image(png: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    assert png[:8] == PNG_SIGNATURE
    return mpimg.imread(io.BytesIO(png), format="png")


def test_slerp_endpoints_are_the_inputs():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g).double()
    path = slerp(a, b, torch.tensor([0.0, 1.0]))
    assert path.shape == (2, 8)
    torch.testing.assert_close(path[0], a, atol=1e-12, rtol=0)
    torch.testing.assert_close(path[1], b, atol=1e-12, rtol=0)


def test_slerp_keeps_the_norm_and_moves_at_constant_angle():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(16, generator=g, dtype=torch.float64)
    b = torch.randn(16, generator=g, dtype=torch.float64)
    b = b / b.norm() * a.norm()  # equal norms
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    path = slerp(a, b, t)
    torch.testing.assert_close(path.norm(dim=1), a.norm().expand(11), atol=1e-10, rtol=0)
    omega = _angle(a, b)
    for ti, z in zip(t, path, strict=True):  # angle from a grows linearly: t * Omega
        assert _angle(a, z) == pytest.approx(float(ti) * omega, abs=1e-7)
    # the linear path's midpoint is shorter: ||a + b|| / 2 = ||a|| cos(Omega / 2)
    mid = lerp(a, b, torch.tensor([0.5], dtype=torch.float64))[0]
    assert float(mid.norm()) == pytest.approx(float(a.norm()) * math.cos(omega / 2), rel=1e-10)
    assert float(mid.norm()) < float(path[5].norm()) - 0.1


def test_slerp_of_orthogonal_unit_vectors_is_the_quarter_circle():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    t = torch.tensor([0.0, 1 / 3, 0.5, 1.0])
    expected = torch.stack([torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)], 1)
    torch.testing.assert_close(slerp(a, b, t), expected, atol=1e-6, rtol=0)


def test_slerp_falls_back_to_lerp_for_parallel_codes():
    a = torch.tensor([1.0, 2.0, -1.0])
    t = torch.linspace(0, 1, 5)
    path = slerp(a, 3 * a, t)
    assert torch.isfinite(path).all()
    torch.testing.assert_close(path, lerp(a, 3 * a, t))


def test_traversal_codes_vary_one_coordinate():
    z0 = torch.tensor([0.5, -1.0, 2.0, 0.0])
    values = torch.linspace(-3, 3, 7)
    codes = traversal_codes(z0, [2, 0], values)
    assert codes.shape == (2, 7, 4)
    torch.testing.assert_close(codes[0, :, 2], values)
    torch.testing.assert_close(codes[1, :, 0], values)
    for i, d in enumerate([2, 0]):
        others = [k for k in range(4) if k != d]
        torch.testing.assert_close(codes[i][:, others], z0[others].expand(7, 3))


def test_traversal_codes_take_one_range_per_dimension():
    z0 = torch.zeros(3)
    values = np.array([[0.0, 1.0], [-5.0, 5.0]])
    codes = traversal_codes(z0, [1, 2], values)
    assert codes.shape == (2, 2, 3)
    assert codes[1, :, 2].tolist() == [-5.0, 5.0]
    assert codes[0, :, 1].tolist() == [0.0, 1.0]


def test_project_2d_keeps_small_latents_and_finds_the_main_plane():
    one, labels = project_2d(np.array([[1.0], [2.0]]))
    assert one.shape == (2, 2) and one[:, 1].tolist() == [0.0, 0.0]
    two, labels = project_2d(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert labels == ("z[0]", "z[1]") and two.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    g = np.random.default_rng(0)
    plane = g.normal(size=(500, 2)) * [5.0, 2.0]
    mu = np.c_[plane, 0.01 * g.normal(size=(500, 3))]
    rotation, _ = np.linalg.qr(g.normal(size=(5, 5)))
    xy, labels = project_2d(mu @ rotation)
    # the projection keeps (almost) all the variance: 25 + 4 of 29.0005
    assert xy.var(0).sum() == pytest.approx((mu - mu.mean(0)).var(0).sum(), rel=1e-4)
    assert labels[0].startswith("PC 1") and "%" in labels[0]


def test_curves_handle_missing_and_nan_columns():
    vae = [
        {
            "epoch": e,
            "train_elbo": -30 + e,
            "val_elbo": -31 + e,
            "train_recon": -29.0,
            "val_recon": None,
            "train_kl": 1.0,
            "val_kl": 1.1,
        }
        for e in range(1, 6)
    ]
    assert _image(figures.plot_curves(vae)).shape[1] > 600  # three panels
    ae = [
        {
            "epoch": e,
            "train_loss": 30 - e,
            "train_elbo": math.nan,
            "train_kl": 0.0,
            "train_recon": e - 30.0,
        }
        for e in range(1, 4)
    ]
    ae_png = figures.plot_curves(ae, latent=False)
    assert _image(ae_png).shape[1] < _image(figures.plot_curves(vae)).shape[1]
    assert figures.plot_curves([]) is None
    assert figures.plot_curves([{"epoch": 1, "train_elbo": math.nan}]) is None


def test_plots_are_png_with_content():
    g = np.random.default_rng(0)
    for png in (
        figures.plot_kl_per_dim([0.5, 0.001, 2.0], activity=[0.3, 0.0, 1.0]),
        figures.plot_latent_2d(g.normal(size=(50, 4)), labels=np.arange(50) % 3),
        figures.plot_latent_2d(g.normal(size=(50, 1))),
        figures.plot_traversal_images(torch.rand(3, 5, 1, 8, 8), [0, 1, 2], np.linspace(-3, 3, 5)),
        figures.plot_traversal_features(g.normal(size=(2, 5, 3)), [0, 1], np.linspace(-3, 3, 5)),
        figures.plot_interpolation_features(
            g.normal(size=(6, 3)), g.normal(size=(6, 3)), np.linspace(0, 1, 6)
        ),
        figures.scatter_matrix_png({"a": torch.randn(40, 3), "b": torch.randn(40, 3)}),
    ):
        img = _image(png)
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.05  # not a blank canvas


@pytest.fixture
def drawn(monkeypatch):
    """The figures that figures.figure_png turns into PNG bytes during the test."""
    figs = []
    png = figures.figure_png

    def record(fig, *args, **kwargs):
        figs.append(fig)
        return png(fig, *args, **kwargs)

    monkeypatch.setattr(figures, "figure_png", record)
    return figs


def _texts(fig) -> set[str]:
    out = set()
    for ax in fig.axes:
        out |= {t.get_text() for t in ax.get_xticklabels()}
        legend = ax.get_legend()
        if legend is not None:
            out |= {t.get_text() for t in legend.get_texts()}
    return out


def test_tabular_figures_name_the_features(drawn):
    g = np.random.default_rng(0)
    names = ["mean radius", "mean texture", "worst area"]
    figures.plot_traversal_features(
        g.normal(size=(2, 5, 3)), [0, 1], np.linspace(-3, 3, 5), names=names
    )
    figures.plot_interpolation_features(
        g.normal(size=(6, 3)), g.normal(size=(6, 3)), np.linspace(0, 1, 6), names=names
    )
    figures.plot_feature_sd(g.random(size=(4, 3)), names=names)
    traversal, interpolation, sd = (_texts(f) for f in drawn)
    assert set(names) <= traversal
    assert {f"{n}, linear" for n in names} | {f"{n}, slerp" for n in names} <= interpolation
    assert set(names) <= sd
    # unnamed data keep the indices
    drawn.clear()
    figures.plot_traversal_features(g.normal(size=(1, 5, 2)), [0], np.linspace(-3, 3, 5))
    assert {"feature 0", "feature 1"} <= _texts(drawn[0])

"""Figure helpers shared by run folders, analyses and reports: axis labels of the
scatter matrix come from the features' names."""

from __future__ import annotations

import matplotlib.figure
import pytest
import torch

from pyrovae.plotting import feature_labels, save_scatter_matrix


@pytest.fixture
def saved_figures(monkeypatch):
    """The matplotlib figures saved during the test."""
    figs = []
    save = matplotlib.figure.Figure.savefig

    def record(self, *args, **kwargs):
        figs.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return figs


def test_feature_labels():
    assert feature_labels(["a", "b", "c"], 2) == ["a", "b"]
    assert feature_labels(None, 2) == ["feature 0", "feature 1"]
    assert feature_labels(["a"], 2) == ["feature 0", "feature 1"]  # too few names


@pytest.mark.parametrize(
    "names, expected",
    [
        (["mean radius", "mean texture", "target"], ["mean radius", "mean texture", "target"]),
        (None, ["feature 0", "feature 1", "feature 2"]),
    ],
)
def test_scatter_matrix_axes_name_the_features(tmp_path, saved_figures, names, expected):
    x = torch.randn(50, 3)
    save_scatter_matrix(tmp_path / "m.png", {"data": x, "samples": x + 1}, names=names)
    (fig,) = saved_figures
    axes = fig.axes
    assert [ax.get_xlabel() for ax in axes[-3:]] == expected  # the bottom row
    assert [axes[3 * i].get_ylabel() for i in range(3)] == expected  # the left column
    assert (tmp_path / "m.png").stat().st_size > 0

"""The package's face: the public API at the top level (``pyrovae.VAE``), resolved on
first use so that ``import pyrovae`` does not import torch, and the same objects as
``pyrovae.api``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pyrovae
import pyrovae.api

ROOT = Path(pyrovae.__file__).resolve().parents[1]


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "", "OMP_NUM_THREADS": "1"},
    )
    return out.stdout.strip()


def test_torch_is_imported_when_an_attribute_is_touched_not_before():
    code = (
        "import sys, pyrovae; print('torch' in sys.modules, 'pyrovae.api' in sys.modules); "
        "pyrovae.__version__; print('torch' in sys.modules); "
        "v = pyrovae.VAE(latent_dim=2); print('torch' in sys.modules, type(v).__name__, "
        "v.latent_dim, v is not None and pyrovae.VAE is sys.modules['pyrovae.api'].VAE)"
    )
    assert _python(code).splitlines() == ["False False", "False", "True VAE 2 True"]


def test_the_top_level_exports_are_the_api():
    assert set(pyrovae.__all__) == {"__version__", *pyrovae.api.__all__}
    for name in pyrovae.api.__all__:
        assert getattr(pyrovae, name) is getattr(pyrovae.api, name), name
        assert name in dir(pyrovae)
    from pyrovae import VAE, load

    assert VAE is pyrovae.api.VAE and load is pyrovae.api.load


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'pyrovae' has no attribute 'VEA'"):
        pyrovae.VEA  # noqa: B018


def test_a_top_level_vae_fits(digits):
    vae = pyrovae.VAE(latent_dim=2, hidden=(16,), epochs=1).fit(digits.train[:64])
    assert isinstance(vae, pyrovae.Estimator) and vae.n_epochs_ == 1

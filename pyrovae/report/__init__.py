"""Figures written into run folders (matplotlib, Agg backend) and the HTML report of a
run (:func:`build_report`, ``pyrovae report RUN``)."""

from ..plotting import image_grid, save_image_rows, save_scatter_matrix
from .figures import lerp, slerp, traversal_codes
from .html import build_report

__all__ = [
    "build_report",
    "image_grid",
    "lerp",
    "save_image_rows",
    "save_scatter_matrix",
    "slerp",
    "traversal_codes",
]

"""Figures written into run folders (matplotlib, Agg backend)."""

from .images import image_grid, save_image_rows, save_scatter_matrix

__all__ = ["image_grid", "save_image_rows", "save_scatter_matrix"]

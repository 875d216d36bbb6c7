"""Axis labels shared by every plot, so the same coordinate is named the same way everywhere.

Indices are 0-based in the calls and 1-based in the text (``pc_label(0)`` is ``"PC1"``); explained-variance
ratios are fractions (0.524 is written ``52.4 %``).
"""

from __future__ import annotations


def _with_ratio(name: str, ratio: float | None) -> str:
    return name if ratio is None else f"{name} ({100 * float(ratio):.1f} %)"


def pc_label(i: int, ratio: float | None = None) -> str:
    """``PC1``, ``PC2`` … of the latent space, with the explained variance when given: ``PC1 (52.4 %)``."""
    return _with_ratio(f"PC{i + 1}", ratio)


def umap_label(i: int) -> str:
    """``UMAP1`` or ``UMAP2``."""
    return f"UMAP{i + 1}"


def latent_label(i: int | None = None) -> str:
    """``z`` (a 1-D latent space) or ``z1``, ``z2`` … (one coordinate of a larger one)."""
    return "z" if i is None else f"z{i + 1}"


def volume_pc_label(i: int, ratio: float | None = None) -> str:
    """``volume PC1 (31.0 %)``: a principal component of a series of maps (not of the latent space)."""
    return _with_ratio(f"volume PC{i + 1}", ratio)


def view_labels(view: str) -> tuple[str, str]:
    """The x and y labels of a 2-D view of the latent space: ``"pca"`` → PC1/PC2, ``"umap"`` → UMAP1/UMAP2."""
    if view == "pca":
        return pc_label(0), pc_label(1)
    if view == "umap":
        return umap_label(0), umap_label(1)
    raise ValueError(f"unknown latent view {view!r} (expected 'pca' or 'umap')")

"""Select particles of a trained run: by k-means cluster, Gaussian-mixture component, threshold, state or file.

Every selection is a boolean mask over the rows of ``run.z`` (one row per particle the run was trained on, in
increasing original index) and is reported as 0-based indices into the *original* particle file, through any
training ``--ind`` subset. The complement is the other particles *of the run* (inside its training subset).
Several criteria combine by intersection (a particle must satisfy all of them).

Ids a user sees are 1-based: k-means clusters as ``cryoscape analyze`` numbers them, Gaussian-mixture components
ordered by the first principal coordinate of their means, landscape states as ``analyze-landscape`` numbers them.
The pipeline of ``cryoscape select`` (criteria → selection → index files) is :mod:`cryoscape.analysis.selection`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoscape.errors import InputError
from cryoscape.runs.layout import AnalysisLayout

_THRESHOLD_RE = re.compile(r"^\s*(z|pc)?(\d+|norm)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Threshold:
    """One threshold criterion ``<quantity> <op> <value>``.

    Attributes
    ----------
    quantity : str
        ``"z"`` (a latent coordinate), ``"pc"`` (a principal coordinate) or ``"norm"`` (‖z‖).
    dim : int
        0-based dimension for ``z``/``pc`` (the text is 1-based: ``z1``, ``pc2``); 0 for ``norm``.
    op : str
        ``<``, ``<=``, ``>`` or ``>=``.
    value : float
    """

    quantity: str
    dim: int
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Parse ``z1>0.5``, ``pc2<=-1``, ``norm>2`` (1-based dimensions)."""
        match = _THRESHOLD_RE.match(text.replace(" ", ""))
        if match is None:
            raise InputError(f"cannot read the threshold {text!r}",
                             fix="write e.g. z1>0.5, pc2<=-1.2 or norm>2 (dimensions are 1-based)")
        prefix, dim, op, value = match.groups()
        if dim == "norm":
            if prefix is not None:
                raise InputError(f"cannot read the threshold {text!r}", fix="write norm>2 for ‖z‖")
            return cls("norm", 0, op, float(value))
        if prefix is None:
            raise InputError(f"cannot read the threshold {text!r}", fix="name the quantity: z1, pc1 or norm")
        if int(dim) < 1:
            raise InputError(f"threshold {text!r}: dimensions are numbered from 1", fix="write z1, pc1, ...")
        return cls(prefix, int(dim) - 1, op, float(value))

    def __str__(self) -> str:
        name = "norm" if self.quantity == "norm" else f"{self.quantity}{self.dim + 1}"
        return f"{name}{self.op}{self.value:g}"

    def mask(self, z: np.ndarray, pcs: np.ndarray | None = None) -> np.ndarray:
        """Rows of ``z`` (N, zdim) that satisfy the threshold (``pcs``: principal coordinates, computed if None)."""
        z = np.asarray(z, dtype=np.float64)
        if self.quantity == "norm":
            values = np.linalg.norm(z, axis=1)
        else:
            if self.dim >= z.shape[1]:
                raise InputError(f"threshold {self}: the latent space has only {z.shape[1]} dimension(s)",
                                 fix=f"use {self.quantity}1 … {self.quantity}{z.shape[1]}")
            if self.quantity == "z":
                values = z[:, self.dim]
            else:
                if pcs is None:
                    from cryoscape.analysis.latent import fit_pca

                    pcs = fit_pca(z).transform(z)
                values = pcs[:, self.dim]
        return {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[self.op](
            values, self.value)


@dataclass(frozen=True)
class GMMResult:
    """Gaussian mixture of latent encodings.

    Attributes
    ----------
    labels : ndarray (N,) int64
        1-based component of each row (components ordered by the first principal coordinate of their means).
    means : ndarray (K, zdim)
    weights : ndarray (K,)
    """

    labels: np.ndarray
    means: np.ndarray
    weights: np.ndarray


def fit_gmm(z: np.ndarray, k: int, seed: int = 0, covariance_type: str = "full") -> GMMResult:
    """Fit a K-component Gaussian mixture (scikit-learn, 5 restarts) to ``z`` (N, zdim); 1-based labels."""
    from sklearn.mixture import GaussianMixture

    z = np.asarray(z, dtype=np.float64)
    if k < 1 or k > len(z):
        raise InputError(f"--gmm {k}: needs 1 ≤ K ≤ the number of particles ({len(z)})")
    model = GaussianMixture(n_components=k, covariance_type=covariance_type, n_init=5, random_state=seed).fit(z)
    raw = model.predict(z)
    means = model.means_
    if z.shape[1] > 1 and len(z) > 1:
        from cryoscape.analysis.latent import fit_pca

        key = fit_pca(z).transform(means)[:, 0]
    else:
        key = means[:, 0]
    order = np.argsort(key, kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(1, k + 1)
    return GMMResult(labels=rank[raw], means=means[order], weights=model.weights_[order])


def read_labels(path: str | os.PathLike, n_rows: int, what: str, fix: str) -> np.ndarray:
    """Read 1-based labels (one integer a line, line i = row i of z); InputError unless there are ``n_rows``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found", path=path, fix=fix)
    try:
        labels = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except ValueError as exc:
        raise InputError(f"cannot read {what}: {exc}", path=path, fix=fix) from exc
    if labels.shape != (n_rows,):
        raise InputError(f"{what} has {labels.size} lines but the run has {n_rows} particles", path=path,
                         fix="the labels belong to another run or epoch: " + fix)
    if labels.size and labels.min() < 1:
        raise InputError(f"{what} holds label {int(labels.min())}; labels are 1-based", path=path, fix=fix)
    return labels


def kmeans_labels(analysis: AnalysisLayout | str | os.PathLike, k: int, n_rows: int) -> np.ndarray:
    """The 1-based k-means labels written by ``cryoscape analyze`` into ``analysis`` (an analyze.N folder)."""
    if not isinstance(analysis, AnalysisLayout):
        analysis = AnalysisLayout(Path(analysis))
    return read_labels(analysis.kmeans(k).labels, n_rows, f"k-means labels (K={k})",
                       fix=f"run `cryoscape analyze RUN` with {k} k-means clusters first, for the same epoch")


def ids_mask(labels: np.ndarray, ids: Sequence[int], what: str) -> np.ndarray:
    """Rows whose 1-based label is in ``ids``; InputError for an id no row has and that exceeds the maximum."""
    ids = [int(i) for i in ids]
    top = int(labels.max(initial=0))
    bad = [i for i in ids if i < 1 or i > top]
    if bad:
        raise InputError(f"{what} {bad} do not exist (ids are 1 … {top})", fix=f"choose {what} between 1 and {top}")
    return np.isin(labels, ids)


def group_counts(labels: np.ndarray, mask: np.ndarray) -> dict[int, int]:
    """{1-based label: number of selected rows with it} for labels with at least one selected row."""
    values, counts = np.unique(labels[mask], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


@dataclass(frozen=True)
class Selection:
    """A selection of particles of a run.

    Attributes
    ----------
    mask : ndarray (N,) bool
        Over the rows of ``run.z``.
    indices : ndarray (K,) int64
        Original 0-based indices of the selected particles (increasing).
    inverse_indices : ndarray (N-K,) int64
        Original indices of the other particles of the run.
    criteria : tuple of str
        What was applied (for messages).
    """

    mask: np.ndarray
    indices: np.ndarray
    inverse_indices: np.ndarray
    criteria: tuple[str, ...]

    @property
    def count(self) -> int:
        return int(self.mask.sum())


def make_selection(run_indices: np.ndarray, masks: Sequence[tuple[str, np.ndarray]]) -> Selection:
    """Intersect the named masks (over rows) and map them to original indices (at least one mask)."""
    if not masks:
        raise InputError("no selection criterion given",
                         fix="use --kmeans K --clusters …, --gmm K --components …, --threshold, --state or "
                         "--from-file")
    mask = np.ones(len(run_indices), dtype=bool)
    for _, m in masks:
        mask &= np.asarray(m, dtype=bool)
    run_indices = np.asarray(run_indices, dtype=np.int64)
    return Selection(mask=mask, indices=run_indices[mask], inverse_indices=run_indices[~mask],
                     criteria=tuple(name for name, _ in masks))


def from_file_mask(run, path: str | os.PathLike) -> np.ndarray:
    """Rows of ``run`` whose original index is listed in the index file (.txt/.npy/.pkl; 0-based original)."""
    from cryoscape.io.legacy import read_index

    original = read_index(path)
    mask = np.zeros(len(run.indices), dtype=bool)
    try:
        mask[run.rows_of(original)] = True
    except InputError as exc:
        raise InputError(exc.problem, path=path, fix="the file must list 0-based original particle indices of "
                         "particles this run was trained on") from None
    return mask


def describe_counts(counts: dict[int, int], totals: dict[int, int], what: str) -> str:
    """``cluster 1: 40/40, cluster 3: 12/51`` (selected / cluster size)."""
    return ", ".join(f"{what} {k}: {v}/{totals.get(k, v)}" for k, v in sorted(counts.items()))

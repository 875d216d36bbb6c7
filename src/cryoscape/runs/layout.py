"""Every file name a run folder can hold, below the training files: analysis, landscape, traversals, reports.

The training files themselves (``config.yaml``, ``weights.N.pt``, ``z.N.npz`` …) are named by
:class:`cryoscape.runs.folder.RunDir`; this module names what the analysis commands add to a run, so that no other
module spells a path of the run folder. Layout (``N`` = epoch, ``K`` = number of k-means clusters)::

    RUN/analyze.N/                 AnalysisLayout  (cryoscape analyze)
        analysis.json              summary: files, PCA variance, timings
        pca.npy  umap.npy          (n, zdim) PCA coordinates, (n, 2) UMAP embedding
        learning_curve.png  pca_explained_variance.png  z_pca_{kind}.png  umap_{kind}.png  z_hist.png …
        kmeansK/                   SeriesLayout: labels.txt, centers.txt, centers_ind.txt, z_values.txt,
                                   vol_001.mrc …, montage.png, kmeansK.cxc, z_pca.png, umap.png
        pcI/                       SeriesLayout of the I-th PC traversal
        analyze.ipynb  report.html
        compare_RUN2/              ComparisonLayout (cryoscape compare-runs RUN RUN2)
    RUN/landscape.N/               LandscapeLayout (cryoscape analyze-landscape)
    RUN/traversals.N/NAME/         SeriesLayout (pc-traversal, graph-traversal, direct-traversal)
    RUN/selections/                selections written from the report or ``cryoscape select``
    NAME_validate/                 ValidationLayout, next to a selection or exported .star/.cs (``--validate``)

Each layout is a frozen value naming paths; it creates nothing. Readers that need a file say which kind of file
they need, so an error can name the command that writes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

KMEANS_RE = re.compile(r"^kmeans(\d+)$")
PC_RE = re.compile(r"^pc(\d+)$")
POSES_RE = re.compile(r"^poses\.(\d+)\.npz$")
SERIES_PREFIX = "vol_"
#: kinds of the joint particle plots of analyze (scatter, hexbin density, density contour)
JOINT_KINDS = ("scatter", "hexbin", "contour")


def series_names(count: int, prefix: str = SERIES_PREFIX, first: int = 1) -> list[str]:
    """Map file names of a series: ``vol_001.mrc``, ``vol_002.mrc`` … numbered from ``first``.

    Every name of one series has the same number of digits (three at least), so the names sort in map order.
    """
    width = max(3, len(str(first + int(count) - 1)))
    return [f"{prefix}{i:0{width}d}.mrc" for i in range(first, first + int(count))]


@dataclass(frozen=True)
class SeriesLayout:
    """A folder holding a series of latent points and, optionally, their maps and pictures.

    Used for k-means centres, PC traversals, graph/direct traversals and landscape state maps.
    """

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def z_values(self) -> Path:
        """``z_values.txt``: (n, zdim) latent points, one per row."""
        return self.root / "z_values.txt"

    @property
    def labels(self) -> Path:
        """``labels.txt``: 1-based cluster label of every particle (k-means folders)."""
        return self.root / "labels.txt"

    @property
    def centers(self) -> Path:
        """``centers.txt``: (K, zdim) cluster centres."""
        return self.root / "centers.txt"

    @property
    def centers_ind(self) -> Path:
        """``centers_ind.txt``: original particle index of the on-data centre of each cluster."""
        return self.root / "centers_ind.txt"

    @property
    def path_ind(self) -> Path:
        """``path_ind.txt``: original particle indices along a graph path."""
        return self.root / "path_ind.txt"

    @property
    def montage(self) -> Path:
        return self.root / "montage.png"

    @property
    def chimerax_script(self) -> Path:
        """``NAME.cxc``: ChimeraX script opening the maps as a volume series."""
        return self.root / f"{self.root.name}.cxc"

    @property
    def summary(self) -> Path:
        """``series.json``: what the series is (points, anchors, files)."""
        return self.root / "series.json"

    def map_paths(self, count: int, prefix: str = SERIES_PREFIX) -> list[Path]:
        return [self.root / name for name in series_names(count, prefix)]

    def existing_maps(self, prefix: str = SERIES_PREFIX) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob(f"{prefix}*.mrc") if p.is_file())

    def figure(self, name: str) -> Path:
        """A picture of this series (``z_pca.png``, ``umap.png``, ``traversal.png`` …)."""
        return self.root / name

    @property
    def pca_figure(self) -> Path:
        """``z_pca.png``: the series' points (or clusters) on the first two PCs."""
        return self.root / "z_pca.png"

    @property
    def umap_figure(self) -> Path:
        """``umap.png``: the series' points (or clusters) on the UMAP embedding."""
        return self.root / "umap.png"

    @property
    def traversal_figure(self) -> Path:
        """``traversal.png``: the traversal's points over the particles."""
        return self.root / "traversal.png"

    @property
    def histogram_figure(self) -> Path:
        """``z_hist.png``: 1-D latent histogram with the series' points marked (zdim 1)."""
        return self.root / "z_hist.png"


@dataclass(frozen=True)
class AnalysisLayout:
    """``RUN/analyze.N``: the output of ``cryoscape analyze`` for one epoch."""

    root: Path

    @property
    def summary(self) -> Path:
        return self.root / "analysis.json"

    @property
    def pca(self) -> Path:
        return self.root / "pca.npy"

    @property
    def umap(self) -> Path:
        return self.root / "umap.npy"

    @property
    def notebook(self) -> Path:
        return self.root / "analyze.ipynb"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def figure(self, name: str) -> Path:
        """A top-level picture (``learning_curve.png``, ``z_pca_hexbin.png`` …)."""
        return self.root / name

    @property
    def learning_curve(self) -> Path:
        """``learning_curve.png``: training loss, reconstruction error and KL per epoch."""
        return self.root / "learning_curve.png"

    @property
    def pca_variance(self) -> Path:
        """``pca_explained_variance.png``: explained variance ratio of each PC."""
        return self.root / "pca_explained_variance.png"

    def pca_figure(self, kind: str) -> Path:
        """``z_pca_{kind}.png``: particles on PC1/PC2 (kind in :data:`JOINT_KINDS`)."""
        return self.root / f"z_pca_{kind}.png"

    def umap_figure(self, kind: str) -> Path:
        """``umap_{kind}.png``: particles on the UMAP embedding (kind in :data:`JOINT_KINDS`)."""
        return self.root / f"umap_{kind}.png"

    @property
    def z_histogram(self) -> Path:
        """``z_hist.png``: histogram of a 1-D latent."""
        return self.root / "z_hist.png"

    @property
    def z_vs_index(self) -> Path:
        """``z_vs_index.png``: a 1-D latent against the particle index."""
        return self.root / "z_vs_index.png"

    @property
    def percentiles(self) -> SeriesLayout:
        """``percentiles/``: maps at the 5th … 95th percentiles of a 1-D latent."""
        return SeriesLayout(self.root / "percentiles")

    def kmeans(self, k: int) -> SeriesLayout:
        return SeriesLayout(self.root / f"kmeans{int(k)}")

    def pc(self, index: int) -> SeriesLayout:
        """The traversal along the 1-based principal component ``index``."""
        return SeriesLayout(self.root / f"pc{int(index)}")

    def kmeans_values(self) -> list[int]:
        """K of every ``kmeansK`` folder holding labels, increasing."""
        found = []
        if self.root.is_dir():
            for child in self.root.iterdir():
                m = KMEANS_RE.match(child.name)
                if m and (child / "labels.txt").is_file():
                    found.append(int(m.group(1)))
        return sorted(found)

    def comparison(self, other: str) -> ComparisonLayout:
        """``compare_OTHER/``: ``cryoscape compare-runs`` of this run against the run folder named ``other``."""
        return ComparisonLayout(self.root / f"compare_{other}")

    def pc_values(self) -> list[int]:
        """Index of every ``pcI`` folder, increasing."""
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for c in self.root.iterdir() if (m := PC_RE.match(c.name)) and c.is_dir())


@dataclass(frozen=True)
class LandscapeLayout:
    """``RUN/landscape.N``: the output of ``cryoscape analyze-landscape``."""

    root: Path

    @property
    def summary(self) -> Path:
        return self.root / "landscape.json"

    @property
    def mask(self) -> Path:
        return self.root / "mask.mrc"

    @property
    def labels(self) -> Path:
        """``labels.txt``: 1-based state of every particle."""
        return self.root / "labels.txt"

    @property
    def volume_pca(self) -> Path:
        return self.root / "volume_pca.npy"

    @property
    def centres(self) -> SeriesLayout:
        """``centers/``: the sketch's centre maps, their latent points and states."""
        return SeriesLayout(self.root / "centers")

    @property
    def centre_states(self) -> Path:
        """``centers/states.txt``: state of every centre map."""
        return self.centres.root / "states.txt"

    def state_mean(self, state: int) -> Path:
        """``state_NN_mean.mrc``: particle-weighted mean map of a 1-based state."""
        return self.root / f"state_{int(state):02d}_mean.mrc"

    def state_std(self, state: int) -> Path:
        """``state_NN_std.mrc``: standard deviation map of a 1-based state."""
        return self.root / f"state_{int(state):02d}_std.mrc"

    def state_indices(self, state: int) -> Path:
        """``state_NN_indices.txt``: original indices of the particles of a 1-based state."""
        return self.root / f"state_{int(state):02d}_indices.txt"

    @property
    def montage(self) -> Path:
        return self.root / "montage.png"

    @property
    def chimerax_script(self) -> Path:
        return self.root / f"{self.root.name}.cxc"

    def figure(self, name: str) -> Path:
        return self.root / name


@dataclass(frozen=True)
class TraversalsLayout:
    """``RUN/traversals.N``: one folder per trajectory command (``pc1``, ``graph_3-7``, ``direct_1-5`` …)."""

    root: Path

    def series(self, name: str) -> SeriesLayout:
        return SeriesLayout(self.root / name)

    def pc(self, index: int) -> SeriesLayout:
        """``pcI``: the traversal along the 1-based principal component ``index`` (pc-traversal)."""
        return self.series(f"pc{int(index)}")

    def graph(self, anchors: tuple[int, ...], kmeans: int | None = None) -> SeriesLayout:
        """``graph_A-B…`` (particle anchors) or ``graph_kK_A-B…`` (k-means cluster anchors): graph-traversal."""
        return self.series(_anchored_name("graph", anchors, kmeans))

    def direct(self, anchors: tuple[int, ...], kmeans: int | None = None, loop: bool = False) -> SeriesLayout:
        """``direct_A-B…`` / ``direct_kK_A-B…`` (``-loop`` appended with ``loop``): direct-traversal."""
        return self.series(_anchored_name("direct", anchors, kmeans) + ("-loop" if loop else ""))


def _anchored_name(kind: str, anchors: tuple[int, ...], kmeans: int | None) -> str:
    tag = "-".join(str(int(a)) for a in anchors)
    return f"{kind}_k{int(kmeans)}_{tag}" if kmeans is not None else f"{kind}_{tag}"


@dataclass(frozen=True)
class SelectionsLayout:
    """``RUN/selections``: index files written by ``cryoscape select`` or downloaded from the report."""

    root: Path

    def selection(self, name: str) -> Path:
        """``NAME.txt``: 0-based original particle indices, one per line."""
        return self.root / f"{name}.txt"

    def default_selection(self, epoch: int, criteria: str) -> Path:
        """``epochN_CRITERIA.txt``: what ``cryoscape select`` writes without ``-o`` (e.g. ``epoch9_k20-c1-2``)."""
        return self.selection(f"epoch{int(epoch)}_{criteria}")


@dataclass(frozen=True)
class ComparisonLayout:
    """A folder written by ``cryoscape compare-runs`` (anywhere; by default ``RUN1/analyze.N/compare_RUN2``)."""

    root: Path

    @property
    def summary(self) -> Path:
        """``comparison.json``: every agreement measure, its chance level and the verdict."""
        return self.root / "comparison.json"

    @property
    def confusion_csv(self) -> Path:
        return self.root / "confusion.csv"

    @property
    def confusion_png(self) -> Path:
        return self.root / "confusion.png"


@dataclass(frozen=True)
class AbinitLayout:
    """``RUN/abinit/``: the pose search of ``cryoscape abinit`` (N counts search epochs, not training epochs)."""

    root: Path

    @property
    def config(self) -> Path:
        """``config.yaml``: the AbinitRunConfig."""
        return self.root / "config.yaml"

    def poses(self, epoch: int) -> Path:
        """``poses.N.npz``: rotations, shifts, scores and particle indices after search epoch N."""
        return self.root / f"poses.{int(epoch)}.npz"

    def map(self, epoch: int) -> Path:
        """``map.N.mrc``: the back-projection with the poses of epoch N."""
        return self.root / f"map.{int(epoch)}.mrc"

    def half_map(self, half: int, epoch: int) -> Path:
        """``half1.N.mrc`` / ``half2.N.mrc``: the half-maps of epoch N (the next epoch's search references)."""
        return self.root / f"half{int(half)}.{int(epoch)}.mrc"

    @property
    def log(self) -> Path:
        """``log.txt``: cost per image per search level and time per epoch."""
        return self.root / "log.txt"

    @property
    def poses_pickle(self) -> Path:
        """``poses.pkl``: the final poses as a cryoDRGN pose pickle (what the training stage reads)."""
        return self.root / "poses.pkl"

    def pose_epochs(self) -> list[int]:
        """Epochs with a ``poses.N.npz``, increasing."""
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.root.iterdir() if (m := POSES_RE.match(p.name)))


def analysis_dir_name(epoch: int) -> str:
    return f"analyze.{int(epoch)}"


def landscape_dir_name(epoch: int) -> str:
    return f"landscape.{int(epoch)}"


def traversals_dir_name(epoch: int) -> str:
    return f"traversals.{int(epoch)}"

"""The Jupyter notebook ``cryoscape analyze`` writes: the same figures, made with the Python API.

The notebook opens the run with :class:`cryoscape.analysis.api.TrainedRun`, recomputes PCA and k-means (and
checks they match the files of the analysis), reads the UMAP embedding, draws the plots inline, reads the
per-particle metadata aligned with z and generates a map at a cluster centre. It is a starting point for a user's
own analysis; a test executes it headless.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryoscape.io.atomic import atomic_open
from cryoscape.runs.layout import AnalysisLayout


def _intro_cells(run_path: Path, epoch: int, out_dir: Path, k: int, seed: int) -> list[tuple[str, str]]:
    """Title, imports and settings, the learning curve and the PCA."""
    layout = AnalysisLayout(out_dir)
    return [
        ("markdown", f"# Latent space of `{run_path.name}`, epoch {epoch}\n\n"
                     "Written by `cryoscape analyze`. Every figure of the analysis folder is made again here with "
                     "the cryoscape Python API, so you can change it. Run the cells from the top."),
        ("code", "%matplotlib inline\n"
                 "import numpy as np\n"
                 "import matplotlib.pyplot as plt\n"
                 "from pathlib import Path\n"
                 "from IPython.display import Image, display\n"
                 "from cryoscape.analysis.api import TrainedRun\n"
                 "from cryoscape.analysis import latent\n"
                 "from cryoscape.plotting import curves, maps\n"
                 "from cryoscape.plotting import latent as latent_plots\n"
                 "from cryoscape.plotting.labels import pc_label, umap_label\n"
                 "from cryoscape.training.learning_curve import read_learning_curve\n"
                 "from cryoscape.runs.layout import AnalysisLayout\n\n"
                 f"RUN = Path({str(run_path.resolve())!r})\n"
                 f"EPOCH = {epoch}\n"
                 f"ANALYSIS = Path({str(out_dir.resolve())!r})\n"
                 f"K = {k}\n"
                 f"SEED = {seed}\n"
                 "LAYOUT = AnalysisLayout(ANALYSIS)   # names every file of the analysis folder\n"
                 "FIGURES = ANALYSIS / 'notebook_figures'\n"
                 "FIGURES.mkdir(exist_ok=True)\n\n"
                 "run = TrainedRun.open(RUN, epoch=EPOCH, device='cpu')\n"
                 "z = run.z                 # (N, zdim) posterior means, row i = original particle run.indices[i]\n"
                 "print(run, z.shape, 'pixel size', run.pixel_size_angstrom, 'Å')"),
        ("markdown", "## Learning curve (losses per epoch, from the run's `provenance.yaml`)"),
        ("code", "curve = read_learning_curve(run.run_dir)\n"
                 "if len(curve['epoch']):\n"
                 "    display(Image(str(curves.plot_learning_curve(curve, FIGURES / 'learning_curve.png', "
                 "mark_epoch=EPOCH))))"),
        ("markdown", f"## PCA\n`{layout.pca.name}` holds the PC coordinates of every particle; they are "
                     "recomputed here."),
        ("code", "pca = latent.fit_pca(z)\n"
                 "pcs = pca.transform(z)\n"
                 "assert np.allclose(pcs, np.load(LAYOUT.pca), atol=1e-4), 'PCA differs from ' + LAYOUT.pca.name\n"
                 "print('explained variance ratio:', np.round(pca.explained_variance_ratio, 3))"),
    ]


def _latent_cells(layout: AnalysisLayout, zdim: int) -> list[tuple[str, str]]:
    """The histogram of a 1-D latent, else the explained variance and the PCA and UMAP joint plots."""
    if zdim == 1:
        return [("code", "display(Image(str(latent_plots.plot_histogram_1d(z[:, 0], FIGURES / 'z_hist.png', "
                         "xlabel='z', title='latent z', marks=latent.percentile_points(z)[:, 0]))))\n"
                         "display(Image(str(latent_plots.plot_z_vs_index(run.indices, z[:, 0], "
                         "FIGURES / 'z_vs_index.png', ylabel='z', title='z against particle index'))))")]
    return [
        ("code", "display(Image(str(curves.plot_explained_variance(pca.explained_variance_ratio, "
                 "FIGURES / 'pca_explained_variance.png'))))\n"
                 "PC1, PC2 = (pc_label(i, pca.explained_variance_ratio[i]) for i in (0, 1))   # axis labels\n"
                 "for kind in ('scatter', 'hexbin', 'contour'):\n"
                 "    display(Image(str(latent_plots.plot_joint(pcs[:, :2], FIGURES / f'z_pca_{kind}.png', "
                 "kind=kind, xlabel=PC1, ylabel=PC2))))"),
        ("markdown", f"## UMAP\nRead from `{layout.umap.name}` (recomputing it takes a while: "
                     "`latent.fit_umap(z, seed=SEED)`)."),
        ("code", "umap_path = LAYOUT.umap\n"
                 "embedding = np.load(umap_path) if umap_path.exists() else None\n"
                 "if embedding is not None:\n"
                 "    for kind in ('scatter', 'hexbin', 'contour'):\n"
                 "        display(Image(str(latent_plots.plot_joint(embedding, FIGURES / f'umap_{kind}.png', "
                 "kind=kind, xlabel=umap_label(0), ylabel=umap_label(1)))))"),
    ]


def _kmeans_cells(layout: AnalysisLayout, k: int, zdim: int) -> list[tuple[str, str]]:
    """k-means recomputed and checked against the analysis' labels, and its clusters in PCA coordinates."""
    kfolder = layout.kmeans(k)
    labels_name = kfolder.labels.relative_to(layout.root).as_posix()
    first_map = kfolder.map_paths(1)[0].relative_to(layout.root).as_posix()
    cells = [
        ("markdown", f"## k-means (K = {k}) with on-data centres\n"
                     f"Cluster ids are 1-based as in `{labels_name}` and the map files `{first_map}` …"),
        ("code", "km = latent.kmeans(z, K, seed=SEED)\n"
                 "labels = np.loadtxt(LAYOUT.kmeans(K).labels, dtype=int)\n"
                 f"assert (km.labels + 1 == labels).all(), 'k-means differs from {labels_name}'\n"
                 "centers_ind = run.indices[km.on_data_indices]   # original particle index of each centre\n"
                 "assert np.allclose(run.z[run.rows_of(centers_ind)], km.centers)\n"
                 "print('cluster sizes (1..K):', km.sizes.tolist())"),
    ]
    if zdim >= 2:
        cells.append(("code", "display(Image(str(latent_plots.plot_clusters(pcs[:, :2], km.labels, "
                              "pcs[km.on_data_indices, :2], FIGURES / 'kmeans_pca.png', xlabel=PC1, "
                              "ylabel=PC2))))"))
    return cells


def _metadata_and_map_cells() -> list[tuple[str, str]]:
    """The particle table aligned with z, and a map generated at a cluster centre."""
    return [
        ("markdown", "## Per-particle metadata aligned with z\nDefocus, Euler angles, shifts and every column of "
                     "the original star/cs file; row i belongs to `z[i]`."),
        ("code", "table = run.particle_table()\n"
                 "table['kmeans'] = km.labels + 1\n"
                 "display(table.head())\n"
                 "if 'defocus_angstrom' in table and z.shape[1] >= 2:\n"
                 "    display(Image(str(latent_plots.plot_joint(pcs[:, :2], FIGURES / 'pca_by_defocus.png', "
                 "kind='scatter', xlabel=PC1, ylabel=PC2, color=table['defocus_angstrom'].to_numpy(), "
                 "color_label='defocus (Å)'))))"),
        ("markdown", "## Maps at any z\n`run.volumes(points)` decodes maps in batches "
                     "(`run.iter_volumes` streams them; `run.write_volumes(points, folder)` writes .mrc files with "
                     "the voxel size). Here: the map at the centre of cluster 1, box 32 for speed."),
        ("code", "box = min(32, run.box_size)\n"
                 "vol = run.volumes(km.centers[:1], box_size=box)[0]\n"
                 "print('map', vol.shape, 'voxel size', run.voxel_size_angstrom(box), 'Å')\n"
                 "display(Image(str(maps.write_montage([vol], FIGURES / 'cluster1.png', labels=['cluster 1']))))"),
    ]


def _cells(run_path: Path, epoch: int, out_dir: Path, k: int, seed: int, zdim: int) -> list[tuple[str, str]]:
    layout = AnalysisLayout(out_dir)
    return (_intro_cells(run_path, epoch, out_dir, k, seed) + _latent_cells(layout, zdim)
            + _kmeans_cells(layout, k, zdim) + _metadata_and_map_cells())


def write_notebook(path: str | os.PathLike, run_path: str | os.PathLike, epoch: int, out_dir: str | os.PathLike,
                   k: int, seed: int, zdim: int) -> Path:
    """Write the analysis notebook (nbformat 4, Python 3 kernel) to ``path`` atomically."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    for kind, source in _cells(Path(run_path), epoch, Path(out_dir), k, seed, zdim):
        nb.cells.append(nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                        else nbformat.v4.new_code_cell(source))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.validate(nb)
    path = Path(path)
    with atomic_open(path, "w") as handle:
        nbformat.write(nb, handle)
    return path

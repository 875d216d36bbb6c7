"""Every figure of cryoscape.plotting drawn from synthetic inputs like the pipelines' (latent spaces of zdim 1, 2
and 8, long run names in the titles), by name, for the readability and count tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoscape.plotting import confusion, curves, fsc, landscape, latent
from cryoscape.plotting.labels import pc_label, umap_label

HEADER = "hinge_run_with_a_long_descriptive_name_zdim{zdim}, epoch 25: 1000 particles, zdim {zdim}"


def latent_space(zdim: int, n: int = 1000, seed: int = 0):
    """z (n, zdim), its PC coordinates (n, zdim) and explained-variance ratios (zdim,)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, zdim)) * np.linspace(2.0, 0.5, zdim)
    centred = z - z.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return z, centred @ vt.T, s**2 / np.sum(s**2)


@dataclass(frozen=True)
class Curve:
    """An FSC curve with the attributes the plot reads (as cryoscape.reconstruct.fsc.FSCCurve)."""

    frequency_per_angstrom: np.ndarray
    fsc: np.ndarray
    nyquist_angstrom: float

    def crossing_frequency(self, threshold: float):
        values, freqs = self.fsc[1:], self.frequency_per_angstrom[1:]
        below = np.flatnonzero(values < threshold)
        if below.size == 0:
            return None
        j = int(below[0])
        if j == 0:
            return 0.0
        return float(freqs[j - 1] + (values[j - 1] - threshold) / (values[j - 1] - values[j])
                     * (freqs[j] - freqs[j - 1]))


def linear_fsc(box: int = 64, voxel_angstrom: float = 2.0, slope: float = 1 / 16) -> Curve:
    """FSC falling linearly from 1 by ``slope`` per shell (clipped at 0)."""
    shells = np.arange(box // 2 + 1)
    return Curve(shells / (box * voxel_angstrom), np.clip(1 - slope * shells, 0, 1), 2 * voxel_angstrom)


@dataclass(frozen=True)
class Match:
    confusion: np.ndarray
    mapping: dict
    agreement: float


def figures_for(zdim: int) -> dict:
    """Name → zero-argument function drawing that figure for a latent space of ``zdim``."""
    z, pcs, ratio = latent_space(zdim)
    header = HEADER.format(zdim=zdim)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 20, len(z))
    states = rng.integers(1, 5, len(z))
    made = {
        "learning_curve": lambda: curves.learning_curve_figure(
            {"epoch": np.arange(1, 26), "loss": np.linspace(1, 0.4, 25), "mse": np.linspace(0.9, 0.39, 25),
             "kl": np.linspace(1, 8, 25) if zdim else np.full(25, np.nan)},
            title="learning curve (hinge_run_with_a_long_descriptive_name; analysed epoch dotted)", mark_epoch=25),
        "state_populations": lambda: landscape.state_populations_figure(np.bincount(states)[1:]),
        "fsc": lambda: fsc.fsc_figure({"half1.mrc vs half2.mrc (a long file name for the legend)": linear_fsc(),
                                       "masked": linear_fsc(slope=1 / 200)}, title="gold-standard FSC (unmasked)"),
        "confusion": lambda: confusion.confusion_figure(
            Match(rng.integers(0, 40, (12, 12)), {j: j for j in range(1, 13)}, 0.61),
            names=("hinge_run_with_a_long_descriptive_name", "other_run")),
        "latent_vs_truth": lambda: latent.latent_vs_truth_figure(
            z[:, 0], z[:, 0] * 3 + 1, xlabel="true hinge angle (°)", ylabel=pc_label(0), title=header,
            caption="Spearman rank correlation 0.93 between the latent coordinate and the true hinge angle of the "
                    "particles; each point is one particle (a random subsample above 50000)."),
    }
    if zdim == 1:
        made.update({
            "z_hist": lambda: latent.histogram_1d_figure(
                z[:, 0], xlabel="z", marks=np.percentile(z, range(5, 100, 10)),
                title=f"{header}\nred lines: the 5th, 15th … 95th percentiles (maps)"),
            "z_vs_index": lambda: latent.z_vs_index_figure(np.arange(len(z)), z[:, 0], ylabel="z",
                                                           title=f"latent z against particle index ({header})"),
            "z_states": lambda: landscape.z_states_figure(z[:, 0], states, 4),
        })
        return made
    made.update({
        "explained_variance": lambda: curves.explained_variance_figure(
            ratio, title=f"PCA of the latent space ({header})"),
        **{f"joint_{kind}": (lambda kind=kind: latent.joint_figure(
            pcs[:, :2], kind=kind, xlabel=pc_label(0, ratio[0]), ylabel=pc_label(1, ratio[1]),
            title=f"latent PCA ({kind}) — {header}")) for kind in latent.JOINT_KINDS},
        "joint_coloured": lambda: latent.joint_figure(pcs[:, :2], kind="scatter", xlabel=umap_label(0),
                                                      ylabel=umap_label(1), color=z[:, 0], color_label="defocus (Å)",
                                                      title=f"latent UMAP coloured by defocus — {header}"),
        "clusters": lambda: latent.clusters_figure(pcs[:, :2], labels, pcs[:20, :2], xlabel=umap_label(0),
                                                   ylabel=umap_label(1),
                                                   title=f"k-means K = 20 in UMAP coordinates — {header}"),
        "clusters_many": lambda: latent.clusters_figure(pcs[:, :2], labels % 25, pcs[:25, :2], xlabel="PC1",
                                                        ylabel="PC2"),
        "traversal": lambda: latent.traversal_points_figure(
            pcs[:, :2], np.c_[np.zeros(10), np.linspace(-1, 1, 10)], xlabel=pc_label(0), ylabel=pc_label(1),
            title=f"PC2 traversal points (numbered as the maps) — {header}"),
        "pc2_traversal": lambda: latent.pc_traversal_figure(
            pcs, np.c_[np.zeros(10), np.linspace(-1, 1, 10), np.zeros((10, zdim - 2))], 1, ratio),
        "latent_states": lambda: landscape.latent_states_figure(pcs[:, :2], states, 4, "pca"),
        "volume_pca_states": lambda: landscape.volume_pca_states_figure(
            pcs[:20, :2], ratio[:2], labels[:20] % 4 + 1, rng.integers(1, 90, 20), 4),
    })
    return made

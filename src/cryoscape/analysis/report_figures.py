"""The figures of ``cryoscape analyze`` that the report shows, grouped, each with a caption saying what it shows."""

from __future__ import annotations

from cryoscape.runs.layout import AnalysisLayout

_KIND_WORDS = {"scatter": "every particle as a point", "hexbin": "particle density (hexagonal bins)",
               "contour": "particle density contours"}


def analysis_figures(layout: AnalysisLayout, k_values: list[int], kinds: tuple[str, ...]):
    """``[(group title, [Figure, …]), …]`` for every figure analyze may write (existing or not)."""
    from cryoscape.analysis.report import Figure

    training = [Figure(layout.learning_curve, "Learning curve: total loss, reconstruction error and KL divergence "
                       "per epoch; the analysed epoch is dotted", wide=True)]
    latent = [Figure(layout.pca_variance, "Fraction of the latent variance explained by each principal component"),
              Figure(layout.z_histogram, "Histogram of the 1-D latent z; red lines at the 5th, 15th … 95th "
                     "percentiles (the maps of the percentile series)"),
              Figure(layout.z_vs_index, "Latent z against the particle index (drift or ordering effects show "
                     "as trends)")]
    latent += [Figure(layout.pca_figure(kind), f"Latent space on the first two principal components: "
                      f"{_KIND_WORDS.get(kind, kind)}") for kind in kinds]
    latent += [Figure(layout.umap_figure(kind), f"UMAP embedding of the latent space: {_KIND_WORDS.get(kind, kind)}")
               for kind in kinds]
    groups = [("Training", training), ("Latent space", latent)]
    for k in k_values:
        series = layout.kmeans(k)
        groups.append((f"k-means clusters (K = {k})", [
            Figure(series.montage, f"Maps at the on-data centres of the {k} k-means clusters: one row per cluster "
                   "(1 at the top), columns = central slices and projections along x, y and z", wide=True),
            Figure(series.pca_figure, f"The {k} clusters on PC1/PC2, on-data centres numbered"),
            Figure(series.umap_figure, f"The {k} clusters on the UMAP embedding, on-data centres numbered"),
            Figure(series.histogram_figure, f"Histogram of z with the {k} on-data centres (red lines)")]))
    for i in layout.pc_values():
        series = layout.pc(i)
        groups.append((f"Traversal along PC{i}", [
            Figure(series.montage, f"Maps along PC{i} from its 5th to its 95th percentile (other PCs at their "
                   "median): one row per point, columns = central slices and projections along x, y and z",
                   wide=True),
            Figure(series.traversal_figure, f"The PC{i} traversal points (numbered as the maps) over the particles")]))
    percentiles = layout.percentiles
    groups.append(("Percentiles of z", [Figure(percentiles.montage, "Maps at the 5th, 15th … 95th percentiles of "
                                               "the 1-D latent z", wide=True)]))
    return groups

"""``cryoscape compare-runs``: label agreement (Hungarian matching) and k-NN agreement of two runs."""

from __future__ import annotations

import argparse

NAME = "compare-runs"
HELP = "compare two runs on the same particles: %% identical cluster labels after optimal matching, k-NN agreement"
DESCRIPTION = """\
Compare two runs trained on the same particle file (replicates with another seed, another zdim, another
architecture). Particles are matched by their original index; when the runs were trained on different --ind
subsets only the particles both have are compared, and how many is printed.

Label agreement: both runs are clustered (the k-means labels `cryoscape analyze` wrote in
RUN/analyze.<epoch>/kmeans<K>/ when present, else k-means with K clusters here), the clusters of RUN2 are matched
to those of RUN1 by the permutation maximising the identical labels (Hungarian algorithm), and the % of particles
with identical labels is reported, with the confusion matrix (confusion.png, confusion.csv).

k-NN agreement needs no clustering: for each particle, the fraction of its --knn nearest neighbours in RUN1's
latent space that are also among its nearest neighbours in RUN2's (1 = identical neighbourhoods; unrelated
embeddings give about k / n, printed for reference).

Writes OUTDIR/comparison.json, confusion.png, confusion.csv (default OUTDIR: RUN1/analyze.<epoch>/compare_<RUN2>).

examples:
  cryoscape compare-runs run_seed1/ run_seed2/ --kmeans 20
  cryoscape compare-runs run_z8/ run_z4/ --kmeans 10 --knn 15 -o z8_vs_z4
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run1", metavar="RUN1", help="first run folder (or weights.N.pt)")
    parser.add_argument("run2", metavar="RUN2", help="second run folder (or weights.N.pt)")
    parser.add_argument("--epoch1", type=int, default=None, help="epoch of RUN1 (default: latest)")
    parser.add_argument("--epoch2", type=int, default=None, help="epoch of RUN2 (default: latest)")
    parser.add_argument("--kmeans", type=int, default=20, metavar="K", help="clusters per run (default 20)")
    parser.add_argument("--recluster", action="store_true",
                        help="run k-means here even when analyze's kmeans<K>/labels.txt exist")
    parser.add_argument("--knn", type=int, default=10, help="neighbours for the k-NN agreement (default 10)")
    parser.add_argument("--knn-queries", type=int, default=20000,
                        help="particles whose neighbourhoods are compared (random sample above this; default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of k-means and of the k-NN sample (default 0)")
    parser.add_argument("-o", "--outdir", default=None, help="output folder")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.replicates import compare_runs, plot_confusion
    from cryoscape.errors import InputError
    from cryoscape.io.atomic import atomic_open

    if args.kmeans < 1 or args.knn < 1:
        raise InputError("--kmeans and --knn must be at least 1")
    run1 = TrainedRun.open(args.run1, epoch=args.epoch1, device="cpu")
    run2 = TrainedRun.open(args.run2, epoch=args.epoch2, device="cpu")
    result = compare_runs(run1, run2, k=args.kmeans, knn=args.knn, seed=args.seed, use_analyze=not args.recluster,
                          max_queries=args.knn_queries)
    out = Path(args.outdir) if args.outdir else run1.analyze_dir / f"compare_{run2.path.resolve().name}"
    out.mkdir(parents=True, exist_ok=True)
    name1, name2 = f"{run1.path.name} (epoch {run1.epoch})", f"{run2.path.name} (epoch {run2.epoch})"
    pct = 100 * result.match.agreement
    plot_confusion(result.match, out / "confusion.png", names=(name1, name2),
                   title=f"{pct:.1f} % identical labels after matching ({result.n_common} particles)")
    header = ",".join(f"run2_cluster_{j + 1}" for j in range(result.match.confusion.shape[1]))
    np.savetxt(out / "confusion.csv", result.match.confusion, fmt="%d", delimiter=",",
               header="rows: run1 clusters 1..K; " + header, comments="# ")
    summary = {
        "run1": str(run1.path.resolve()), "epoch1": run1.epoch, "run2": str(run2.path.resolve()),
        "epoch2": run2.epoch, "n_run1": result.n_a, "n_run2": result.n_b, "n_common": result.n_common,
        "kmeans": args.kmeans, "labels_run1": result.label_source_a, "labels_run2": result.label_source_b,
        "identical_labels_fraction": result.match.agreement,
        "matching_run2_to_run1": {str(k): v for k, v in sorted(result.match.mapping.items())},
        "knn": result.knn_k, "knn_agreement": result.knn_agreement, "knn_random_expectation": result.knn_random,
    }
    with atomic_open(out / "comparison.json", "w") as handle:
        json.dump(summary, handle, indent=1)
    print(f"compared {result.n_common} particles present in both runs ({result.n_a} in RUN1, {result.n_b} in RUN2)")
    print(f"labels: RUN1 from {result.label_source_a}; RUN2 from {result.label_source_b}")
    print(f"identical cluster labels after optimal matching: {pct:.1f} %")
    print(f"k-NN agreement (k={result.knn_k}): {result.knn_agreement:.3f} (unrelated embeddings: "
          f"~{result.knn_random:.3f})")
    print(f"wrote {out}/comparison.json, confusion.png, confusion.csv")
    return 0

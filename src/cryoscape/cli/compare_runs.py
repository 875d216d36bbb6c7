"""``cryoscape compare-runs``: agreement of two runs (latents, k-NN, cluster labels), each against its chance level."""

from __future__ import annotations

import argparse

NAME = "compare-runs"
HELP = "compare two runs on the same particles: latent agreement (CCA, R²), k-NN and label agreement vs chance"
DESCRIPTION = """\
Compare two runs trained on the same particle file (replicates with another seed, another zdim, another
architecture). Particles are matched by their original index; when the runs were trained on different --ind
subsets only the particles both have are compared, and how many is printed. Every measure is printed with the
value expected for unrelated runs, then a one-paragraph verdict.

Latent agreement (no clustering; the zdims may differ): canonical correlation analysis (the correlation of the
best-matched linear combinations of the two latents; the first is 1 when both runs found the same main motion)
and the R² of predicting each latent linearly from the other (1 when one is a rotation/scaling of the other).

k-NN agreement: for each particle, the fraction of its --knn nearest neighbours in RUN1's latent space that are
also among its nearest neighbours in RUN2's (1 = identical neighbourhoods; unrelated embeddings give about k / n).

Label agreement: both runs are clustered (the k-means labels `cryoscape analyze` wrote when present, else k-means
with K clusters here), the clusters of RUN2 are matched to those of RUN1 by the permutation maximising the
identical labels (Hungarian algorithm), and the % of particles with identical labels is reported with its chance
level (RUN2's labels shuffled, same matching), the adjusted Rand index and the normalized mutual information. On a
continuous motion k-means cuts the continuum at arbitrary places: low label identity with agreeing latents is not a
disagreement.

Writes OUTDIR/comparison.json, confusion.png, confusion.csv (default OUTDIR: RUN1/analyze.<epoch>/compare_<RUN2>).

examples:
  cryoscape compare-runs run_seed1/ run_seed2/ --kmeans 20
  cryoscape compare-runs run_z8/ run_z4/ --kmeans 10 --knn 15 -o z8_vs_z4
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.analysis.replicates import CompareConfig
    from cryoscape.cli.options import add_config_options

    parser.add_argument("run1", metavar="RUN1", help="first run folder (or weights.N.pt)")
    parser.add_argument("run2", metavar="RUN2", help="second run folder (or weights.N.pt)")
    parser.add_argument("--epoch1", type=int, default=None, help="epoch of RUN1 (default: latest)")
    parser.add_argument("--epoch2", type=int, default=None, help="epoch of RUN2 (default: latest)")
    add_config_options(parser, CompareConfig)
    parser.add_argument("-o", "--outdir", default=None, help="output folder (default "
                        "RUN1/analyze.<epoch>/compare_<RUN2>)")


def run(args: argparse.Namespace) -> int:
    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.replicates import CompareConfig, compare_runs, verdict, write_comparison
    from cryoscape.cli.options import config_from_args
    from cryoscape.runs.layout import AnalysisLayout

    config = config_from_args(CompareConfig, args)
    run1 = TrainedRun.open(args.run1, epoch=args.epoch1, device="cpu")
    run2 = TrainedRun.open(args.run2, epoch=args.epoch2, device="cpu")
    result = compare_runs(run1, run2, config)
    out = args.outdir or AnalysisLayout(run1.analyze_dir).comparison(run2.path.resolve().name)
    written = write_comparison(result, out)
    for line in result.lines():
        print(line)
    print(verdict(result))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0

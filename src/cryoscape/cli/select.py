"""``cryoscape select``: choose particles of a trained run; write their original indices and the complement."""

from __future__ import annotations

import argparse

NAME = "select"
HELP = "select particles of a run (k-means clusters, GMM components, thresholds, a state, an index file)"
DESCRIPTION = """\
Select particles of a trained run and write their 0-based indices into the ORIGINAL particle file (the .star/.cs
/stack the run was trained on, mapped back through any training --ind subset), ready for `cryoscape write-star`
/ `write-cs` or `--ind` of any command:

  OUT.txt           the selected particles, one index a line
  OUT_inverse.txt   the complement: the other particles OF THE RUN (inside its training subset, not the whole
                    original file)
  OUT.pkl, OUT_inverse.pkl   the same as cryoDRGN index pickles, with --pkl

Criteria (several combine by intersection: a particle must satisfy all):
  --kmeans K --clusters 1 2 3   k-means clusters as `cryoscape analyze` numbered them (1-based,
                                RUN/analyze.<epoch>/kmeans<K>/labels.txt; run analyze first)
  --gmm K --components 2 4      components of a K-component Gaussian mixture fitted here (1-based, ordered by the
                                first principal coordinate of their means; the sizes are printed)
  --threshold 'z1>0.5'          a threshold on a latent coordinate (z1, z2, …), a principal coordinate (pc1, …)
                                or ‖z‖ (norm); <, <=, >, >=; repeat the option for several
  --state 3                     a state of `cryoscape analyze-landscape` (RUN/landscape.<epoch>/labels.txt)
  --from-file sel.txt           an index file of original indices (.txt/.npy/.pkl), e.g. downloaded from
                                report.html

Prints how many particles were selected and how they spread over the k-means clusters (or GMM components).
--validate back-projects the selection into a map with random half-maps and reports its gold-standard
resolution next to the whole set's (OUT_validate/: map.mrc, half1.mrc, half2.mrc, fsc.png, validation.json).

examples:
  cryoscape analyze run/ --ksample 20
  cryoscape select run/ --kmeans 20 --clusters 1 2 3 -o state_a
  cryoscape select run/ --gmm 4 --components 2 -o gmm2 --pkl
  cryoscape select run/ --threshold 'pc1>1.5' --threshold 'norm<3' -o tail
  cryoscape select run/ --from-file selection_12345.txt -o lasso --validate
  cryoscape write-star particles.star --ind state_a.txt -o state_a.star
  cryoscape select 00_vae/ --epoch 50 --kmeans 20 --clusters 3   # a cryoDRGN run folder as it is
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN",
                        help="run folder of train-vae (or one of its weights.N.pt), or a cryoDRGN run folder")
    parser.add_argument("--epoch", type=int, default=None, help="epoch to use (default: the latest)")
    parser.add_argument("-o", "--out", default=None,
                        help="output name: writes OUT.txt and OUT_inverse.txt (default: "
                             "RUN/analyze.<epoch>/selections/<criteria>)")
    parser.add_argument("--pkl", action="store_true", help="also write cryoDRGN index pickles (.pkl)")
    crit = parser.add_argument_group("criteria (combined by intersection)")
    crit.add_argument("--kmeans", type=int, metavar="K", help="k-means run of `analyze` with K clusters")
    crit.add_argument("--clusters", type=int, nargs="+", metavar="ID", help="1-based k-means cluster ids")
    crit.add_argument("--gmm", type=int, metavar="K", help="fit a Gaussian mixture with K components")
    crit.add_argument("--components", type=int, nargs="+", metavar="ID", help="1-based GMM component ids")
    crit.add_argument("--seed", type=int, default=0, help="seed of the Gaussian mixture (default 0)")
    crit.add_argument("--threshold", action="append", default=[], metavar="EXPR",
                      help="e.g. 'z1>0.5', 'pc2<=-1', 'norm>2' (1-based dimensions); repeatable")
    crit.add_argument("--state", type=int, nargs="+", metavar="S", help="1-based state(s) of analyze-landscape")
    crit.add_argument("--landscape-dir", help="analyze-landscape folder (default RUN/landscape.<epoch>)")
    crit.add_argument("--from-file", dest="from_file", help="index file of original 0-based indices")
    crit.add_argument("--analyze-dir", help="analyze folder holding kmeans<K>/ (default RUN/analyze.<epoch>)")
    val = parser.add_argument_group("validation")
    val.add_argument("--validate", action="store_true",
                     help="back-project the selection (half-maps, gold-standard FSC) and the whole set")
    val.add_argument("--datadir", help="folder of the image stacks, if moved since training")
    val.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                     help="device of the back-projection (default cpu)")


def _auto_name(args) -> str:
    parts = []
    if args.kmeans is not None:
        parts.append(f"kmeans{args.kmeans}_" + "-".join(str(c) for c in args.clusters or []))
    if args.gmm is not None:
        parts.append(f"gmm{args.gmm}_" + "-".join(str(c) for c in args.components or []))
    for text in args.threshold:
        parts.append("".join(ch if ch.isalnum() or ch in ".-" else {"<": "lt", ">": "gt", "=": "e"}.get(ch, "")
                             for ch in text))
    if args.state:
        parts.append("state" + "-".join(str(s) for s in args.state))
    if args.from_file:
        from pathlib import Path

        parts.append(Path(args.from_file).stem)
    return "_".join(parts) or "selection"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from cryoscape.analysis import filtering
    from cryoscape.analysis.api import TrainedRun
    from cryoscape.errors import InputError

    run_ = TrainedRun.open(args.run, epoch=args.epoch, device="cpu")
    z = run_.z
    n = len(z)
    analyze_dir = Path(args.analyze_dir) if args.analyze_dir else run_.analyze_dir
    masks: list[tuple[str, np.ndarray]] = []
    report_labels: tuple[str, np.ndarray] | None = None

    if (args.kmeans is None) != (args.clusters is None):
        raise InputError("--kmeans K and --clusters ID … go together", fix="give both, e.g. --kmeans 20 --clusters 3")
    if (args.gmm is None) != (args.components is None):
        raise InputError("--gmm K and --components ID … go together", fix="give both, e.g. --gmm 4 --components 2")
    if args.kmeans is not None:
        labels = filtering.kmeans_labels(analyze_dir, args.kmeans, n)
        masks.append((f"k-means {args.kmeans} clusters {args.clusters}",
                      filtering.ids_mask(labels, args.clusters, "k-means clusters")))
        report_labels = ("cluster", labels)
    if args.gmm is not None:
        gmm = filtering.fit_gmm(z, args.gmm, seed=args.seed)
        sizes = np.bincount(gmm.labels, minlength=args.gmm + 1)[1:]
        print("Gaussian mixture: " + ", ".join(f"component {i + 1}: {int(s)} particles (weight {w:.3f})"
                                                for i, (s, w) in enumerate(zip(sizes, gmm.weights))))
        masks.append((f"GMM {args.gmm} components {args.components}",
                      filtering.ids_mask(gmm.labels, args.components, "GMM components")))
        report_labels = report_labels or ("component", gmm.labels)
    pcs = None
    for text in args.threshold:
        threshold = filtering.Threshold.parse(text)
        if threshold.quantity == "pc" and pcs is None:
            from cryoscape.analysis.latent import fit_pca

            pcs = fit_pca(z).transform(z)
        masks.append((f"threshold {threshold}", threshold.mask(z, pcs)))
    if args.state:
        folder = Path(args.landscape_dir) if args.landscape_dir else run_.landscape_dir
        states = filtering.read_labels(folder / "labels.txt", n, "landscape state labels",
                                       fix="run `cryoscape analyze-landscape RUN` first, for the same epoch")
        masks.append((f"landscape states {args.state}", filtering.ids_mask(states, args.state, "states")))
    if args.from_file:
        masks.append((f"index file {args.from_file}", filtering.from_file_mask(run_, args.from_file)))

    selection = filtering.make_selection(run_.indices, masks)
    out = Path(args.out) if args.out else analyze_dir / "selections" / _auto_name(args)
    written = filtering.write_selection(selection, out, pkl=args.pkl)
    pct = 100.0 * selection.count / max(n, 1)
    print(f"selected {selection.count} of the run's {n} particles ({pct:.1f} %) by " + "; ".join(selection.criteria))
    if report_labels is None:
        found = filtering.find_kmeans(analyze_dir)
        if found:
            k = found[0]
            report_labels = ("k-means cluster", filtering.kmeans_labels(analyze_dir, k, n))
    if report_labels is not None:
        what, labels = report_labels
        totals = filtering.group_counts(labels, np.ones(n, dtype=bool))
        print("from " + filtering.describe_counts(filtering.group_counts(labels, selection.mask), totals, what)
              + " (selected/size)")
    source = run_.particles_path
    print("wrote " + ", ".join(str(p) for p in written)
          + " (0-based indices into " + (str(source) if source else "the original particle file")
          + "; the inverse is the rest of the run)")
    if selection.count and source is not None and source.suffix.lower() in {".star", ".cs"}:
        cmd = "write-star" if source.suffix.lower() == ".star" else "write-cs"
        print(f"next: cryoscape {cmd} {source} --ind {written[0]} -o {written[0].with_suffix(source.suffix)}")

    if args.validate:
        from cryoscape.analysis.validation import run_particles, validate_selection
        from cryoscape.reconstruct.backproject import BackprojectConfig
        from cryoscape.training.distributed import choose_device

        particles = run_particles(run_, datadir=args.datadir)
        positions = np.searchsorted(particles.indices, selection.indices)
        config = BackprojectConfig(invert_contrast=bool(run_.config.data.invert_data),
                                   device=str(choose_device(args.device)))
        base = written[0].with_suffix("")
        summary = validate_selection(particles, positions, base.with_name(base.name + "_validate"), config=config)
        for line in summary.lines():
            print(line)
        print(f"wrote {summary.out_dir}/map.mrc, half1.mrc, half2.mrc, fsc.png, validation.json")
    return 0

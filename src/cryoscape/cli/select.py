"""``cryoscape select``: choose particles of a trained run; write their original indices and the complement."""

from __future__ import annotations

import argparse

NAME = "select"
ALIASES = ("filter",)
HELP = "select particles of a run (k-means clusters, GMM components, thresholds, a state, an index file)"
DESCRIPTION = """\
Select particles of a trained run and write their 0-based indices into the ORIGINAL particle file (the .star/.cs
/stack the run was trained on, mapped back through any training --ind subset), ready for `cryoscape write-star`
/ `write-cs` or `--ind` of any command:

  OUT.txt           the selected particles, one index a line
  OUT_inverse.txt   the complement: the other particles OF THE RUN (inside its training subset)
  OUT.pkl, OUT_inverse.pkl   the same as cryoDRGN index pickles, with --pkl
(default OUT: RUN/selections/epoch<N>_<criteria>; an output never replaces a file the selection reads)

Criteria (several combine by intersection: a particle must satisfy all):
  --kmeans K --clusters 1 2 3   k-means clusters as `cryoscape analyze` numbered them (run analyze first)
  --gmm K --components 2 4      components of a K-component Gaussian mixture fitted here (1-based, ordered by the
                                first principal coordinate of their means; the sizes are printed)
  --threshold 'z1>0.5'          a threshold on a latent coordinate (z1, z2, …), a principal coordinate (pc1, …)
                                or ‖z‖ (norm); <, <=, >, >=; repeat the option for several
  --state 3                     a state of `cryoscape analyze-landscape`
  --from-file sel.txt           an index file of original indices (.txt/.npy/.pkl), e.g. downloaded from
                                report.html

The interactive selection (cryoDRGN's `filter`) is the lasso of RUN/analyze.<epoch>/report.html: `cryoscape
filter RUN` without criteria says where it is. --validate back-projects the selection into a map with random
half-maps and reports its gold-standard resolution next to the whole set's (OUT_validate/).

examples:
  cryoscape analyze run/ --ksample 20
  cryoscape select run/ --kmeans 20 --clusters 1 2 3 -o state_a
  cryoscape select run/ 50 --gmm 4 --components 2 -o gmm2 --pkl       # epoch 50
  cryoscape select run/ --threshold 'pc1>1.5' --threshold 'norm<3' -o tail
  cryoscape select run/ --from-file selection_12345.txt -o lasso --validate
  cryoscape write-star particles.star --ind state_a.txt -o state_a.star
  cryoscape select 00_vae/ --epoch 50 --kmeans 20 --clusters 3   # a cryoDRGN run folder as it is
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import dataclasses

    from cryoscape.analysis.selection import SelectionConfig
    from cryoscape.cli.options import add_config_options, add_run, add_validation
    from cryoscape.configio import option_spec

    add_run(parser)
    parser.add_argument("-o", "--out", default=None, help="output name: writes OUT.txt and OUT_inverse.txt "
                        "(default RUN/selections/epoch<N>_<criteria>)")
    parser.add_argument("--pkl", action="store_true", help="also write cryoDRGN index pickles (.pkl)")
    crit = parser.add_argument_group("criteria (combined by intersection)")
    add_config_options(crit, SelectionConfig, exclude=("threshold",))
    threshold = next(f for f in dataclasses.fields(SelectionConfig) if f.name == "threshold")
    crit.add_argument("--threshold", action="append", default=[], metavar="EXPR", help=option_spec(threshold).help)
    add_validation(parser)


def run(args: argparse.Namespace) -> int:
    from cryoscape.analysis import selection as sel
    from cryoscape.analysis.api import TrainedRun
    from cryoscape.cli.common import check_outputs
    from cryoscape.cli.options import chosen_epoch, config_from_args

    run_ = TrainedRun.open(args.run, epoch=chosen_epoch(args), device="cpu")
    if getattr(args, "command", None) == "filter" and not _criteria_given(args):
        raise sel.no_criterion_error(run_, "`filter` opens no window here")
    config = config_from_args(sel.SelectionConfig, args)
    out = args.out or sel.default_output(run_, config)
    sel.refuse_inputs(sel.selection_paths(out, args.pkl), [config.from_file])  # before any work
    check_outputs(files=sel.selection_paths(out, args.pkl))
    result = sel.select_particles(run_, config)
    written = sel.write_selection(result, out, pkl=args.pkl)
    for line in result.lines():
        print(line)
    source = result.particles_path
    print("wrote " + ", ".join(str(p) for p in written) + " (0-based indices into "
          + (str(source) if source else "the original particle file") + "; the inverse is the rest of the run)")
    next_command = result.next_command(written[0])
    if next_command:
        print("next: " + next_command)
    if args.validate:
        from cryoscape.analysis.validation import run_particles, run_positions
        from cryoscape.cli._export import validate

        particles = run_particles(run_, datadir=args.datadir)
        invert = bool(run_.config.data.invert_data) or args.invert_contrast
        validate(particles, run_positions(particles, result.selection.indices), written[0], invert_contrast=invert,
                 device=args.device)
    return 0


def _criteria_given(args: argparse.Namespace) -> bool:
    """Whether any selecting option was given (cryoDRGN's `filter --kmeans K` alone only colours its plot)."""
    return bool(args.clusters or args.components or args.threshold or args.state or args.from_file)

"""``cryoscape select`` as a pipeline: :class:`SelectionConfig` → :func:`select_particles` → :class:`SelectionResult`
→ :func:`write_selection`.

The criteria (k-means clusters of ``cryoscape analyze``, Gaussian-mixture components, thresholds, landscape states,
an index file) combine by intersection; the building blocks are in :mod:`cryoscape.analysis.filtering`. The
result holds the selection over the rows of the run and, for the message, how it spreads over the clusters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryoscape.analysis import filtering
from cryoscape.configio import check_range, option
from cryoscape.errors import InputError
from cryoscape.runs.layout import AnalysisLayout, LandscapeLayout

#: Index file formats :func:`write_selection` writes (``pkl``: also cryoDRGN's index pickles).
INDEX_SUFFIXES = (".txt", ".pkl")


@dataclass(frozen=True)
class SelectionConfig:
    """The criteria of a selection (combined by intersection: a particle must satisfy all)."""

    kmeans: int | None = option(None, metavar="K", help="k-means run of `analyze` with K clusters")
    clusters: tuple[int, ...] = option((), metavar="ID", help="1-based k-means cluster ids (with --kmeans K)")
    gmm: int | None = option(None, metavar="K", help="fit a Gaussian mixture with K components")
    components: tuple[int, ...] = option((), metavar="ID", help="1-based GMM component ids (with --gmm K)")
    seed: int = option(0, help="seed of the Gaussian mixture (default %(default)s)")
    threshold: tuple[str, ...] = option((), metavar="EXPR", help="e.g. 'z1>0.5', 'pc2<=-1', 'norm>2' (1-based "
                                        "dimensions); repeatable")
    state: tuple[int, ...] = option((), metavar="S", help="1-based state(s) of analyze-landscape")
    from_file: str | None = option(None, metavar="FILE", help="index file of original 0-based indices (e.g. from "
                                   "report.html)")
    analyze_dir: str | None = option(None, metavar="DIR", help="analyze folder holding the k-means labels "
                                     "(default RUN/analyze.<epoch>)")
    landscape_dir: str | None = option(None, metavar="DIR", help="analyze-landscape folder (default "
                                       "RUN/landscape.<epoch>)")

    def __post_init__(self) -> None:
        if (self.kmeans is None) != (not self.clusters):
            raise InputError("--kmeans K and --clusters ID … go together", fix="give both, e.g. --kmeans 20 "
                             "--clusters 3")
        if (self.gmm is None) != (not self.components):
            raise InputError("--gmm K and --components ID … go together", fix="give both, e.g. --gmm 4 "
                             "--components 2")
        check_range(self.kmeans, "--kmeans", minimum=1)
        check_range(self.gmm, "--gmm", minimum=1)
        self.thresholds()  # refuses an unreadable threshold now

    def thresholds(self) -> list[filtering.Threshold]:
        return [filtering.Threshold.parse(text) for text in self.threshold]

    @property
    def has_criteria(self) -> bool:
        return bool(self.clusters or self.components or self.threshold or self.state or self.from_file)

    def name(self) -> str:
        """A file name describing the criteria: ``k20-c1-2`` (k-means K = 20, clusters 1 and 2), ``gmm4-c2_pc1gt1.5``
        (GMM of 4 components, component 2, PC1 > 1.5) …"""
        parts = []
        if self.kmeans is not None:
            parts.append(f"k{self.kmeans}-c" + "-".join(str(c) for c in self.clusters))
        if self.gmm is not None:
            parts.append(f"gmm{self.gmm}-c" + "-".join(str(c) for c in self.components))
        for text in self.threshold:
            parts.append("".join(ch if ch.isalnum() or ch in ".-" else {"<": "lt", ">": "gt", "=": "e"}.get(ch, "")
                                 for ch in text))
        if self.state:
            parts.append("state" + "-".join(str(s) for s in self.state))
        if self.from_file:
            parts.append(Path(self.from_file).stem)
        return "_".join(parts) or "selection"


@dataclass(frozen=True)
class GroupSpread:
    """How a selection spreads over groups (k-means clusters or GMM components): selected and total per group."""

    what: str
    selected: dict[int, int]
    totals: dict[int, int]

    def describe(self) -> str:
        return "from " + filtering.describe_counts(self.selected, self.totals, self.what) + " (selected/size)"


@dataclass(frozen=True)
class SelectionResult:
    """Result of :func:`select_particles`.

    Attributes
    ----------
    selection : filtering.Selection
        Mask over the run's rows, selected and other original indices, the criteria applied.
    n_run : int
        Particles of the run.
    epoch : int
    spread : GroupSpread or None
        Over the selected k-means clusters or GMM components, else over analyze's first k-means clustering.
    gmm : filtering.GMMResult or None
    inputs : tuple of Path
        Files the selection was read from (never overwritten by :func:`write_selection`).
    particles_path : Path or None
        The particle file the indices refer to.
    """

    selection: filtering.Selection
    n_run: int
    epoch: int
    spread: GroupSpread | None
    gmm: filtering.GMMResult | None = None
    inputs: tuple[Path, ...] = field(default=())
    particles_path: Path | None = None

    def lines(self) -> list[str]:
        """What was selected, for the terminal."""
        out = []
        if self.gmm is not None:
            sizes = np.bincount(self.gmm.labels, minlength=len(self.gmm.weights) + 1)[1:]
            out.append("Gaussian mixture: " + ", ".join(
                f"component {i + 1}: {int(s)} particles (weight {w:.3f})"
                for i, (s, w) in enumerate(zip(sizes, self.gmm.weights))))
        count = self.selection.count
        out.append(f"selected {count} of the run's {self.n_run} particles ({100.0 * count / max(self.n_run, 1):.1f} "
                   "%) by " + "; ".join(self.selection.criteria))
        if self.spread is not None:
            out.append(self.spread.describe())
        return out

    def next_command(self, written: Path) -> str | None:
        """The ``write-star``/``write-cs`` command exporting the selection written at ``written``, if any."""
        source = self.particles_path
        if not self.selection.count or source is None or source.suffix.lower() not in {".star", ".cs"}:
            return None
        verb = "write-star" if source.suffix.lower() == ".star" else "write-cs"
        return f"cryoscape {verb} {source} --ind {written} -o {written.with_suffix(source.suffix)}"


def no_criterion_error(run, problem: str = "no selection criterion given") -> InputError:
    """The error for a selection without criteria: names the run's report (its lasso) and the commands."""
    analysis = AnalysisLayout(run.analyze_dir)
    report = analysis.report
    make = "" if report.is_file() else f"make it with `cryoscape report {run.path} --epoch {run.epoch}`, "
    k = (analysis.kmeans_values() or [20])[0]
    return InputError(f"{problem}: cryoscape's interactive selection is the lasso in {report}",
                      fix=f"{make}open it in a browser, lasso particles, download selection_N.txt, then `cryoscape "
                      f"select {run.path} --from-file selection_N.txt -o chosen`; or give criteria, e.g. `cryoscape "
                      f"select {run.path} --kmeans {k} --clusters 1 2` (also --gmm, --threshold, --state)")


def _cluster_masks(run, config: SelectionConfig, analysis: AnalysisLayout, masks: list, inputs: list):
    """Masks of --kmeans/--gmm; returns the labels to describe the spread with and the GMM fitted."""
    n = len(run.indices)
    spread, gmm = None, None
    if config.kmeans is not None:
        labels = filtering.kmeans_labels(analysis, config.kmeans, n)
        inputs.append(analysis.kmeans(config.kmeans).labels)
        masks.append((f"k-means {config.kmeans} clusters {list(config.clusters)}",
                      filtering.ids_mask(labels, config.clusters, "k-means clusters")))
        spread = ("cluster", labels)
    if config.gmm is not None:
        gmm = filtering.fit_gmm(run.z, config.gmm, seed=config.seed)
        masks.append((f"GMM {config.gmm} components {list(config.components)}",
                      filtering.ids_mask(gmm.labels, config.components, "GMM components")))
        spread = spread or ("component", gmm.labels)
    return spread, gmm


def _other_masks(run, config: SelectionConfig, masks: list, inputs: list) -> None:
    """Masks of --threshold, --state and --from-file."""
    z = run.z
    pcs = None
    for threshold in config.thresholds():
        if threshold.quantity == "pc" and pcs is None:
            from cryoscape.analysis.latent import fit_pca

            pcs = fit_pca(z).transform(z)
        masks.append((f"threshold {threshold}", threshold.mask(z, pcs)))
    if config.state:
        landscape = LandscapeLayout(Path(config.landscape_dir) if config.landscape_dir else run.landscape_dir)
        states = filtering.read_labels(landscape.labels, len(z), "landscape state labels",
                                       fix="run `cryoscape analyze-landscape RUN` first, for the same epoch")
        inputs.append(landscape.labels)
        masks.append((f"landscape states {list(config.state)}", filtering.ids_mask(states, config.state, "states")))
    if config.from_file:
        masks.append((f"index file {config.from_file}", filtering.from_file_mask(run, config.from_file)))
        inputs.append(Path(config.from_file))


def select_particles(run, config: SelectionConfig) -> SelectionResult:
    """Select particles of a :class:`~cryoscape.analysis.api.TrainedRun` (nothing is written).

    Raises
    ------
    InputError
        No criterion, labels missing or of another run/epoch, ids that do not exist, an index file listing
        particles the run was not trained on.
    """
    if not config.has_criteria:
        raise no_criterion_error(run)
    analysis = AnalysisLayout(Path(config.analyze_dir) if config.analyze_dir else run.analyze_dir)
    masks: list[tuple[str, np.ndarray]] = []
    inputs: list[Path] = []
    spread, gmm = _cluster_masks(run, config, analysis, masks, inputs)
    _other_masks(run, config, masks, inputs)
    selection = filtering.make_selection(run.indices, masks)
    n = len(run.indices)
    if spread is None and analysis.kmeans_values():
        spread = ("k-means cluster", filtering.kmeans_labels(analysis, analysis.kmeans_values()[0], n))
    described = None
    if spread is not None:
        what, labels = spread
        described = GroupSpread(what, filtering.group_counts(labels, selection.mask),
                                filtering.group_counts(labels, np.ones(n, dtype=bool)))
    return SelectionResult(selection=selection, n_run=n, epoch=int(run.epoch), spread=described, gmm=gmm,
                           inputs=tuple(inputs), particles_path=run.particles_path)


def default_output(run, config: SelectionConfig) -> Path:
    """``RUN/selections/epochN_<criteria>``: where a selection goes without ``-o``."""
    return run.run_dir.selections.default_selection(run.epoch, config.name())


def selection_paths(out: str | os.PathLike, pkl: bool = False) -> list[Path]:
    """The files :func:`write_selection` writes for ``out``: ``OUT.txt``, ``OUT_inverse.txt`` (and the ``.pkl``).

    ``out`` may end in ``.txt``/``.pkl`` (dropped).
    """
    base = Path(out)
    if base.suffix.lower() in INDEX_SUFFIXES:
        base = base.with_suffix("")
    return [base.with_name(stem + suffix) for suffix in (INDEX_SUFFIXES if pkl else INDEX_SUFFIXES[:1])
            for stem in (base.name, base.name + "_inverse")]


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def refuse_inputs(paths: list[Path], inputs) -> None:
    """InputError when one of the output ``paths`` (:func:`selection_paths`) is one of the ``inputs`` files."""
    for path in paths:
        for source in (Path(p) for p in inputs if p is not None):
            if _same_file(path, source):
                raise InputError(f"the output would replace the input {source}", path=path,
                                 fix=f"give -o another name, e.g. -o {paths[0].with_name(paths[0].stem + '_sel')}")


def write_selection(result: SelectionResult, out: str | os.PathLike, pkl: bool = False) -> list[Path]:
    """Write the selected and the other original indices of the run, one a line (with ``pkl`` also as cryoDRGN
    index pickles), each atomically; returns the paths written (selected first).

    Raises
    ------
    InputError
        An output would replace a file the selection was read from (e.g. ``--from-file sel.txt -o sel``).
    """
    from cryoscape.io.legacy import write_index

    paths = selection_paths(out, pkl)
    refuse_inputs(paths, result.inputs)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    values = (result.selection.indices, result.selection.inverse_indices)
    return [write_index(path, values[i % 2]) for i, path in enumerate(paths)]

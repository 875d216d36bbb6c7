"""Traversals (trajectories helper): configs refuse bad values, results without files, the writer, the commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cryoscape.analysis import traversals as tv
from cryoscape.analysis.trajectories import neighbour_graph
from cryoscape.cli.main import main
from cryoscape.errors import InputError
from cryoscape.runs.layout import SeriesLayout, TraversalsLayout


class _Latents:
    """The part of a TrainedRun a traversal reads: encodings, indices, name, epoch (and maps, for the writer)."""

    def __init__(self, z: np.ndarray, indices: np.ndarray | None = None, fail_after: int | None = None):
        self.z = np.asarray(z, dtype=np.float32)
        self.indices = np.arange(len(z)) * 3 + 1 if indices is None else indices
        self.path = Path("stub_run")
        self.epoch = 4
        self.fail_after = fail_after

    def rows_of(self, original):
        return np.searchsorted(self.indices, np.asarray(original))

    def write_volumes(self, z, out_dir, box_size=None, batch_size=8, flip=False, invert=False, show_progress=False):
        from cryoscape.analysis.api import MapSeriesFiles
        from cryoscape.io.mrc import write_mrc

        paths = SeriesLayout(Path(out_dir)).map_paths(len(z))
        for i, (p, point) in enumerate(zip(paths, z)):
            if self.fail_after is not None and i == self.fail_after:
                raise InputError("decoder failed")
            write_mrc(p, np.full((4, 4, 4), float(point[0]), dtype=np.float32), voxel_size_angstrom=2.0)
        return MapSeriesFiles(maps=paths, z_path=Path(out_dir) / "unused", voxel_size_angstrom=2.0)


@pytest.mark.parametrize(("cls", "values", "message"), [
    (tv.PcTraversalConfig, {"pc": (0,)}, "--pc must be at least 1, got 0"),
    (tv.PcTraversalConfig, {"n_points": 1}, "-n/--n-points must be at least 2, got 1"),
    (tv.PcTraversalConfig, {"lim": (5.0,)}, "--lim takes two percentiles"),
    (tv.PcTraversalConfig, {"lim": (95.0, 5.0)}, "--lim takes two percentiles"),
    (tv.DirectTraversalConfig, {"anchors": (3,)}, "needs at least 2 anchors, got 1"),
    (tv.DirectTraversalConfig, {"anchors": (3, -1)}, "0-based and non-negative"),
    (tv.DirectTraversalConfig, {"anchors": (0, 2), "kmeans": 5}, r"cluster ids are 1-based, got \[0\]"),
    (tv.DirectTraversalConfig, {"anchors": (1, 2), "n_points": 1}, "-n/--n-points must be at least 2"),
    (tv.GraphTraversalConfig, {"anchors": (1, 2), "smooth": 0}, "--smooth must be at least 1"),
    (tv.GraphTraversalConfig, {"anchors": (1, 2), "avg_neighbors": 0.0}, "--avg-neighbors must be greater than 0"),
    (tv.GraphTraversalConfig, {"anchors": (1, 2), "max_neighbors": 0}, "--max-neighbors must be at least 1"),
])
def test_configs_refuse_bad_values(cls, values, message):
    with pytest.raises(InputError, match=message):
        cls(**values)


def test_pc_traversals_refuse_a_pc_beyond_zdim_and_label_points_with_their_pc_value():
    rng = np.random.default_rng(0)
    run = _Latents(rng.standard_normal((200, 3)) * [3.0, 1.0, 0.5])
    with pytest.raises(InputError, match=r"principal component 4 does not exist.*give --pc between 1 and 3"):
        tv.pc_traversals(run, tv.PcTraversalConfig(pc=(1, 4)))
    first, second = tv.pc_traversals(run, tv.PcTraversalConfig(pc=(1, 2), n_points=4))
    assert first.labels == tuple(f"PC1 = {c:.3g}" for c in first.pc_values) and second.pc == 2
    assert first.title.startswith("stub_run, epoch 4: PC1 traversal, 4 points")
    layout = TraversalsLayout(Path("t"))
    assert tv.series_in(layout, second).root == Path("t/pc2")


def test_direct_traversal_labels_anchors_and_fractions():
    run = _Latents(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]]))
    t = tv.direct_traversal(run, tv.DirectTraversalConfig(anchors=(1, 7), n_points=3))  # rows 0 and 2
    np.testing.assert_allclose(t.points, [[0, 0], [0.5, 1.0], [1, 2]])
    assert t.labels == ("particle 1", "particle 1→particle 7 0.50", "particle 7")
    assert t.title == "stub_run, epoch 4: straight lines particle 1 → particle 7" and t.anchor_particles == (1, 7)
    assert tv.series_in(TraversalsLayout(Path("t")), t).root == Path("t/direct_1-7")


def test_graph_traversal_reports_a_path_across_a_gap():
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(0, 0.1, (60, 2)), rng.normal(5, 0.1, (60, 2))])
    run = _Latents(z)
    t = tv.graph_traversal(run, tv.GraphTraversalConfig(anchors=(run.indices[3], run.indices[100]), smooth=1))
    assert t.path_particles[0] == run.indices[3] and t.path_particles[-1] == run.indices[100]
    assert t.labels[0] == f"particle {run.indices[3]} (anchor)" and len(t.labels) == len(t.points)
    assert t.graph.bridge_steps >= 1 and t.graph.longest_step_ratio > 30
    assert "crosses a gap" in t.graph.gap and "separate clouds" in "\n".join(t.graph.describe())
    with pytest.raises(InputError, match="--no-connect"):
        tv.graph_traversal(run, tv.GraphTraversalConfig(anchors=(run.indices[3], run.indices[100]), connect=False))
    # one cloud: no gap; resampled points are labelled with the nearest path particle
    one = _Latents(z[:60])
    t = tv.graph_traversal(one, tv.GraphTraversalConfig(anchors=(one.indices[0], one.indices[50]), n_points=5))
    assert t.graph.gap is None and len(t.points) == 5 and all(label.startswith("≈ particle") for label in t.labels)
    assert tv.series_in(TraversalsLayout(Path("t")), t).root == Path("t/graph_1-151")


def test_montage_rows_are_an_evenly_spaced_subset_with_both_ends():
    np.testing.assert_array_equal(tv.montage_rows(5), np.arange(5))
    rows = tv.montage_rows(412)
    assert len(rows) == tv.MAX_MONTAGE_ROWS and rows[0] == 0 and rows[-1] == 411
    assert np.ptp(np.diff(rows)) <= 1


def test_write_traversal_writes_points_path_summary_maps_and_a_capped_labelled_montage(tmp_path, monkeypatch):
    from cryoscape.plotting import maps

    drawn = {}
    monkeypatch.setattr(maps, "write_montage", lambda maps, path, labels=None, title="": drawn.update(
        rows=len(maps), labels=labels, title=title) or Path(path))
    rng = np.random.default_rng(5)
    run = _Latents(np.cumsum(rng.normal(0.1, 0.02, (60, 1)), axis=0))  # a curve, in order
    t = tv.graph_traversal(run, tv.GraphTraversalConfig(anchors=(run.indices[0], run.indices[59]), smooth=1))
    series = SeriesLayout(tmp_path / "a" / "g")
    written = tv.write_traversal(run, t, series, tv.MapOptions())
    assert len(t.points) > tv.MAX_MONTAGE_ROWS and drawn["rows"] == tv.MAX_MONTAGE_ROWS
    assert drawn["labels"][0] == f"1: particle {run.indices[0]} (anchor)"
    assert drawn["labels"][-1] == f"{len(t.points)}: particle {run.indices[59]} (anchor)"
    assert t.title in drawn["title"] and f"20 of {len(t.points)} maps shown" in drawn["title"]
    np.testing.assert_array_equal(np.loadtxt(series.path_ind, dtype=np.int64), t.path_particles)
    np.testing.assert_allclose(np.loadtxt(series.z_values, ndmin=2), t.points, rtol=1e-5)
    summary = json.loads(series.summary.read_text())
    assert summary["kind"] == "graph" and summary["path_particles"] == t.path_particles.tolist()
    assert summary["graph"]["n_bridges"] == t.graph.n_bridges and summary["labels"] == list(t.labels)
    assert set(summary["files"]) == {p.name for p in written} and series.chimerax_script in written
    assert len(series.existing_maps()) == len(t.points)
    # a shorter series in the same folder leaves no maps of the longer one behind
    short = tv.graph_traversal(run, tv.GraphTraversalConfig(anchors=(run.indices[0], run.indices[59]), n_points=3))
    tv.write_traversal(run, short, series, tv.MapOptions())
    assert [p.name for p in series.existing_maps()] == ["vol_001.mrc", "vol_002.mrc", "vol_003.mrc"]


def test_a_failed_write_leaves_no_folder_it_created(tmp_path):
    run = _Latents(np.random.default_rng(1).standard_normal((50, 2)), fail_after=2)
    t = tv.pc_traversals(run, tv.PcTraversalConfig(n_points=5))[0]
    with pytest.raises(InputError, match="decoder failed"):
        tv.write_traversal(run, t, SeriesLayout(tmp_path / "new" / "pc1"), tv.MapOptions())
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(InputError):
        tv.write_traversal(run, t, SeriesLayout(kept / "pc1"), tv.MapOptions())
    assert kept.is_dir() and not (kept / "pc1").exists()


# --- the commands' guards, on the tiny trained run of conftest.py ------------------------------------------------
def test_commands_refuse_bad_values_and_leave_no_folder(trained_run, tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["pc-traversal", str(trained_run), "--pc", "3", "-o", str(out)]) == 2
    assert "give --pc between 1 and 2" in capsys.readouterr().err
    assert main(["pc-traversal", str(trained_run), "--pc", "0", "-o", str(out)]) == 2
    assert main(["pc-traversal", str(trained_run), "--n-points", "1", "-o", str(out)]) == 2
    assert main(["direct-traversal", str(trained_run), "--anchors", "1", "-o", str(out)]) == 2
    assert "at least 2 anchors" in capsys.readouterr().err
    assert main(["direct-traversal", str(trained_run), "--anchors", "1", "100000", "-o", str(out)]) == 2
    assert "not part of this run" in capsys.readouterr().err
    assert main(["direct-traversal", str(trained_run), "--anchors", "1", "5", "--volumes", "-d", "15",
                 "--device", "cpu", "-o", str(out)]) == 2  # an odd box: refused while decoding
    assert not out.exists()


def test_more_than_100_maps_need_yes(trained_run, tmp_path, capsys):
    out = tmp_path / "many"
    assert main(["direct-traversal", str(trained_run), "--anchors", "1", "5", "-n", "101", "--volumes",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "this would write 101 maps of 32^3 voxels" in err and "--yes" in err and "-n N" in err
    assert not out.exists()


def test_graph_traversal_command_connects_by_default_and_writes_in_the_run(trained_run, capsys):
    from cryoscape.analysis.api import TrainedRun

    run = TrainedRun.open(trained_run)
    graph = neighbour_graph(run.z)
    assert graph.n_components == 1
    a, b = int(run.indices[0]), int(run.indices[-1])
    assert main(["graph-traversal", str(trained_run), "1", "--anchors", str(a), str(b), "-n", "6"]) == 0
    printed = capsys.readouterr().out
    assert "neighbour graph:" in printed and "path:" in printed
    series = run.run_dir.traversals(1).graph((a, b))
    assert np.loadtxt(series.z_values, ndmin=2).shape == (6, 2)
    path = np.loadtxt(series.path_ind, dtype=np.int64, ndmin=1)
    assert path[0] == a and path[-1] == b
    assert json.loads(series.summary.read_text())["epoch"] == 1


def test_a_lone_far_particle_is_reported_as_an_outlier_not_a_cloud():
    rng = np.random.default_rng(3)
    z = np.concatenate([rng.normal(0, 0.1, (80, 2)), [[3.0, 3.0]]])
    run = _Latents(z)
    t = tv.graph_traversal(run, tv.GraphTraversalConfig(anchors=(run.indices[0], run.indices[5])))
    assert t.graph.long_bridges == 1 and t.graph.largest_separated == 1
    text = "\n".join(t.graph.describe())
    assert "lone outlier" in text and "separate clouds" not in text and t.graph.gap is None


def test_a_graph_path_between_one_particle_and_itself_is_refused():
    run = _Latents(np.random.default_rng(4).standard_normal((40, 2)))
    with pytest.raises(InputError, match="the anchors are all one particle"):
        tv.graph_traversal(run, tv.GraphTraversalConfig(anchors=(run.indices[2], run.indices[2])))

"""Particle selection (h_export): `select` → index files → `write-star`/`write-cs`, mapping through --ind."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cryoscape.analysis import filtering
from cryoscape.analysis.analyze import AnalyzeConfig, run_analysis
from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.latent import fit_pca
from cryoscape.cli.main import main
from cryoscape.errors import InputError
from cryoscape.io.legacy import read_index
from cryoscape.io.star import read_star

K = 5


def _copy_with_kmeans(run_path, tmp_path, k=K):
    """A copy of a fixture run analysed by `analyze` (K clusters, no maps/UMAP): its kmeans<K>/labels.txt."""
    run_dir = tmp_path / run_path.name
    shutil.copytree(run_path, run_dir, ignore=shutil.ignore_patterns("analyze.*", "landscape.*"))
    run = TrainedRun.open(run_dir)
    run_analysis(run, AnalyzeConfig(ksample=k, skip_umap=True, skip_vol=True, notebook=False, pc=1))
    labels = np.loadtxt(run.analyze_dir / f"kmeans{k}" / "labels.txt", dtype=np.int64)
    assert labels.shape == (len(run.indices),) and labels.min() == 1
    return run_dir, run, labels


def _ok(*args):
    assert main([str(a) for a in args]) == 0


def test_select_kmeans_maps_back_through_training_subset(trained_subset_run, hinge_dataset, tmp_path, capsys):
    run_dir, run, labels = _copy_with_kmeans(trained_subset_run, tmp_path)
    assert np.all(run.indices % 2 == 1)  # trained on the odd particles only
    _ok("select", run_dir, "--kmeans", K, "--clusters", 1, 3, "-o", tmp_path / "sel", "--pkl")
    printed = capsys.readouterr().out
    chosen = read_index(tmp_path / "sel.txt")
    inverse = read_index(tmp_path / "sel_inverse.txt")
    expected = run.indices[np.isin(labels, [1, 3])]
    np.testing.assert_array_equal(chosen, expected)
    np.testing.assert_array_equal(np.sort(np.concatenate([chosen, inverse])), run.indices)  # complement in the run
    np.testing.assert_array_equal(read_index(tmp_path / "sel.pkl"), chosen)
    np.testing.assert_array_equal(read_index(tmp_path / "sel_inverse.pkl"), inverse)
    assert f"selected {len(expected)} of the run's {len(run.indices)} particles" in printed
    assert f"cluster 1: {(labels == 1).sum()}/{(labels == 1).sum()}" in printed

    # round trip: select → write-star → read back gives exactly the selected original rows, every column
    source = hinge_dataset / "particles.star"
    _ok("write-star", source, "--ind", tmp_path / "sel.txt", "-o", tmp_path / "sel.star")
    original, back = read_star(source), read_star(tmp_path / "sel.star")
    pd.testing.assert_frame_equal(back.particles, original.particles.iloc[expected].reset_index(drop=True))
    pd.testing.assert_frame_equal(back.optics, original.optics)
    # the images of the written star are the selected original images
    from cryoscape.io.stacks import open_images

    np.testing.assert_array_equal(open_images(tmp_path / "sel.star", datadir=hinge_dataset).read(np.arange(3)),
                                  open_images(source).read(expected[:3]))


def test_select_thresholds_gmm_state_and_file(trained_run, tmp_path, capsys):
    run_dir, run, labels = _copy_with_kmeans(trained_run, tmp_path)
    z = run.z.astype(np.float64)
    _ok("select", run_dir, "--threshold", "z1>0", "--threshold", "norm<=1.5", "-o", tmp_path / "t")
    expected = run.indices[(z[:, 0] > 0) & (np.linalg.norm(z, axis=1) <= 1.5)]
    np.testing.assert_array_equal(read_index(tmp_path / "t.txt"), expected)
    assert "from k-means cluster" in capsys.readouterr().out  # spread over analyze's clusters

    pcs = fit_pca(z).transform(z)
    _ok("select", run_dir, "--threshold", "pc2<0.1", "-o", tmp_path / "p")
    np.testing.assert_array_equal(read_index(tmp_path / "p.txt"), run.indices[pcs[:, 1] < 0.1])

    _ok("select", run_dir, "--gmm", 3, "--components", 2, "--seed", 4, "-o", tmp_path / "g")
    gmm = filtering.fit_gmm(z, 3, seed=4)
    np.testing.assert_array_equal(read_index(tmp_path / "g.txt"), run.indices[gmm.labels == 2])

    landscape = run_dir / f"landscape.{run.epoch}"
    landscape.mkdir()
    states = (np.arange(len(z)) % 4) + 1
    np.savetxt(landscape / "labels.txt", states, fmt="%d")
    _ok("select", run_dir, "--state", 2, 4, "-o", tmp_path / "s")
    np.testing.assert_array_equal(read_index(tmp_path / "s.txt"), run.indices[np.isin(states, [2, 4])])

    # an index file (e.g. from the report) intersected with a k-means cluster
    (tmp_path / "lasso.txt").write_text("\n".join(str(i) for i in run.indices[::3]) + "\n")
    _ok("select", run_dir, "--from-file", tmp_path / "lasso.txt", "--kmeans", K, "--clusters", 2,
        "-o", tmp_path / "f")
    keep = np.zeros(len(z), dtype=bool)
    keep[::3] = True
    np.testing.assert_array_equal(read_index(tmp_path / "f.txt"), run.indices[keep & (labels == 2)])
    # default output: RUN/selections, named by the epoch and the criteria; the positional EPOCH is read
    _ok("select", run_dir, run.epoch, "--kmeans", K, "--clusters", 4)
    default = run.run_dir.selections.selection(f"epoch{run.epoch}_k{K}-c4")
    np.testing.assert_array_equal(read_index(default), run.indices[labels == 4])


def test_select_errors(trained_subset_run, tmp_path, capsys):
    run_dir, run, _ = _copy_with_kmeans(trained_subset_run, tmp_path)
    (tmp_path / "even.txt").write_text("0\n2\n")  # not trained on
    assert main(["select", str(run_dir), "--from-file", str(tmp_path / "even.txt")]) == 2
    assert "were not part of this run" in capsys.readouterr().err
    assert main(["select", str(run_dir), "--kmeans", "7", "--clusters", "1"]) == 2
    assert "analyze" in capsys.readouterr().err
    assert main(["select", str(run_dir), "--kmeans", str(K), "--clusters", str(K + 1)]) == 2
    assert main(["select", str(run_dir)]) == 2
    assert "no selection criterion" in capsys.readouterr().err
    with pytest.raises(InputError):
        filtering.Threshold.parse("z0>1")
    with pytest.raises(InputError):
        filtering.Threshold.parse("zz>1")
    t = filtering.Threshold.parse("pc3 >= -2.5e-1")
    assert (t.quantity, t.dim, t.op, t.value) == ("pc", 2, ">=", -0.25)
    with pytest.raises(InputError, match="only 2 dimension"):
        t.mask(run.z)


def test_gmm_finds_separated_blobs_and_orders_them():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 0.5]])
    truth = rng.integers(0, 3, size=600)
    z = centres[truth] + 0.3 * rng.standard_normal((600, 2))
    result = filtering.fit_gmm(z, 3, seed=0)
    assert sorted(np.unique(result.labels)) == [1, 2, 3]
    # ordered by the first principal coordinate of the means: -5, 0, 5 along x (PC1 up to sign)
    order = np.argsort(result.means[:, 0])
    assert list(order) in ([0, 1, 2], [2, 1, 0])
    for k in range(3):  # each true blob is one component
        assert len(np.unique(result.labels[truth == k])) == 1


def test_select_validate_and_write_star_check_against(trained_subset_run, hinge_dataset, tmp_path, capsys):
    run_dir, run, labels = _copy_with_kmeans(trained_subset_run, tmp_path)
    big = np.bincount(labels).argmax()
    _ok("select", run_dir, "--kmeans", K, "--clusters", big, "-o", tmp_path / "v", "--validate")
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "v_validate" / "validation.json").read_text())
    assert summary["n_selected"] == int((labels == big).sum())
    assert summary["n_whole"] == len(run.indices)
    written = sorted((tmp_path / "v_validate").iterdir())
    assert [p.name for p in written] == sorted(["map.mrc", "half1.mrc", "half2.mrc", "fsc.png", "fsc.csv",
                                                "fsc_whole.csv", "validation.json"])
    wrote = [line for line in printed.splitlines() if line.startswith("wrote ")][-1]
    assert sorted(wrote[len("wrote "):].split(", ")) == sorted(str(p) for p in written)  # every file, listed
    assert "gold-standard FSC 0.143" in printed and "whole set" in printed
    nyquist = 2 * run.pixel_size_angstrom
    assert nyquist <= summary["selected_fsc0143_angstrom"] < 200

    # downsample keeps the order: indices apply to the original star, and --check-against says so
    source = hinge_dataset / "particles.star"
    _ok("downsample", source, "-D", 16, "-o", tmp_path / "down.mrcs")
    _ok("write-star", source, "--ind", tmp_path / "v.txt", "-o", tmp_path / "v.star",
        "--check-against", tmp_path / "down.star")
    assert "check: 400 particles; same count, image numbers" in capsys.readouterr().out
    original = read_star(source)
    rev = original.particles.iloc[::-1].reset_index(drop=True)
    from cryoscape.io.star import write_star

    write_star(tmp_path / "reversed.star", rev, original.optics)
    assert main(["write-star", str(source), "--ind", str(tmp_path / "v.txt"), "-o", str(tmp_path / "w.star"),
                 "--check-against", str(tmp_path / "reversed.star")]) == 2
    assert "not the same order" in capsys.readouterr().err
    assert not (tmp_path / "w.star").exists()


def test_write_cs_cli_round_trip(fixtures_dir, tmp_path, capsys):
    src = fixtures_dir / "cryosparc_P12_J24_001_particles.cs"
    original = np.load(src, allow_pickle=False)
    chosen = np.arange(3, len(original), 7)
    (tmp_path / "ind.txt").write_text("\n".join(map(str, chosen)))
    _ok("write-cs", src, "--ind", tmp_path / "ind.txt", "-o", tmp_path / "sel.cs")
    back = np.load(tmp_path / "sel.cs", allow_pickle=False)
    assert back.dtype == original.dtype and back.tobytes() == original[chosen].tobytes()
    assert f"{len(chosen)} of {len(original)} particles" in capsys.readouterr().out


def test_outputs_never_replace_inputs_or_existing_exports(trained_run, hinge_dataset, tmp_path, capsys):
    """The report's suggested `select RUN --from-file selection_N.txt -o selection_N` must not overwrite what it
    reads; write-star/write-cs refuse an existing output unless --overwrite."""
    run = TrainedRun.open(trained_run)
    lasso = tmp_path / "selection_3.txt"
    lasso.write_text("\n".join(str(i) for i in run.indices[[5, 1, 9]]) + "\n")  # not sorted: as given
    before = lasso.read_bytes()
    for out in ("selection_3", "selection_3.txt"):
        assert main(["select", str(trained_run), "--from-file", str(lasso), "-o", str(tmp_path / out)]) == 2
        err = capsys.readouterr().err
        assert "would replace the input" in err and "selection_3_sel" in err
    assert lasso.read_bytes() == before and not (tmp_path / "selection_3_inverse.txt").exists()
    _ok("select", trained_run, "--from-file", lasso, "-o", tmp_path / "chosen")
    np.testing.assert_array_equal(read_index(tmp_path / "chosen.txt"), np.sort(run.indices[[5, 1, 9]]))

    source = hinge_dataset / "particles.star"
    _ok("write-star", source, "--ind", tmp_path / "chosen.txt", "-o", tmp_path / "chosen.star")
    first = (tmp_path / "chosen.star").read_bytes()
    (tmp_path / "other.txt").write_text("0\n1\n")
    assert main(["write-star", str(source), "--ind", str(tmp_path / "other.txt"), "-o",
                 str(tmp_path / "chosen.star")]) == 2
    err = capsys.readouterr().err
    assert "the output file exists already" in err and "--overwrite" in err
    assert (tmp_path / "chosen.star").read_bytes() == first
    _ok("write-star", source, "--ind", tmp_path / "other.txt", "-o", tmp_path / "chosen.star", "--overwrite")
    assert len(read_star(tmp_path / "chosen.star").particles) == 2
    assert main(["write-star", str(source), "--ind", str(tmp_path / "other.txt"), "-o", str(source)]) == 2
    assert "would replace the input" in capsys.readouterr().err


def test_filter_points_to_the_report_lasso_or_runs_select(trained_run, tmp_path, capsys):
    run_dir, run, labels = _copy_with_kmeans(trained_run, tmp_path)
    report = run.run_dir.analysis(run.epoch).report
    assert report.is_file()  # analyze wrote it
    for argv in (["filter", str(run_dir)], ["filter", str(run_dir), str(run.epoch), "--kmeans", str(K)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"interactive selection is the lasso in {report} (open it in a browser" in err
        assert f"cryoscape select {run_dir} --from-file selection_N.txt" in err
        assert f"--kmeans {K} --clusters 1 2" in err
    report.unlink()
    assert main(["filter", str(run_dir)]) == 2
    assert f"make it with `cryoscape report {run_dir} --epoch {run.epoch}`" in capsys.readouterr().err
    assert not run.run_dir.selections.root.exists()
    _ok("filter", run_dir, "--kmeans", K, "--clusters", 2, "-o", tmp_path / "f")  # criteria: it is select
    np.testing.assert_array_equal(read_index(tmp_path / "f.txt"), run.indices[labels == 2])


def test_selection_config_refuses_like_the_cli(trained_run, tmp_path):
    from cryoscape.analysis.selection import SelectionConfig, select_particles, write_selection

    with pytest.raises(InputError, match="--kmeans K and --clusters"):
        SelectionConfig(kmeans=5)
    with pytest.raises(InputError, match="--gmm K and --components"):
        SelectionConfig(components=(1,))
    with pytest.raises(InputError, match="cannot read the threshold"):
        SelectionConfig(threshold=("z1>>0",))
    with pytest.raises(InputError, match="--gmm must be at least 1"):
        SelectionConfig(gmm=0, components=(1,))
    run = TrainedRun.open(trained_run)
    with pytest.raises(InputError, match="no selection criterion"):
        select_particles(run, SelectionConfig())
    result = select_particles(run, SelectionConfig(threshold=("z1>0",)))
    (tmp_path / "sel.txt").write_text("0\n")
    with pytest.raises(InputError, match="would replace the input"):
        write_selection(replace(result, inputs=(tmp_path / "sel.txt",)), tmp_path / "sel.pkl", pkl=True)
    assert (tmp_path / "sel.txt").read_text() == "0\n"
    written = write_selection(result, tmp_path / "ok", pkl=True)
    assert [p.name for p in written] == ["ok.txt", "ok_inverse.txt", "ok.pkl", "ok_inverse.pkl"]
    assert result.selection.count == int((run.z[:, 0] > 0).sum()) and result.gmm is None
    assert result.epoch == run.epoch and result.n_run == len(run.indices)
    assert result.lines()[0].startswith(f"selected {result.selection.count} of the run's")

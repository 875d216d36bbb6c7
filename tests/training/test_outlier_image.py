"""One absurd image (×1e30) must not pass silently: the run stops and names the particle to leave out."""

from __future__ import annotations

import mrcfile
import numpy as np

from cryoscape.cli.main import main


def test_outlier_image_is_named(tmp_path, capsys):
    data = tmp_path / "sim"
    assert main(["simulate", "--preset", "tiny-32", "-n", "48", "--box-size", "16", "--seed", "2", "-o", str(data),
                 "--no-progress"]) == 0
    with mrcfile.open(data / "particles.mrcs", mode="r+") as handle:
        handle.data[5] *= np.float32(1e30)
    capsys.readouterr()
    status = main(["train-vae", str(data / "particles.star"), "--zdim", "1", "-n", "1", "--enc-dim", "8",
                   "--dec-dim", "8", "--enc-layers", "1", "--dec-layers", "1", "--no-amp", "-o", str(tmp_path / "run"),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2
    assert "particle(s) 5 (0-based)" in err
    assert "--ind" in err
    assert "Traceback" not in err

"""Drawing never touches matplotlib's global state: no pyplot import, no backend switch, no open figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
import matplotlib
from cryoscape.plotting import maps
from tests.plotting.figures_under_test import figures_for
from cryoscape.plotting.figures import save_figure
import numpy as np
out = sys.argv[1]
for name, draw in figures_for(2).items():
    save_figure(draw(), f"{out}/{name}.png")
maps.write_montage([np.random.default_rng(0).random((8, 8, 8)) for _ in range(3)], f"{out}/montage.png")
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
print(matplotlib.get_backend())
"""


def test_plotting_leaves_matplotlib_global_state_alone(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MPLBACKEND": "svg", "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                          cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().lower() == "svg"
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) >= 10 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries

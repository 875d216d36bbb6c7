"""cryoscape.simulate: simulated particle datasets with ground truth.

Modules: ``config`` (SimulationConfig, presets), ``atoms`` (molmap from PDB/mmCIF), ``datasets`` (built-in
hinge/assembly pseudo-molecules and map sources), ``project`` (analytic and Fourier-slice projections),
``noise`` (SNR and reproducible noise), ``simulator`` (Simulator, run_simulation, GroundTruthVolumes).
The main names are importable from here; the heavy modules load on first use.
"""

from __future__ import annotations

from typing import Any

from cryoscape.simulate.config import PRESETS, SimulationConfig, preset_config

_LAZY = {"Simulator", "SimulationResult", "GroundTruthVolumes", "ground_truth_volume", "run_simulation"}

__all__ = ["PRESETS", "SimulationConfig", "preset_config", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from cryoscape.simulate import simulator

        return getattr(simulator, name)
    raise AttributeError(f"module 'cryoscape.simulate' has no attribute {name!r}")

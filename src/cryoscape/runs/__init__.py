"""The run folder: training files (:mod:`cryoscape.runs.folder`) and analysis outputs (:mod:`cryoscape.runs.layout`).

Every path inside a run folder is spelled in these two modules and nowhere else.
"""

from cryoscape.runs.folder import (
    CHECKPOINT_FORMAT,
    LOCK_NAME,
    LatentFile,
    RunDir,
    RunLock,
    find_run,
    load_checkpoint_file,
    load_model,
    load_z_file,
    save_latents,
)
from cryoscape.runs.layout import (
    AnalysisLayout,
    LandscapeLayout,
    SelectionsLayout,
    SeriesLayout,
    TraversalsLayout,
    series_names,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "LOCK_NAME",
    "AnalysisLayout",
    "LandscapeLayout",
    "LatentFile",
    "RunDir",
    "RunLock",
    "SelectionsLayout",
    "SeriesLayout",
    "TraversalsLayout",
    "find_run",
    "load_checkpoint_file",
    "load_model",
    "load_z_file",
    "save_latents",
    "series_names",
]

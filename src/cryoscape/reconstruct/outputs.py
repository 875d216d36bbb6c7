"""The files of a reconstruction folder: what ``backproject`` (and ``--validate``) write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReconstructionFolder:
    """``OUT/``: ``map.mrc``, ``half1.mrc``, ``half2.mrc``, ``fsc.csv``, ``fsc.png``."""

    root: Path

    @property
    def map(self) -> Path:
        """``map.mrc``: the map of every particle."""
        return self.root / "map.mrc"

    def half_map(self, half: int) -> Path:
        """``half1.mrc`` / ``half2.mrc``: the maps of the two random halves."""
        return self.root / f"half{int(half)}.mrc"

    @property
    def fsc_csv(self) -> Path:
        """``fsc.csv``: FSC of the half-maps per shell."""
        return self.root / "fsc.csv"

    @property
    def fsc_png(self) -> Path:
        return self.root / "fsc.png"

    def files(self) -> list[Path]:
        """Every file, in the order written."""
        return [self.map, self.half_map(1), self.half_map(2), self.fsc_csv, self.fsc_png]

"""Shared test fixtures: the real files in ../shared/fixtures/cryodrgn-tests (see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "cryodrgn-tests"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Folder of the real RELION/cryoSPARC/cryoDRGN files; skips when it is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"fixture folder {FIXTURES} is absent (it lives in ../shared beside the checkout)")
    return FIXTURES

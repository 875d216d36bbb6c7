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


RUNS_431 = ROOT.parent / "shared" / "fixtures" / "cryodrgn-4.3.1-runs"


@pytest.fixture(scope="session")
def cryodrgn_runs_dir() -> Path:
    """Folder of the runs written by cryoDRGN 4.3.1 itself (see its README); skips when it is absent."""
    if not RUNS_431.is_dir():
        pytest.skip(f"fixture folder {RUNS_431} is absent (it lives in ../shared beside the checkout)")
    return RUNS_431


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Caches a run writes (the measured CPU precision) go to a folder of the test session, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CRYOSCAPE_CACHE_DIR", str(tmp_path_factory.mktemp("cryoscape_cache")))
    yield
    mp.undo()

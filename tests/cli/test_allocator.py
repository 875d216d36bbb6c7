"""The CLI's glibc malloc setting: applied on Linux/glibc, left alone when the user set MALLOC_* variables."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from cryoscape.cli import _allocator


@pytest.mark.skipif(not sys.platform.startswith("linux") or "libc.so" not in str(ctypes.util.find_library("c")),
                    reason="glibc only")
def test_applied_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert _allocator.retain_freed_memory() is True


def test_user_settings_are_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert _allocator.retain_freed_memory() is False

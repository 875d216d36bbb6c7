"""The CLI's process settings: glibc malloc and MKL reproducibility, each left alone when the user set it."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

from cryoscape.cli import _process


@pytest.mark.skipif(not sys.platform.startswith("linux") or "libc.so" not in str(ctypes.util.find_library("c")),
                    reason="glibc only")
def test_applied_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert _process.retain_freed_memory() is True


def test_user_settings_are_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert _process.retain_freed_memory() is False


def test_mkl_reproducibility_set_unless_user_chose(monkeypatch):
    monkeypatch.delenv("MKL_CBWR", raising=False)
    assert _process.reproducible_mkl() is True
    assert _process.os.environ["MKL_CBWR"] == "AUTO,STRICT"
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    assert _process.reproducible_mkl() is False
    assert _process.os.environ["MKL_CBWR"] == "COMPATIBLE"


def test_openmp_threads_spin_briefly_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert _process.short_openmp_spin() is True
    assert _process.os.environ["GOMP_SPINCOUNT"] == _process.OPENMP_SPIN_COUNT
    monkeypatch.setenv("GOMP_SPINCOUNT", "300000")
    assert _process.short_openmp_spin() is False and _process.os.environ["GOMP_SPINCOUNT"] == "300000"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # a wait policy is a choice too
    assert _process.short_openmp_spin() is False and "GOMP_SPINCOUNT" not in _process.os.environ


def test_cli_configures_the_process_before_torch_is_imported():
    # MKL_CBWR only works if MKL has not run yet: main() must apply it before building the parser (which
    # imports torch through the command modules)
    code = ("import os, sys\n"
            "import cryoscape.cli.main as m\n"
            "print('torch' in sys.modules)\n"
            "build = m.build_parser\n"
            "def spy():\n"
            "    print(os.environ.get('MKL_CBWR'), 'torch' in sys.modules, os.environ.get('GOMP_SPINCOUNT'))\n"
            "    return build()\n"
            "m.build_parser = spy\n"
            "try:\n"
            "    m.main(['--version'])\n"
            "except SystemExit:\n"
            "    pass\n")
    env = {key: value for key, value in os.environ.items()
           if key not in ("MKL_CBWR", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split()[:4] == ["False", "AUTO,STRICT", "False", _process.OPENMP_SPIN_COUNT]

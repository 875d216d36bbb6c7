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


def test_cli_configures_the_process_before_torch_is_imported():
    # MKL_CBWR only works if MKL has not run yet: main() must apply it before building the parser (which
    # imports torch through the command modules)
    code = ("import os, sys\n"
            "import cryoscape.cli.main as m\n"
            "print('torch' in sys.modules)\n"
            "build = m.build_parser\n"
            "def spy():\n"
            "    print(os.environ.get('MKL_CBWR'), 'torch' in sys.modules)\n"
            "    return build()\n"
            "m.build_parser = spy\n"
            "try:\n"
            "    m.main(['--version'])\n"
            "except SystemExit:\n"
            "    pass\n")
    env = {key: value for key, value in os.environ.items() if key != "MKL_CBWR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split()[:3] == ["False", "AUTO,STRICT", "False"]

"""The shape docs/architecture.md promises: one owner of the run folder's paths, thin commands, short functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cryoscape"
RUNS = SRC / "runs"

#: Longest command module (lines) and longest analysis function (lines) the architecture page allows.
MAX_COMMAND_LINES = 120
MAX_ANALYSIS_FUNCTION_LINES = 80


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _run_folder_names() -> set[str]:
    """Every plain file name a layout class of runs/ spells (``"labels.txt"``, ``"analysis.json"`` …)."""
    names = set()
    for path in _modules(RUNS):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if "." in text and "/" not in text and " " not in text and not text.startswith(("^", ".")) \
                        and text.rsplit(".", 1)[-1] in {"txt", "npy", "npz", "json", "png", "html", "ipynb", "mrc",
                                                       "yaml", "log", "pt", "cxc"}:
                    names.add(text)
    return names


#: f-string prefixes that build a run-folder name (``f"kmeans{k}"``, ``f"analyze.{epoch}"`` …).
_BUILT_PREFIXES = ("kmeans", "analyze.", "landscape.", "traversals.", "weights.", "z.", "reconstruct.", "pc",
                   "state_", "poses.")

#: Modules that name another folder kind than a run folder: cryoDRGN's own folder layout (read as it is) and the
#: simulator's *dataset* folder (its config.yaml and gt_volumes/state_NNN.mrc are a dataset's files, not a run's).
_ALLOWED = {SRC / "cryodrgn_run.py", SRC / "cli" / "export_cryodrgn.py", SRC / "simulate" / "simulator.py"}


def _spellings(path: Path, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str) and len(node.values) > 1 \
                    and head.value in _BUILT_PREFIXES:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: f\"{head.value}{{…}}\"")
    return found


def test_the_layout_names_the_analysis_outputs():
    names = _run_folder_names()
    assert {"labels.txt", "analysis.json", "montage.png", "z_values.txt", "report.html"} <= names


def test_no_run_folder_path_is_spelled_outside_runs():
    names = _run_folder_names()
    offenders = []
    for path in _modules(SRC):
        if RUNS in path.parents or path in _ALLOWED:
            continue
        offenders += _spellings(path, names)
    assert not offenders, "run-folder names spelled outside cryoscape.runs:\n" + "\n".join(offenders)


#: Helper modules of the CLI that are not commands (option groups, shared checks).
_NOT_COMMANDS = {"options.py", "common.py", "__init__.py"}


@pytest.mark.parametrize("path", [p for p in _modules(SRC / "cli") if p.name not in _NOT_COMMANDS],
                         ids=lambda p: p.name)
def test_command_modules_are_thin(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_COMMAND_LINES, f"{path.name} has {lines} lines (a command parses, builds a config, calls " \
                                       f"the library and prints; move the rest below cli)"


def test_no_long_function_in_analysis():
    long = []
    for path in _modules(SRC / "analysis"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_ANALYSIS_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "analysis functions longer than the architecture allows:\n" + "\n".join(long)


def test_nothing_switches_the_global_matplotlib_backend():
    """Plots are drawn on their own Figure/canvas; no module imports pyplot or sets the backend."""
    offenders = []
    for path in _modules(SRC):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Import) and any(a.name == "matplotlib.pyplot" for a in node.names)) or \
                    (isinstance(node, ast.ImportFrom) and node.module == "matplotlib" and \
                    any(a.name == "pyplot" for a in node.names)):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: imports pyplot")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in {"use", "switch_backend"} and isinstance(node.func.value, ast.Name) and \
                    node.func.value.id in {"matplotlib", "mpl", "plt"}:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: sets the backend")
    assert not offenders, "\n".join(offenders)

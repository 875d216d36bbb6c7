"""The machinery of the ``cryoscape`` command (:mod:`cryoscape.cli.main`): command discovery, the lazily loaded
sub-command parser, option spellings and per-process output settings."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
from types import ModuleType

#: Modules of the package that are not commands.
NOT_COMMANDS = {"main", "common", "options"}


def command_modules() -> list[ModuleType]:
    """Every command module of :mod:`cryoscape.cli` (one defining ``NAME`` and ``run``), by module name."""
    import cryoscape.cli as package

    modules = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in NOT_COMMANDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cryoscape.cli.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


class CommandParser(argparse.ArgumentParser):
    """A sub-command parser whose options are added on first use (parsing or help)."""

    def __init__(self, *args, command_module: ModuleType | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._command_module = command_module
        self._loaded = command_module is None

    def load(self) -> CommandParser:
        """Add the command's options (once)."""
        if self._loaded:
            return self
        self._loaded = True
        module = self._command_module
        self.add_argument("--debug", action="store_true", help="show the full traceback on errors")
        module.add_arguments(self)
        self.add_argument("--no-progress", dest="no_progress", action="store_true",
                          help="no progress bars or progress lines (also: environment CRYOSCAPE_NO_PROGRESS=1)")
        self.set_defaults(_run=module.run)
        return self

    def parse_known_args(self, args=None, namespace=None):
        self.load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.load()
        return super().format_help()

    def format_usage(self) -> str:
        self.load()
        return super().format_usage()


def rewrite_spellings(argv: list[str], spellings: dict[str, str]) -> list[str]:
    """``argv`` with each option named in ``spellings`` replaced by its value (``--o x`` → ``-o x``)."""
    out = []
    for token in argv:
        if token == "--":
            out.extend(argv[len(out):])
            break
        name, sep, value = token.partition("=")
        if name in spellings:
            token = spellings[name] + (sep + value if sep else "")
        out.append(token)
    return out


def configure_output(args: argparse.Namespace) -> None:
    """Logging and progress for this process: quiet on torchrun ranks > 0, ``--no-progress`` honoured."""
    from cryoscape import progress

    secondary = progress.is_secondary_rank()
    level = logging.WARNING if secondary else (logging.DEBUG if args.debug else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s")
    if secondary:
        logging.getLogger("cryoscape").setLevel(logging.WARNING)
    if getattr(args, "no_progress", False):
        progress.set_enabled(False)

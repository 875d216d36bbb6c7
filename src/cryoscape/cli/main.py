"""The ``cryoscape`` command: discovers one module per sub-command in this package.

A command module defines ``NAME`` (the sub-command), ``HELP`` (one line), ``DESCRIPTION`` (the ``--help`` text
with examples), ``add_arguments(parser)`` and ``run(args) -> int``, and optionally ``ALIASES`` (other names it
answers to, e.g. cryoDRGN's verbs). Every command also answers to its name with underscores
(``train-vae`` → ``train_vae``), as cryoDRGN spells its commands; the aliases are shown in ``--help``.

Building the parser is cheap: a command's options are added (``add_arguments``, which may import the library
and torch) only when that command is parsed or its help is shown, so ``cryoscape --help`` imports no command
library. Command modules must therefore keep heavy imports out of module level.

Options every command gets: ``--debug`` (full traceback) and ``--no-progress`` (no progress bars or progress
lines; see :mod:`cryoscape.progress`). ``--o`` is accepted for ``-o`` (cryoDRGN accepts it by abbreviation).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from cryoscape import __version__
from cryoscape.cli._process import configure_process
from cryoscape.errors import CryoscapeError

_NOT_COMMANDS = {"main", "common"}

#: cryoDRGN verbs for commands whose module does not list them in ``ALIASES`` (applied if the command exists).
EXTRA_ALIASES = {
    "backproject": ("backproject_voxel",),
}

#: Option spellings rewritten before parsing: cryoDRGN's ``--o`` (an abbreviation of its ``--outdir``).
_OPTION_SPELLINGS = {"--o": "-o"}


def _command_modules() -> list[ModuleType]:
    import cryoscape.cli as package

    modules = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in _NOT_COMMANDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cryoscape.cli.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


def command_aliases(module: ModuleType) -> list[str]:
    """Other names of a command: its ``ALIASES``, the underscore spelling of its name, and :data:`EXTRA_ALIASES`."""
    names = list(getattr(module, "ALIASES", ()))
    underscore = module.NAME.replace("-", "_")
    if underscore != module.NAME:
        names.insert(0, underscore)
    names.extend(EXTRA_ALIASES.get(module.NAME, ()))
    seen = {module.NAME}
    unique = []
    for name in names:
        if name not in seen:
            seen.add(name)
            unique.append(name)
    return unique


class _CommandParser(argparse.ArgumentParser):
    """A sub-command parser whose options are added on first use (parsing or help)."""

    def __init__(self, *args, command_module: ModuleType | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._command_module = command_module
        self._loaded = command_module is None

    def load(self) -> _CommandParser:
        """Add the command's options (once)."""
        if self._loaded:
            return self
        self._loaded = True
        module = self._command_module
        self.add_argument("--debug", action="store_true", help="show the full traceback on errors")
        module.add_arguments(self)
        if "--no-progress" not in self._option_string_actions:
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


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered (options are added when a command is used)."""
    parser = argparse.ArgumentParser(
        prog="cryoscape",
        description="Heterogeneous cryo-EM reconstruction: learn a generative model of 3-D density maps from "
        "particle images with poses and CTF, and explore its latent space. Every command also answers to "
        "its cryoDRGN spelling with underscores (train_vae, eval_vol, ...); every command takes --no-progress.",
    )
    parser.add_argument("--version", action="version", version=f"cryoscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    taken: set[str] = set()
    modules = sorted(_command_modules(), key=lambda m: m.NAME)
    taken.update(m.NAME for m in modules)
    for module in modules:
        aliases = [a for a in command_aliases(module) if a not in taken]
        taken.update(aliases)
        sub.add_parser(
            module.NAME,
            aliases=aliases,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            command_module=module,
        )
    return parser


def _rewrite_spellings(argv: list[str]) -> list[str]:
    out = []
    for token in argv:
        if token == "--":
            out.extend(argv[len(out):])
            break
        name, sep, value = token.partition("=")
        if name in _OPTION_SPELLINGS:
            token = _OPTION_SPELLINGS[name] + (sep + value if sep else "")
        out.append(token)
    return out


def _configure_output(args: argparse.Namespace) -> None:
    """Logging and progress for this process: quiet on torchrun ranks > 0, ``--no-progress`` honoured."""
    from cryoscape import progress

    secondary = progress.is_secondary_rank()
    level = logging.WARNING if secondary else (logging.DEBUG if args.debug else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s")
    if secondary:
        logging.getLogger("cryoscape").setLevel(logging.WARNING)
    if getattr(args, "no_progress", False):
        progress.set_enabled(False)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cryoscape`` console script; returns the exit status."""
    configure_process()  # before anything imports torch (a command's options may)
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_rewrite_spellings(argv))
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 1
    _configure_output(args)
    try:
        return int(args._run(args) or 0)
    except CryoscapeError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if getattr(args, "no_progress", False):
            from cryoscape import progress

            progress.set_enabled(None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``cryoscape`` command: discovers one module per sub-command in this package.

A command module defines ``NAME`` (the sub-command), ``HELP`` (one line), ``DESCRIPTION`` (the ``--help`` text
with examples), ``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports (torch, the library layers) go
inside ``run`` so that ``cryoscape --help`` stays fast.
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


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="cryoscape",
        description="Heterogeneous cryo-EM reconstruction: learn a generative model of 3-D density maps from "
        "particle images with poses and CTF, and explore its latent space.",
    )
    parser.add_argument("--version", action="version", version=f"cryoscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(_command_modules(), key=lambda m: m.NAME):
        cmd = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_argument("--debug", action="store_true", help="show the full traceback on errors")
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cryoscape`` console script; returns the exit status."""
    configure_process()  # before anything imports torch (building the parser does)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 1
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

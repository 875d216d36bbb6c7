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
import sys
from collections.abc import Sequence
from types import ModuleType

from cryoscape import __version__
from cryoscape.cli._parser import CommandParser, configure_output, rewrite_spellings
from cryoscape.cli._parser import command_modules as _command_modules
from cryoscape.cli._process import configure_process
from cryoscape.errors import CryoscapeError

#: cryoDRGN verbs for commands whose module does not list them in ``ALIASES`` (applied if the command exists).
EXTRA_ALIASES = {
    "backproject": ("backproject_voxel",),
}

#: Option spellings rewritten before parsing: cryoDRGN's ``--o`` (an abbreviation of its ``--outdir``).
_OPTION_SPELLINGS = {"--o": "-o"}


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


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered (options are added when a command is used)."""
    parser = argparse.ArgumentParser(
        prog="cryoscape",
        description="Heterogeneous cryo-EM reconstruction: learn a generative model of 3-D density maps from "
        "particle images with poses and CTF, and explore its latent space. Every command also answers to "
        "its cryoDRGN spelling with underscores (train_vae, eval_vol, ...); every command takes --no-progress.",
    )
    parser.add_argument("--version", action="version", version=f"cryoscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cryoscape`` console script; returns the exit status."""
    configure_process()  # before anything imports torch (a command's options may)
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(rewrite_spellings(argv, _OPTION_SPELLINGS))
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 1
    configure_output(args)
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

"""Command-line options made from config fields, and the option groups every command shares.

A config field declared with :func:`cryoscape.configio.option` carries its help, extra flags and choices;
:func:`add_config_options` turns the fields of a config dataclass into argparse options whose ``dest`` is the field
name (flag = field = yaml key) and :func:`config_from_args` builds the config back, so its ``__post_init__`` checks
values with the same words for the Python API and the CLI.

Shared groups, one spelling each:

- :func:`add_run` — ``RUN`` [``EPOCH``] and ``--epoch`` (the positional EPOCH as cryoDRGN writes it); read the
  epoch with :func:`chosen_epoch`.
- :func:`add_device` — ``--device {auto,cpu,cuda}``.
- :func:`add_map_output` — ``-d/--downsample``, ``--Apix``, ``--flip``, ``--invert``, ``-b/--batch-size``
  (maps decoded per batch).
- :func:`add_validation` — ``--validate``, ``--datadir``, ``--invert-contrast`` and the device.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from cryoscape.configio import option_spec
from cryoscape.training.config import DEVICES


def _scalar_type(tp: Any) -> Any:
    """The argparse ``type`` of an annotation (``int | None`` → int)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and (isinstance(tp, type(int | None)) or typing.get_origin(tp) is typing.Union):
        tp = args[0]
    if typing.get_origin(tp) is typing.Literal:
        return type(typing.get_args(tp)[0])
    return tp if tp in (int, float, str) else str


def _is_bool(tp: Any) -> bool:
    """True for ``bool`` and ``bool | None``."""
    if tp is bool or tp == "bool":
        return True
    args = typing.get_args(tp)
    return bool(args) and set(args) == {bool, type(None)}


def _add_bool(parser: Any, flags: list[str], spec: Any, name: str, default: Any, field_default: Any) -> None:
    """A bool option: ``--x`` (store true); with ``spec.negative`` also the negative flag, or only the negative
    flag when the field defaults to True; ``--no-x`` as the negative gives argparse's ``--x/--no-x`` pair."""
    canonical = next(f for f in flags if f.startswith("--"))
    if spec.negative == "--no-" + canonical[2:]:
        parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=default,
                            help=spec.help)
        return
    if spec.negative and field_default is True:
        parser.add_argument(spec.negative, *spec.flags, dest=name, action="store_false", default=default,
                            help=spec.help)
        return
    parser.add_argument(*flags, dest=name, action="store_true", default=default, help=spec.help)
    if spec.negative:
        parser.add_argument(spec.negative, dest=name, action="store_false", default=default,
                            help=f"the opposite of {canonical}" + (" (the default)" if field_default is False else ""))


def add_config_options(parser: argparse.ArgumentParser | Any, cls: type, *, only: tuple[str, ...] | None = None,
                       exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None,
                       unset_default: bool = False) -> list[str]:
    """Add an option for every field of ``cls`` declared with :func:`~cryoscape.configio.option`.

    Parameters
    ----------
    parser : argparse parser or argument group
    cls : dataclass type
    only, exclude : field names to keep (added in the order of ``only``) / leave out
    defaults : field → default shown and used instead of the field's (e.g. a per-command default)
    unset_default : bool
        Every option defaults to None (= not given) while the help shows the real default; lets a command tell
        an option given on the command line from a default (e.g. to change only those of a resumed run).

    Returns
    -------
    The field names added (pass them to :func:`config_from_args`).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(only) if only is not None else list(fields)
    added = []
    for name in names:
        field = fields[name]
        spec = option_spec(field)
        if spec is None or name in exclude:
            continue
        short = [f for f in spec.flags if not f.startswith("--")]
        flags = [*short, "--" + name.replace("_", "-"), *(f for f in spec.flags if f.startswith("--"))]
        field_default = field.default
        if field_default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            field_default = field.default_factory()
        shown = (defaults or {}).get(name, field_default)
        default = None if unset_default else shown
        help_text = spec.help.replace("%(default)s", str(shown)) if unset_default else spec.help
        spec = dataclasses.replace(spec, help=help_text)
        tp = hints.get(name, str)
        if _is_bool(tp):
            _add_bool(parser, flags, spec, name, default, field_default)
        elif typing.get_origin(tp) is tuple:
            items = typing.get_args(tp)
            nargs = "+" if not items or items[-1] is Ellipsis else len(items)
            parser.add_argument(*flags, dest=name, nargs=nargs, default=default,
                                type=_scalar_type(typing.get_args(tp)[0]), metavar=spec.metavar, help=spec.help)
        else:
            parser.add_argument(*flags, dest=name, default=default, type=_scalar_type(tp),
                                choices=spec.choices, metavar=spec.metavar, help=spec.help)
        added.append(name)
    return added


def config_from_args(cls: type, args: argparse.Namespace, names: list[str] | tuple[str, ...] | None = None,
                     **extra: Any) -> Any:
    """Build ``cls`` from the parsed options named ``names`` (default: every option field) plus ``extra``."""
    if names is None:
        names = [f.name for f in dataclasses.fields(cls) if option_spec(f) is not None]
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = tuple(value)
    values.update(extra)
    return cls(**values)


# --- shared groups --------------------------------------------------------------------------------------------
def add_run(parser: argparse.ArgumentParser, *, help: str | None = None, positional_epoch: bool = True) -> None:
    """``RUN``, the optional positional ``EPOCH`` (cryoDRGN's ``RUN N``) and ``--epoch``."""
    parser.add_argument("run", metavar="RUN", help=help or "run folder (or one of its weights.N.pt), or a cryoDRGN "
                        "run folder as it is")
    if positional_epoch:
        add_positional_epoch(parser)
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")


def add_positional_epoch(parser: argparse.ArgumentParser) -> None:
    """An optional EPOCH after RUN, as cryoDRGN writes it (``cryodrgn analyze RUN N``); read with
    :func:`chosen_epoch`. (:func:`add_run` adds it; for a command whose RUN is declared otherwise.)"""
    parser.add_argument("epoch_given", nargs="?", type=int, default=None, metavar="EPOCH",
                        help="epoch, written as for cryoDRGN (RUN N); the same as --epoch N")


def chosen_epoch(args: argparse.Namespace) -> int | None:
    """The epoch of ``--epoch`` or of the positional EPOCH; None when neither."""
    from cryoscape.errors import InputError

    given = getattr(args, "epoch_given", None)
    if given is not None and args.epoch is not None and given != args.epoch:
        raise InputError(f"two epochs given: EPOCH {given} and --epoch {args.epoch}", fix="give one of them")
    return args.epoch if args.epoch is not None else given


def add_device(parser: argparse.ArgumentParser | Any, *, default: str = "auto", what: str = "decode maps") -> None:
    """``--device {auto,cpu,cuda}``."""
    parser.add_argument("--device", default=default, choices=DEVICES,
                        help=f"where to {what} (default %(default)s; auto = the GPU when there is one)")


def add_map_output(parser: argparse.ArgumentParser | Any, *, batch_size: int = 8) -> None:
    """Options of generated maps: box, pixel size, hand, sign, maps per batch."""
    parser.add_argument("-d", "--downsample", type=int, default=None, metavar="D",
                        help="box of the maps (even, at most the training box; default the training box)")
    parser.add_argument("--Apix", "--apix", dest="apix", type=float, default=None,
                        help="pixel size of the training images in Å (default: from the run; needed only for a "
                        "cryoDRGN run whose CTF file is not found)")
    parser.add_argument("--flip", action="store_true", help="mirror the maps (reverse the z axis)")
    parser.add_argument("--invert", action="store_true", help="multiply the maps by -1")
    parser.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=batch_size,
                        help="maps decoded per batch (default %(default)s)")


def add_validation(parser: argparse.ArgumentParser) -> None:
    """``--validate`` (back-project a selection: half-maps and gold-standard FSC) and what it needs."""
    val = parser.add_argument_group("validation")
    val.add_argument("--validate", action="store_true",
                     help="back-project the selection and the whole file: half-maps and gold-standard FSC")
    val.add_argument("--datadir", help="folder holding the image stacks (for --validate)")
    val.add_argument("--invert-contrast", action="store_true", help="images have black particles (for --validate)")
    add_device(val, default="cpu", what="back-project")

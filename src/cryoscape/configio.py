"""Frozen configuration dataclasses from plain mappings (a ``config.yaml`` section or a checkpoint).

One deserialiser for every config of the project: :func:`dataclass_from_mapping` builds a dataclass
(recursively for nested dataclass fields) from a mapping whose keys are the field names (flag = field = key),
checks every value against the field's annotation and raises :class:`~cryoscape.errors.InputError` naming the
key, the value and the expected type. Supported annotations: ``bool``, ``int``, ``float``, ``str``,
``X | None``, ``tuple[...]``, ``list[...]``, ``typing.Literal[...]``, nested dataclasses and ``Any``.

Conversions (what yaml gives for a value a user means): an integer for a ``float`` field becomes a float
(``lr: 1``); a string that reads as a number for a ``float`` field becomes that number (PyYAML reads
``1e-4`` without a dot as a string); an integral float for an ``int`` field becomes an int (``zdim: 8.0``);
a list for a ``tuple`` field becomes a tuple. Anything else of the wrong type is an error (``zdim: "eight"``,
``lr: [1]``, ``num_epochs: 2.5``, ``amp: 1``).

The layer is the lowest (beside :mod:`cryoscape.errors`), so models and training use the same code.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any

from cryoscape.errors import InputError

__all__ = [
    "OptionSpec",
    "check_choice",
    "check_range",
    "dataclass_from_mapping",
    "describe_type",
    "option",
    "option_spec",
]


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    """The members of a ``X | Y`` / ``Optional[X]`` annotation, or None when ``tp`` is not a union."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return typing.get_args(tp)
    return None


def describe_type(tp: Any) -> str:
    """A reader's name of an annotation: ``an integer``, ``a number or null``, ``one of 'a', 'b'``."""
    members = _union_args(tp)
    if members is not None:
        parts = [describe_type(m) for m in members if m is not type(None)]
        text = " or ".join(parts)
        return f"{text} or null" if type(None) in members else text
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values"
        return "a list"
    if origin is list:
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping of settings"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a text string",
             type(None): "null"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


class _Mismatch(Exception):
    """A value does not fit an annotation (internal: turned into an InputError naming the key)."""


def _is_number_text(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _convert(value: Any, tp: Any, key: str, path: str | None) -> Any:
    """``value`` as the annotation ``tp`` asks (see the module docstring), or :class:`_Mismatch`."""
    if tp is Any:
        return value
    members = _union_args(tp)
    if members is not None:
        if value is None:
            if type(None) in members:
                return None
            raise _Mismatch
        for member in members:
            if member is type(None):
                continue
            try:
                return _convert(value, member, key, path)
            except _Mismatch:
                continue
        raise _Mismatch
    if value is None:
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _Mismatch
        return dataclass_from_mapping(tp, value, path=path, section=key)
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if origin in (tuple, list):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(tp)
        if origin is list:
            items = [_convert(v, args[0] if args else Any, key, path) for v in value]
            return items
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], key, path) for v in value)
        if args:
            if len(args) != len(value):
                raise _Mismatch
            return tuple(_convert(v, a, key, path) for v, a in zip(value, args))
        return tuple(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and _is_number_text(value.strip()):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value


def dataclass_from_mapping(
    cls: type,
    values: Mapping[str, Any],
    *,
    path: str | os.PathLike | None = None,
    section: str | None = None,
) -> Any:
    """Build the dataclass ``cls`` from ``values`` (field name → value), checking and converting types.

    Parameters
    ----------
    cls : dataclass type
        The config to build (its nested dataclass fields are built from nested mappings).
    values : Mapping
        Keys are field names; missing fields take their defaults.
    path : path, optional
        The file the values come from (``config.yaml``, a checkpoint), named in errors.
    section : str, optional
        Dotted prefix of the keys in errors (``"model"`` gives ``model.zdim``).

    Returns
    -------
    An instance of ``cls``.

    Raises
    ------
    InputError
        For a mapping that is not a mapping, an unknown key, a value of the wrong type (the message names the
        key, the value and the expected type), or a value the dataclass itself rejects (its ``__post_init__``
        raising ``InputError`` or ``ValueError``); the error names ``path``.
    """
    where = f"{section}." if section else ""
    path_text = None if path is None else os.fspath(path)
    if not isinstance(values, Mapping):
        raise InputError(
            f"settings {section or cls.__name__} must be a mapping (key: value), got {values!r}",
            path=path_text,
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in set(values) - set(fields))
    if unknown:
        raise InputError(
            f"unknown setting(s) {', '.join(where + k for k in unknown)}",
            path=path_text,
            fix=f"known {section + ' ' if section else ''}settings: {', '.join(sorted(fields))}",
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        tp = hints.get(name, Any)
        try:
            kwargs[name] = _convert(value, tp, where + name, path_text)
        except _Mismatch:
            expected = describe_type(tp)
            raise InputError(
                f"setting {where}{name}: {value!r} is not {expected}",
                path=path_text,
                fix=f"give {where}{name} {expected}",
            ) from None
    try:
        return cls(**kwargs)
    except InputError as exc:
        if exc.path is not None or path_text is None:
            raise
        raise InputError(exc.problem, path=path_text, fix=exc.fix) from None
    except ValueError as exc:
        raise InputError(f"invalid {section or cls.__name__} settings: {exc}", path=path_text) from None


# --- options declared on the config fields ------------------------------------------------------------------
OPTION_KEY = "cryoscape_option"


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """How a config field appears on the command line (read by :mod:`cryoscape.cli.options`).

    Attributes
    ----------
    help : str
        The ``--help`` text (``%(default)s`` is replaced by argparse).
    flags : tuple of str
        Extra spellings before the canonical ``--field-name`` (e.g. ``("-b",)``); the canonical flag is always the
        field name with ``_`` → ``-`` (flag = field = yaml key).
    choices : tuple, optional
        The allowed values (the library constant, so the CLI and the config refuse the same things).
    metavar : str, optional
    negative : str, optional
        For a ``bool`` field defaulting to True: the flag that sets it False (``--no-notebook``).
    """

    help: str
    flags: tuple[str, ...] = ()
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    negative: str | None = None


def option(default: Any = dataclasses.MISSING, *, help: str, flags: tuple[str, ...] = (),
           choices: tuple[Any, ...] | None = None, metavar: str | None = None, negative: str | None = None,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is also a command-line option: ``zdim: int = option(8, help="latent size")``."""
    spec = OptionSpec(help=help, flags=tuple(flags), choices=None if choices is None else tuple(choices),
                      metavar=metavar, negative=negative)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={OPTION_KEY: spec})
    return dataclasses.field(default=default, metadata={OPTION_KEY: spec})


def option_spec(field: dataclasses.Field) -> OptionSpec | None:
    """The :class:`OptionSpec` of a field declared with :func:`option`, else None."""
    return field.metadata.get(OPTION_KEY)


def check_choice(value: Any, choices: tuple[Any, ...], name: str) -> None:
    """Raise InputError unless ``value`` is one of ``choices`` (the same words for the API and the CLI)."""
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}",
                         fix=f"give {name} one of {', '.join(map(str, choices))}")


def check_range(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
                exclusive_minimum: bool = False) -> None:
    """Raise InputError when a number lies outside ``[minimum, maximum]`` (``(minimum, …`` when exclusive)."""
    if value is None:
        return
    low_bad = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    high_bad = maximum is not None and value > maximum
    if low_bad or high_bad:
        if minimum is not None and maximum is not None:
            want = f"between {minimum} and {maximum}"
        elif minimum is not None:
            want = f"greater than {minimum}" if exclusive_minimum else f"at least {minimum}"
        else:
            want = f"at most {maximum}"
        raise InputError(f"{name} must be {want}, got {value!r}", fix=f"give {name} a value {want}")

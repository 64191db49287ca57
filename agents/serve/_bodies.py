"""JSON in and out of ``arag serve``, safe against hostile bodies and unencodable text.

In: a request body is strict UTF-8 JSON, nested at most :data:`MAX_DEPTH` levels, with integers
of at most :data:`MAX_INT_DIGITS` digits, no ``NaN``/``Infinity`` and no lone surrogates
(``"\\ud800"`` decodes to a code point that is not text and cannot be encoded again). Anything
else is a :class:`BodyError` that names the place, never a ``RecursionError`` or a
``ValueError`` from deep inside the parser.

Out: :func:`dumps` turns any lone surrogate left in the text (from a document or a model) into
U+FFFD, so writing a response can never fail halfway.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "BodyError", "dumps", "parse_body"]

MAX_DEPTH = 64
"""Nesting levels of arrays and objects in a body (an OpenAI chat request needs about 6)."""

MAX_INT_DIGITS = 100
"""Digits of an integer in a body (Python refuses past 4,300, slowly; no field needs 100)."""

_SURROGATE = re.compile("[\ud800-\udfff]")


class BodyError(ValueError):
    """A request body the server will not read; ``param`` is where in it, when known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        msg = f"the body has an integer of {digits} digits; the limit is {MAX_INT_DIGITS}"
        raise BodyError(msg)
    return int(text)


def _constant(name: str) -> Any:
    msg = f"the body is not valid JSON: {name} is not a JSON value"
    raise BodyError(msg)


def parse_body(raw: bytes) -> Any:
    """Parse a request body (see the module docstring for what is refused).

    Raises:
        BodyError: The body is not UTF-8, not JSON, nested too deeply, or has a huge integer,
            ``NaN`` or a lone surrogate.
    """
    try:
        text = raw.decode("utf-8")  # strict: no surrogates smuggled in as bytes, no UTF-16 guessing
    except UnicodeDecodeError as exc:
        msg = f"the body is not UTF-8: byte {exc.start} (0x{raw[exc.start]:02x}) starts no character"
        raise BodyError(msg) from None
    try:
        data = json.loads(text, parse_int=_int, parse_constant=_constant)
    except BodyError:
        raise
    except RecursionError:
        msg = f"the body is nested too deeply; the limit is {MAX_DEPTH} levels"
        raise BodyError(msg) from None
    except json.JSONDecodeError as exc:
        msg = f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise BodyError(msg) from None
    except ValueError:  # any other refusal of the parser
        msg = "the body is not valid JSON"
        raise BodyError(msg) from None
    _check(data)
    return data


def _check(data: Any) -> None:
    """Depth and text of every value, without recursion (the body may be nested thousands deep)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            _text(value, where)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            place = where if len(where) <= 60 else where[:60] + "..."
            msg = f"the body is nested more than {MAX_DEPTH} levels deep (at {place or 'the top'})"
            raise BodyError(msg, _param(where))
        if isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else key
                _text(key, where or "a key")
                stack.append((item, path, depth + 1))
        else:
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def _text(value: str, where: str) -> None:
    if value.isascii():
        return
    found = _SURROGATE.search(value)
    if found is not None:
        place = _SURROGATE.sub("\ufffd", where) or "the body"
        msg = (
            f"{place}: a lone surrogate (\\u{ord(found.group()):04x}) at character {found.start()} is not text; "
            "send valid Unicode (a pair such as \\ud83d\\ude00 is fine)"
        )
        raise BodyError(msg, _param(place))


def _param(where: str) -> str | None:
    top = re.split(r"[.\[]", where, maxsplit=1)[0]
    return top or None


def dumps(data: Any) -> str:
    """JSON text of ``data`` (UTF-8 characters kept), lone surrogates replaced by U+FFFD."""
    text = json.dumps(data, ensure_ascii=False)
    return _SURROGATE.sub("\ufffd", text) if not text.isascii() else text

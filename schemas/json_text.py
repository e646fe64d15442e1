"""Reading one JSON text strictly, so that what the decoder sees is what was sent.

A JSON parser may quietly keep the last of two equal keys, read ``NaN``, turn
``1e400`` into infinity or hand back half of a UTF-16 surrogate pair; each would
let a message mean something other than its bytes say.  The rules here are those
of I-JSON (RFC 7493): UTF-8, names unique within an object, no unpaired
surrogates, numbers that are finite IEEE 754 doubles (integers stay exact).

The standard library's parser is used because it lets an object hook see every
key; it costs about 3 us more than orjson on a typical event (schemas/README.md).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any


class JsonTextError(ValueError):
    """Bytes that are not one strict JSON text; ``path`` names the member, if known."""

    def __init__(self, path: str | None, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class _RepeatedKey(ValueError):
    """Raised from inside the parser, which cannot say where in the document it is."""


class _Refused(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _RepeatedKey
    return obj


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise _Refused(f"number {text[:40]} is beyond the range of a double")
    return number


_STRICT = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite)
# Only an escape can produce a surrogate (UTF-8 cannot encode one), so the rare
# text that has one is the only one whose strings are searched.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json_text(raw: bytes) -> Any:
    """The JSON value of ``raw``; :class:`JsonTextError` if it is not one strict JSON text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonTextError(None, f"not valid UTF-8 JSON: {exc.reason} at byte {exc.start}") from None
    if text.startswith("\ufeff"):
        raise JsonTextError(None, "not valid UTF-8 JSON: starts with a byte order mark")
    try:
        document = _STRICT.decode(text)
    except _RepeatedKey:
        raise JsonTextError(
            _first_repeated_key(text), "key appears twice in one object; one of the values would be lost"
        ) from None
    except json.JSONDecodeError as exc:
        raise JsonTextError(
            None, f"not valid UTF-8 JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JsonTextError(None, "not valid UTF-8 JSON: nested too deeply") from None
    except ValueError as exc:  # _Refused, or an integer of more than 4300 digits
        raise JsonTextError(None, f"not valid UTF-8 JSON: {str(exc)[:120]}") from None
    if _SURROGATE_ESCAPE.search(text) and _has_unpaired_surrogate(document):
        raise JsonTextError(
            None,
            "not valid UTF-8 JSON: a \\u escape names half of a surrogate pair, which is not a character",
        )
    return document


class _Pairs(list[tuple[str, Any]]):
    """An object's members in document order, repeats kept (for locating one)."""


def _first_repeated_key(text: str) -> str | None:
    """The dotted path of the first repeated key, in document order (error path only)."""
    try:
        return _repeated_key_in(json.loads(text, object_pairs_hook=_Pairs), "")
    except (ValueError, RecursionError):
        return None


def _repeated_key_in(node: Any, path: str) -> str | None:
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, value in node:
            here = f"{path}.{key}" if path else key
            if key in seen:
                return here
            seen.add(key)
            if found := _repeated_key_in(value, here):
                return found
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if found := _repeated_key_in(value, f"{path}[{index}]"):
                return found
    return None


def _has_unpaired_surrogate(document: Any) -> bool:
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False

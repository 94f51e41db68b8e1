"""Turning a pydantic ValidationError into one `(field, rule)` pair for `InvalidRequest`.

The field is a dotted path as the caller wrote it (``options.validityMin``); the rule is plain words.
Both are cut and escaped, so an unknown key holding NUL, a lone surrogate or a megabyte of text cannot
break a log line, and the offending value itself is never echoed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

#: Longest field-path component and rule `first_error` returns; longer ones are cut.
_FIELD_PART_MAX_CHARS = 64
_RULE_MAX_CHARS = 300


#: pydantic's built-in error types in plain words; `{name}` is filled from the error's context.
_RULES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a field of the job request",
    "string_type": "must be a string",
    # A key holding an unpaired surrogate: pydantic cannot even read it as a field name.
    "string_unicode": "must not contain unpaired surrogates (text that cannot be encoded as UTF-8)",
    "string_too_long": "must be at most {max_length} characters",
    "string_too_short": "must be at least {min_length} characters",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "enum": "must be {expected}",
    "too_long": "must contain at most {max_length} items",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "json_invalid": "is not valid JSON",
}


def first_error(exc: ValidationError) -> tuple[str, str]:
    """The first error of `exc` as (dotted field path as the caller wrote it, rule in plain words)."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "request", "is invalid"
    error = errors[0]
    field = ".".join(_field_part(part) for part in error["loc"]) or "request"
    rule = _rule_text(error["type"], error["msg"], error.get("ctx") or {})
    return field, _printable(rule, _RULE_MAX_CHARS)


def _field_part(part: object) -> str:
    # An unknown key is the caller's own text: it may be huge or hold NUL or lone surrogates.
    if isinstance(part, str) and not part:
        return '""'
    return _printable(str(part), _FIELD_PART_MAX_CHARS)


def _printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with every non-printable one escaped (\\x00, \\ud800), so a
    field or rule is always valid UTF-8, one line and of bounded size in a log."""
    cut = text[: limit + 1]
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in cut[:limit])
    return shown + "..." if len(cut) > limit else shown


def _rule_text(kind: str, message: str, context: Mapping[str, Any]) -> str:
    if kind in ("value_error", "assertion_error"):
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "too_short":
        minimum = context.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must contain at least {minimum} items"
    template = _RULES.get(kind)
    if template is None:
        return message[:1].lower() + message[1:]
    try:
        return template.format(**context)
    except (KeyError, IndexError):
        return message[:1].lower() + message[1:]

"""Request parameters the way HTTP Simple and Sendmode take them: query string plus an
`application/x-www-form-urlencoded` or `multipart/form-data` body (body values win), parsed with the
standard library so the sandbox needs no multipart package.
"""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qsl

from starlette.requests import Request


class FormError(ValueError):
    """The body claims to be a form but cannot be read as one."""


async def request_params(request: Request) -> dict[str, str]:
    """Query parameters merged with form body fields (a JSON or other body adds nothing)."""
    params = dict(request.query_params)
    params.update(parse_form(request.headers.get("content-type", ""), await request.body()))
    return params


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError as exc:
            raise FormError("form body is not UTF-8") from exc
    if media_type == "multipart/form-data":
        return _parse_multipart(content_type, body)
    return {}


def _parse_multipart(content_type: str, body: bytes) -> dict[str, str]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise FormError("multipart body without parts")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        fields[name] = raw.decode(part.get_content_charset() or "utf-8", errors="replace")
    return fields

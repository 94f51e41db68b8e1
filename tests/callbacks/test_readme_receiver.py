"""The README's minimal receiver, run as written: it accepts smsq's signed body, refuses an altered body,
another secret and an old (replayed) timestamp, and acts once per event id."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx

from worker.callbacks.delivery import body_of
from worker.callbacks.signing import sign

README = Path(__file__).resolve().parents[2] / "README.md"


def receiver_app() -> Any:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [source] = [block for block in blocks if "async def sms_outcome" in block]
    namespace: dict[str, Any] = {}
    exec(source.replace('b"the SMSQ_CALLBACK_SECRET"', 'b"s3cret"'), namespace)  # noqa: S102
    return namespace["app"], namespace["seen"]


def test_the_readme_receiver_verifies_and_refuses_replays() -> None:
    app, seen = receiver_app()
    body = body_of({"id": "e1", "outcome": "failed", "final": True})

    async def post(content: bytes, signature: str, event_id: str = "e1") -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            headers = {"Smsq-Signature": signature, "Smsq-Event-Id": event_id}
            return (await client.post("/hooks/sms", content=content, headers=headers)).status_code

    assert asyncio.run(post(body, sign("s3cret", body))) == 204
    assert asyncio.run(post(body, sign("s3cret", body))) == 204 and seen == {"e1"}  # once per id
    assert asyncio.run(post(body.replace(b"failed", b"delivered"), sign("s3cret", body))) == 400
    assert asyncio.run(post(body, sign("other", body))) == 400
    assert asyncio.run(post(body, sign("s3cret", body, int(time.time()) - 600))) == 400

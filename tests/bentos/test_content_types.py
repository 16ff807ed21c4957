"""The content-type rules of `bentos.security.SecurityMiddleware` for the guide's curl calls, on an app that echoes
what reaches it: `curl -d '{...}'` (a JSON object labelled a form) is served as JSON, other form bodies stay 415;
`curl -X POST .../train` (no body, no Content-Length, no type) reaches /train, elsewhere it stays 415."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from aicash.serving.keys import Principal
from bentos.security import SecurityMiddleware


class _Keys:
    def verify(self, key: str | None) -> Principal | None:
        return Principal("ops", True) if key == "k" else None


class _NoLimit:
    def acquire(self, name: str) -> float:
        return 0.0


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """Answers 200 with the Content-Type and the body it received."""
    message = await receive()
    media = next((v.decode() for k, v in scope["headers"] if k == b"content-type"), None)
    payload = json.dumps({"content_type": media, "body": message.get("body", b"").decode()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


def post(path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """One POST through the middleware, as raw ASGI (httpx would add a Content-Length of its own)."""
    app = SecurityMiddleware(_echo, verifier=_Keys(), limiter=_NoLimit())  # type: ignore[arg-type]
    raw = [(k.lower().encode(), v.encode()) for k, v in ({"X-API-Key": "k"} | headers).items()]
    scope = {"type": "http", "method": "POST", "path": path, "headers": raw}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body or b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


FORM = "application/x-www-form-urlencoded"


def test_curl_d_json_is_served_as_json() -> None:
    body = b'{"traffic_percentage": 100}'
    status, seen = post("/models/previous-version/promote", body, {"Content-Type": FORM,
                                                                    "Content-Length": str(len(body))})
    assert status == 200 and seen == {"content_type": "application/json", "body": body.decode()}


@pytest.mark.parametrize("body", [b"symbol=EURUSD", b"", b"[1]"])
def test_other_form_bodies_stay_415(body: bytes) -> None:
    status, answer = post("/predict", body, {"Content-Type": FORM, "Content-Length": str(len(body))})
    assert status == 415 and "application/json" in answer["error"]


def test_a_bare_post_reaches_train_only() -> None:
    status, seen = post("/train", None, {})
    assert status == 200 and seen == {"content_type": None, "body": ""}
    status, answer = post("/predict", None, {})
    assert status == 415 and "missing" in answer["error"]
    status, _ = post("/train", b"{}", {"Transfer-Encoding": "chunked"})  # a body without a type: refused
    assert status == 415
    status, _ = post("/train", b'{"force_retrain": true}', {"Content-Length": "23"})
    assert status == 415

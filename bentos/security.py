"""ASGI middleware of the inference service: body size, content type, API keys and per-key rate limits.

It runs before BentoML parses a body, so oversized or unauthenticated requests cost almost nothing. Every
refusal is a JSON body naming the problem and the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Counter

from aicash.serving.keys import KeyVerifier, Principal
from aicash.serving.ratelimit import RateLimiter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Open to everyone: probes, metrics scraping, the API description.
PUBLIC_PATHS = frozenset({"/health", "/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/openapi.json", "/"})
ADMIN_PREFIXES = ("/train", "/training-status", "/models/")

REJECTED = Counter("aicash_rejected_requests_total", "Requests refused before reaching the model", ["reason"])


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def presented_key(scope: Scope) -> str | None:
    """The key from `X-API-Key`, or from `Authorization: Bearer <key>`."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    if key := headers.get("x-api-key"):
        return key.strip()
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


class SecurityMiddleware:
    """Refuses what must not reach the service: 413, 415, 401, 403, 429 (with Retry-After)."""

    def __init__(
        self, app: ASGIApp, *, verifier: KeyVerifier, limiter: RateLimiter, max_body_bytes: int = 256 * 1024
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        refusal = self._check_headers(scope)
        if refusal is None:
            principal = self.verifier.verify(presented_key(scope))
            refusal = self._check_principal(scope, principal)
        if refusal is not None:
            status, reason, body, headers = refusal
            REJECTED.labels(reason).inc()
            await send_json(send, status, body, headers)
            return
        if scope["method"] == "POST" and not any(k.lower() == b"content-length" for k, _ in scope.get("headers", [])):
            replay = await self._buffered(receive)
            if replay is None:
                REJECTED.labels("body_too_large").inc()
                await send_json(send, 413, {"error": f"request body exceeds {self.max_body_bytes} bytes"})
                return
            receive = replay
        await self.app(scope, receive, send)

    def _check_headers(self, scope: Scope) -> tuple[int, str, dict[str, Any], dict[str, str]] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if scope["method"] == "POST":
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                return 413, "body_too_large", {
                    "error": f"request body exceeds {self.max_body_bytes} bytes; send fewer items per request"
                }, {}
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                return 415, "content_type", {
                    "error": f"Content-Type {media or 'missing'!r} is not supported; send application/json"
                }, {}
        return None

    def _check_principal(
        self, scope: Scope, principal: Principal | None
    ) -> tuple[int, str, dict[str, Any], dict[str, str]] | None:
        if principal is None:
            return 401, "unauthenticated", {
                "error": "missing, unknown or revoked API key: send it as X-API-Key or Authorization: Bearer"
            }, {"WWW-Authenticate": "Bearer"}
        if scope["path"].startswith(ADMIN_PREFIXES) and not principal.is_admin:
            message = f"{scope['path']} needs an admin key (aicash keys create NAME --admin)"
            return 403, "forbidden", {"error": message}, {}
        scope.setdefault("state", {})["principal"] = principal
        wait = self.limiter.acquire(principal.name)
        if wait > 0:
            retry = str(math.ceil(wait)) if math.isfinite(wait) else "60"
            return 429, "rate_limited", {"error": f"rate limit exceeded for key {principal.name!r}; retry later"}, {
                "Retry-After": retry
            }
        return None

    async def _buffered(self, receive: Receive) -> Receive | None:
        """Reads a body sent without Content-Length (chunked) up to the limit; None when it is too large."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return None
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

"""ASGI middleware of the inference service: body size, content type, API keys and per-key rate limits.

It runs before BentoML parses a body, so oversized or unauthenticated requests cost almost nothing. Every
refusal is a JSON body naming the problem and the fix. Every call of an admin path by a known key (allowed or
refused with 403) is written to `audit_log` as `admin.call` with the key's name, method, path and status;
unauthenticated calls are only counted (auditing them would let anyone fill the table). An allowed call's entry
is written before the call runs (its status filled in before the answer's last byte): when it cannot be written,
the call is refused with 503 and Retry-After and nothing is done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Engine, text, update

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog
from aicash.serving.keys import KeysUnavailableError, KeyVerifier, Principal
from aicash.serving.outages import is_outage
from aicash.serving.ratelimit import RateLimiter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Open to everyone: probes, metrics scraping, the API description.
PUBLIC_PATHS = frozenset({"/health", "/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/openapi.json", "/"})
ADMIN_PREFIXES = ("/train", "/training-status", "/models/")
# What `curl -d` labels a body it is not told the type of: the guide's calls send their JSON that way.
CURL_DEFAULT_MEDIA = "application/x-www-form-urlencoded"

REJECTED = Counter("aicash_rejected_requests_total", "Requests refused before reaching the model", ["reason"])
log = logging.getLogger("aicash.service.security")


def actor_of(scope: Scope) -> str:
    """The audit actor of an authenticated request: `api:<key name>`."""
    principal = scope.get("state", {}).get("principal")
    return f"api:{principal.name}" if principal is not None else "api:unknown"


class AdminAudit:
    """Writes one `admin.call` audit entry per admin request: who (key name), what (method, path), the status.
    `begin` writes it before an allowed call runs (status None) and returns its id, `finish` fills in the status;
    calling the object writes a refused call's entry in one go."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, principal: Principal, method: str, path: str, status: int | None) -> int:
        with session_scope(self.engine) as session:
            entry = AuditLog(actor=f"api:{principal.name}", action="admin.call", target=path[:128],
                             details=self._details(principal, method, path, status))
            session.add(entry)
            session.flush()
            return int(entry.id)

    def begin(self, principal: Principal, method: str, path: str) -> int:
        return self(principal, method, path, None)

    def finish(self, entry_id: int, principal: Principal, method: str, path: str, status: int) -> None:
        """Fill in the status. On PostgreSQL through `aicash_admin_call_status` (migration 0004_roles): the service's
        role may not UPDATE audit_log, and the function only sets a status still empty, once."""
        with session_scope(self.engine) as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT aicash_admin_call_status(:entry, :status)"),
                                {"entry": entry_id, "status": status})
                return
            session.execute(update(AuditLog).where(AuditLog.id == entry_id)
                            .values(details=self._details(principal, method, path, status)))

    @staticmethod
    def _details(principal: Principal, method: str, path: str, status: int | None) -> dict[str, Any]:
        return {"method": method, "path": path[:512], "status": status, "admin_key": principal.is_admin}


Audit = AdminAudit


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def header_map(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of repeated ones), read once per request."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def presented_key(headers: dict[str, str]) -> str | None:
    """The key from `X-API-Key`, or from `Authorization: Bearer <key>` (`headers` from `header_map`)."""
    if key := headers.get("x-api-key"):
        return key.strip()
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def error_body(raw: bytes, status: int, scope: Scope) -> bytes:
    """The service's error body `{"error": "..."}` naming the problem: a plain-text refusal (the router's 404 and
    405) is wrapped, and a validation error whose `error` says only "N validation errors" (BentoML's) gets each
    field and message spelled out (its `detail` is kept)."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        details = body.get("detail")
        if isinstance(details, list) and details and "validation error" in body["error"]:
            fields = []
            for item in details[:10]:
                if isinstance(item, dict):
                    where = ".".join(str(p) for p in item.get("loc", ())) or "body"
                    fields.append(f"{where}: {item.get('msg', 'invalid')}")
            body["error"] = "; ".join(fields) or body["error"]
            return json.dumps(body).encode()
        return raw
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        text = body["detail"]
    else:
        text = raw[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    return json.dumps({"error": f"{text} ({scope['method']} {scope['path'][:200]}): see /docs.json"}).encode()


def json_errors(scope: Scope, send: Send, answered: dict[str, int]) -> Send:
    """Wraps `send`: notes the status in `answered` and passes every 4xx body through `error_body`."""
    held: dict[str, Any] = {}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            answered["status"] = int(message["status"])
            if 400 <= answered["status"] < 500:
                held["start"], held["body"] = message, b""
                return
        elif message["type"] == "http.response.body" and "start" in held:
            held["body"] += message.get("body", b"")
            if message.get("more_body", False):
                return
            start = held.pop("start")
            payload = error_body(held["body"], answered["status"], scope)
            headers = [(k, v) for k, v in start.get("headers", [])
                       if k.lower() not in {b"content-type", b"content-length"}]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            await send(start | {"headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        await send(message)

    return wrapped


class SecurityMiddleware:
    """Refuses what must not reach the service: 413, 415, 401, 403, 429 (with Retry-After)."""

    def __init__(
        self, app: ASGIApp, *, verifier: KeyVerifier, limiter: RateLimiter, max_body_bytes: int = 256 * 1024,
        audit: Audit | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        principal = None
        headers = header_map(scope)
        refusal = self._check_headers(scope, headers)
        if refusal is None and scope["method"] == "POST" and _media(headers) == CURL_DEFAULT_MEDIA:
            receive, refusal = await self._json_sent_as_form(scope, receive)
        if refusal is None:
            try:
                principal = self.verifier.verify(presented_key(headers))
            except KeysUnavailableError as exc:  # neither accepted nor refused: the caller should retry
                REJECTED.labels("keys_unavailable").inc()
                await send_json(send, 503, {"error": str(exc)}, {"Retry-After": "5"})
                return
            refusal = self._check_principal(scope, principal)
        audited = self.audit is not None and principal is not None and scope["path"].startswith(ADMIN_PREFIXES)
        if refusal is not None:
            status, reason, body, headers = refusal
            REJECTED.labels(reason).inc()
            if audited and status != 429:  # written before the answer leaves, so a caller never sees it missing
                await self._audit(principal, scope, status)
            await send_json(send, status, body, headers)
            return
        if scope["method"] == "POST" and "content-length" not in headers:
            replay = await self._buffered(receive)
            if replay is None:
                REJECTED.labels("body_too_large").inc()
                await send_json(send, 413, {"error": f"request body exceeds {self.max_body_bytes} bytes"})
                return
            receive = replay
        answered = {"status": 500}
        if audited:
            assert self.audit is not None and principal is not None
            try:  # written before the call runs: an admin call that cannot be audited is not done
                entry = await asyncio.to_thread(self.audit.begin, principal, scope["method"], scope["path"])
            except Exception as exc:
                log.error("admin call %s %s by %s refused: its audit entry cannot be written: %s", scope["method"],
                          scope["path"], principal.name, exc)
                REJECTED.labels("audit_unavailable").inc()
                why = "the database is unreachable" if is_outage(exc) else "the database refused it"
                await send_json(send, 503, {"error": f"the audit entry for this admin call cannot be written ({why}: "
                                                     f"{type(exc).__name__}), so it was not done; retry shortly"},
                                {"Retry-After": "5"})
                return
            send = self._audit_before_last_body(scope, principal, entry, send, answered)
        await self.app(scope, receive, json_errors(scope, send, answered))

    def _audit_before_last_body(self, scope: Scope, principal: Principal, entry: int, send: Send,
                                answered: dict[str, int]) -> Send:
        """Wraps `send` so the entry's status is filled in before the response's last byte goes out."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await self._audit(principal, scope, answered["status"], entry)
            await send(message)

        return wrapped

    async def _audit(self, principal: Principal | None, scope: Scope, status: int, entry: int | None = None) -> None:
        """A refused call's entry, or the status of an allowed call's entry written before it ran."""
        assert self.audit is not None and principal is not None
        try:
            if entry is None:
                await asyncio.to_thread(self.audit, principal, scope["method"], scope["path"], status)
            else:
                await asyncio.to_thread(self.audit.finish, entry, principal, scope["method"], scope["path"], status)
        except Exception as exc:  # the call is refused (nothing done) or already done and its entry written
            log.warning("audit status for %s %s by %s not written: %s", scope["method"], scope["path"],
                        principal.name, exc)

    def _check_headers(self, scope: Scope, headers: dict[str, str]) -> Refusal | None:
        if scope["method"] == "POST":
            length = headers.get("content-length")
            valid = length is None or (length.isascii() and length.isdigit())
            if not valid or (length is not None and int(length) > self.max_body_bytes):
                return 413, "body_too_large", {
                    "error": f"request body exceeds {self.max_body_bytes} bytes; send fewer items per request"
                }, {}
            media = _media(headers)
            empty = length == "0"  # e.g. POST /models/rollback without a body
            # `curl -X POST .../train` (the guide's end-to-end test) sends no body, no Content-Length, no type
            bare = length is None and "transfer-encoding" not in headers and scope["path"] == "/train"
            if media not in ("application/json", CURL_DEFAULT_MEDIA) and not ((empty or bare) and not media):
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

    async def _json_sent_as_form(self, scope: Scope, receive: Receive) -> tuple[Receive, Refusal | None]:
        """A body labelled as a form, as `curl -d '{...}'` sends JSON: served as JSON when it is a JSON object
        (the label is corrected for the app), else 415 as any non-JSON body."""
        replay = await self._buffered(receive)
        if replay is None:
            return receive, (413, "body_too_large", {
                "error": f"request body exceeds {self.max_body_bytes} bytes; send fewer items per request"}, {})
        body = (await replay())["body"]
        replay = _replaying(body, receive)
        if not body.lstrip().startswith(b"{"):
            return replay, (415, "content_type", {
                "error": f"Content-Type {CURL_DEFAULT_MEDIA!r} is not supported; send application/json"}, {})
        scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"]
        scope["headers"].append((b"content-type", b"application/json"))
        return replay, None

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
        return _replaying(b"".join(chunks), receive)


Refusal = tuple[int, str, dict[str, Any], dict[str, str]]


def _media(headers: dict[str, str]) -> str:
    """The request's media type, lower case, without parameters; '' when it has none."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` (already read) as the whole request body, then defers to `receive`."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay

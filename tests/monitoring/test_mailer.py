"""Mail over STARTTLS with login, against a real SMTP server (aiosmtpd) that requires both.

The server's certificate is self-signed, made here with `cryptography`; the mail code verifies certificates with
the system's trust store, which OpenSSL lets SSL_CERT_FILE replace: the tests point it at that certificate (the
way an operator trusts a private CA) and check that without it the server is refused.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from aicash.db.models import DriftReport
from aicash.monitoring.mailer import MailDeliveryError, SmtpConfig, build_message, send
from tests.support.monitoring import SHIFTED, indicator_frame, log_predictions
from tests.support.net import free_port
from tests.support.smtp import Mailbox

USER, PASSWORD = "ml-bot", "correct horse battery staple"


@dataclass
class TlsFiles:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1 and localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aicash test SMTP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


@dataclass
class SecureMailbox(Mailbox):
    """Also keeps, per message, whether the session was under TLS and who logged in."""

    sessions: list[tuple[bool, bool | None, bytes | None]] | None = None

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.sessions = [*(self.sessions or []), (session.ssl is not None, session.authenticated, session.login_data)]
        return await super().handle_DATA(server, session, envelope)


def _authenticate(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    from aiosmtpd.smtp import AuthResult

    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data)  # not handled: aiosmtpd answers 535


@pytest.fixture
def secure_smtp(tls_files: TlsFiles) -> Iterator[SecureMailbox]:
    """aiosmtpd on 127.0.0.1 that refuses mail before STARTTLS and before a successful AUTH (only over TLS)."""
    from aiosmtpd.controller import Controller

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.cert, tls_files.key)
    box = SecureMailbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port, data_size_limit=20_000_000,
                            tls_context=context, require_starttls=True, auth_required=True, auth_require_tls=True,
                            authenticator=_authenticate)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def _config(port: int, *, username: str | None = USER, password: str | None = PASSWORD) -> SmtpConfig:
    return SmtpConfig("127.0.0.1", port, username, password, True, "aicash@test.local", ("ml-team@test.local",))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_drift_mail_goes_over_starttls_with_login(cli, engine, production, secure_smtp, tls_files,  # type: ignore[no-untyped-def]
                                                  monkeypatch) -> None:
    for key, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(secure_smtp.port), "SMTP_STARTTLS": "true",
                       "SMTP_USERNAME": USER, "SMTP_PASSWORD": PASSWORD, "ALERT_EMAIL_FROM": "aicash@test.local",
                       "ALERT_EMAIL_TO": "ml-team@test.local, lead@test.local",
                       "SSL_CERT_FILE": str(tls_files.cert)}.items():
        monkeypatch.setenv(key, value)
    log_predictions(engine, indicator_frame(1000, seed=2, shift=SHIFTED), version=production)

    result = cli("monitor", "drift", "--email")

    assert result.exit_code == 0, result.output + result.stderr
    assert secure_smtp.sessions == [(True, True, USER.encode())]  # under TLS, logged in as USER
    assert secure_smtp.envelopes[0].rcpt_tos == ["ml-team@test.local", "lead@test.local"]
    message = secure_smtp.messages[0]
    assert message["Subject"] == "[aicash] Drift detected: 5 of 16 features (signal-lstm v1)"
    assert "rsi_value" in message.get_body(("html",)).get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/html" and "rsi_value" in attachment.get_content()
    assert engine.connect().execute(select(DriftReport.emailed)).scalar_one() is True


def test_an_untrusted_certificate_is_refused(secure_smtp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Without SSL_CERT_FILE the self-signed certificate is not trusted: nothing is sent, the error says why."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(MailDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        send(_config(secure_smtp.port), build_message(_config(secure_smtp.port), "s", "<p>h</p>", "t"))
    assert secure_smtp.messages == []


@pytest.mark.parametrize(("username", "password", "error"), [
    (USER, "wrong", "SMTPAuthenticationError"),
    (None, None, "530"),  # the server requires AUTH: a client that does not log in is refused
])
def test_a_refused_login_is_a_clear_error(secure_smtp, tls_files, monkeypatch, username, password, error) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.cert))
    config = _config(secure_smtp.port, username=username, password=password)
    with pytest.raises(MailDeliveryError, match=f"could not mail ml-team@test.local through 127.0.0.1:.*{error}"):
        send(config, build_message(config, "s", "<p>h</p>", "t"))
    assert secure_smtp.messages == []


def test_plain_text_is_refused_by_a_server_that_requires_starttls(secure_smtp) -> None:  # type: ignore[no-untyped-def]
    """SMTP_STARTTLS=false against this server: it refuses (530), and the password was never sent in clear."""
    config = SmtpConfig("127.0.0.1", secure_smtp.port, None, None, False, "aicash@test.local", ("ml@test.local",))
    with pytest.raises(MailDeliveryError, match="530"):
        send(config, build_message(config, "s", "<p>h</p>", "t"))

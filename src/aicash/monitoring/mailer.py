"""Mail to the ML team over SMTP (`smtplib`): STARTTLS when SMTP_STARTTLS, login when SMTP_USERNAME is set,
implicit TLS on port 465. Messages are kept under `MAX_MESSAGE_BYTES`: a report is attached as a plain `.html`
file (a mail client opens it with one click) only when it fits; the caller attaches something smaller otherwise."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from aicash.settings import Settings

MAX_MESSAGE_BYTES = 5_000_000
_BASE64_GROWTH = 4 / 3 * 78 / 76  # base64 plus a CRLF every 76 characters
_BODY_ALLOWANCE = 200_000  # headers, the HTML summary and its plain-text twin


class MailConfigError(ValueError):
    """Mail is asked for but SMTP_HOST or ALERT_EMAIL_TO is not set."""


class MailDeliveryError(RuntimeError):
    """The SMTP server could not be reached or refused the message."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    sender: str
    recipients: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        if not settings.smtp_host:
            raise MailConfigError("SMTP_HOST is not set: set SMTP_HOST (and SMTP_PORT, ALERT_EMAIL_TO) to mail reports")
        if not settings.alert_recipients:
            raise MailConfigError("ALERT_EMAIL_TO is not set: give the ML team's addresses, comma-separated")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_username or None, password,
                   settings.smtp_starttls, settings.alert_email_from, tuple(settings.alert_recipients))

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str
    charset: str | None = None  # for text/*: without it, clients read the bytes as ASCII


def attachment_budget(max_message_bytes: int | None = None) -> int:
    """The largest file, in bytes, that keeps a message under `max_message_bytes` (default `MAX_MESSAGE_BYTES`)
    once base64-encoded beside the headers and the body."""
    limit = MAX_MESSAGE_BYTES if max_message_bytes is None else max_message_bytes
    return max(0, int((limit - _BODY_ALLOWANCE) / _BASE64_GROWTH))


def html_attachment(html: str, filename: str, max_message_bytes: int | None = None) -> Attachment | None:
    """`html` as a `text/html` file named `filename` (ending `.html`) when it fits the budget, else None.

    Not gzipped: a `.html.gz` has to be saved and decompressed before a browser shows it, and a `.html` opens from
    the mail client directly."""
    if not filename.endswith(".html"):
        raise ValueError(f"{filename!r}: an HTML attachment's name ends in .html, or mail clients will not open it")
    raw = html.encode("utf-8")
    if len(raw) > attachment_budget(max_message_bytes):
        return None
    return Attachment(filename, raw, "text", "html", "utf-8")


def build_message(
    config: SmtpConfig, subject: str, html_body: str, text_body: str, attachments: list[Attachment] | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.sender
    message["To"] = ", ".join(config.recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="aicash")
    message.set_content(text_body)
    message.add_alternative(html_body, subtype="html")
    for item in attachments or []:
        message.add_attachment(item.content, maintype=item.maintype, subtype=item.subtype, filename=item.filename,
                               params={"charset": item.charset} if item.charset else None)
    return message


def send(config: SmtpConfig, message: EmailMessage, timeout: float = 30.0) -> None:
    """Deliver `message`; any connection, TLS, login or refusal error becomes `MailDeliveryError`."""
    try:
        if config.port == 465:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
        with smtp:
            if config.starttls and config.port != 465:
                smtp.starttls(context=ssl.create_default_context())
            if config.username:
                smtp.login(config.username, config.password or "")
            refused = smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailDeliveryError(f"could not mail {', '.join(config.recipients)} through {config.where}: "
                                f"{type(exc).__name__}: {exc}") from None
    if refused:
        raise MailDeliveryError(f"{config.where} refused {', '.join(refused)}")

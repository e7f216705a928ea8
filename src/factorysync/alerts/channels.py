"""Where alerts are announced: a webhook (JSON POST) and e-mail (SMTP).

Both are configured by settings (``FACTORYSYNC_ALERT_WEBHOOK_URL``,
``FACTORYSYNC_ALERT_SMTP_*``, ``FACTORYSYNC_ALERT_EMAIL_*``); a channel without its
setting is off. Each notice is one event, ``alert.opened`` or ``alert.resolved``, with
the alert record. Failures are raised as :class:`DeliveryError` whose message names the
channel and the kind of failure but never the URL or credentials (a webhook URL often
carries a token).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import orjson

from factorysync import __version__
from factorysync.errors import FactorySyncError
from factorysync.settings import Settings


class DeliveryError(FactorySyncError):
    """A channel could not deliver a notice (the message holds no secret)."""


@dataclass(frozen=True)
class Notice:
    event: str  # "opened" | "resolved"
    alert: dict[str, Any]

    def payload(self, zone: str) -> dict[str, Any]:
        alert = {k: _plain(v) for k, v in self.alert.items()}
        return {
            "event": f"alert.{self.event}",
            "alert": alert,
            "plant_timezone": zone,
            "sent_by": f"factorysync {__version__}",
        }

    def subject(self) -> str:
        a = self.alert
        word = "RESOLVED" if self.event == "resolved" else a["severity"].upper()
        return f"[factorysync] {word}: {a['rule']} on {a['source_id']}"

    def text(self, zone: str) -> str:
        a = self.alert
        tz = ZoneInfo(zone)

        def when(value: datetime | None) -> str:
            return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "-"

        lines = [
            a["message"],
            "",
            f"source:      {a['source_id']}",
            f"rule:        {a['rule']}",
            f"severity:    {a['severity']}",
            f"state:       {a['state']}",
            f"opened:      {when(a['opened_at'])}",
            f"last seen:   {when(a['last_seen_at'])} ({a['occurrences']} occurrence(s))",
        ]
        if self.event == "resolved":
            lines.append(f"resolved:    {when(a['resolved_at'])}")
        return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class Channel(Protocol):
    name: str

    def send(self, notice: Notice) -> None: ...


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, timeout_s: float, zone: str) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.zone = zone

    def send(self, notice: Notice) -> None:
        # Imported here: every one-off sync evaluates the alert rules, few deliver (httpx
        # takes about 30 ms to import).
        import httpx

        body = orjson.dumps(notice.payload(self.zone))
        try:
            response = httpx.post(
                self.url,
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise DeliveryError(f"webhook: answered HTTP {response.status_code}")


class EmailChannel:
    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.host = settings.alert_smtp_host
        self.port = settings.alert_smtp_port
        self.starttls = settings.alert_smtp_starttls
        self.username = settings.alert_smtp_username
        self.password = settings.alert_smtp_password
        self.sender = settings.alert_email_from
        self.recipients = [a.strip() for a in settings.alert_email_to.split(",") if a.strip()]
        self.timeout_s = settings.alert_webhook_timeout_s
        self.zone = settings.timezone

    def send(self, notice: Notice) -> None:
        # Imported here: every process that ends a run loads this module, few send mail.
        import smtplib
        import ssl
        from email.message import EmailMessage

        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Subject"] = notice.subject()
        message.set_content(notice.text(self.zone))
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"e-mail: the SMTP server answered {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"e-mail: {type(exc).__name__}") from None


def configured_channels(settings: Settings) -> list[Channel]:
    channels: list[Channel] = []
    if settings.alert_webhook_url:
        channels.append(
            WebhookChannel(
                settings.alert_webhook_url, settings.alert_webhook_timeout_s, settings.timezone
            )
        )
    if settings.alert_smtp_host and settings.alert_email_to.strip():
        channels.append(EmailChannel(settings))
    return channels

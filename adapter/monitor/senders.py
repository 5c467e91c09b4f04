"""The built-in alert channels besides the log line: a webhook and mail. Each is an
``adapter_alert`` hook implementation the daemon registers when ``[alerts.webhook]`` or
``[alerts.smtp]`` is configured, so it receives what every plugin receives.

A channel that fails raises :class:`~adapter.errors.DeliveryError`; the plugin host logs it and
goes on with the others (an alert never stops the daemon). Neither retries: the next alert, or
the clear, comes through the same way, and the log line is always there.
"""

from __future__ import annotations

import json
import smtplib
import socket
from email.message import EmailMessage
from typing import Any

import httpx

from adapter.config import SmtpConfig, WebhookConfig
from adapter.errors import DeliveryError
from adapter.plugin import hookimpl
from adapter.state.store import utcnow


def source_of(fixmedins_code: str, fixmedins_name: str) -> dict[str, str]:
    """Who raised an alert: the hospital and the machine."""
    return {"fixmedins_code": fixmedins_code, "fixmedins_name": fixmedins_name, "host": socket.gethostname()}


class WebhookSender:
    """POSTs ``{"kind", "state", "alert", "message", "details", "source", "at"}`` as JSON."""

    def __init__(self, config: WebhookConfig, token: str | None, source: dict[str, str]) -> None:
        self.config = config
        self._token = token
        self.source = source

    @hookimpl
    def adapter_alert(self, kind: str, message: str, details: dict[str, Any]) -> None:
        body = {"kind": kind, "state": details.get("state", "start"), "alert": details.get("alert", kind),
                "message": message, "details": details, "source": self.source, "at": utcnow().isoformat() + "Z"}
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            # trust_env=False: never through a proxy picked up from the environment
            with httpx.Client(timeout=self.config.timeout_seconds, trust_env=False) as client:
                reply = client.post(self.config.url, content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                    headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"alert webhook {self.config.url} not reached: {type(exc).__name__}: {exc}") from exc
        if reply.status_code >= 300:
            raise DeliveryError(f"alert webhook {self.config.url} answered HTTP {reply.status_code}")


class SmtpSender:
    """Mails each alert: the subject says start or clear, the kind and the message; the body
    adds the details."""

    def __init__(self, config: SmtpConfig, password: str | None, source: dict[str, str]) -> None:
        self.config = config
        self._password = password
        self.source = source

    @hookimpl
    def adapter_alert(self, kind: str, message: str, details: dict[str, Any]) -> None:
        config = self.config
        mail = EmailMessage()
        state = "恢复 CLEARED" if details.get("state") == "clear" else "告警 ALERT"
        first_line = " ".join(message.split())
        subject = f"[yibao-adapter {self.source['fixmedins_code']}] {state} {kind}: {first_line}"
        mail["Subject"] = subject if len(subject) <= 200 else subject[:199] + "…"
        mail["From"] = config.sender
        mail["To"] = ", ".join(config.to)
        mail.set_content(
            f"{message}\n\n{json.dumps(details, ensure_ascii=False, indent=2, default=str)}\n\n"
            f"{self.source['fixmedins_name']} ({self.source['fixmedins_code']}) on {self.source['host']}\n"
        )
        try:
            with smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds) as smtp:
                if config.starttls:
                    smtp.starttls()
                if config.username is not None and self._password is not None:
                    smtp.login(config.username, self._password)
                smtp.send_message(mail)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"alert mail through {config.host}:{config.port} not sent: {exc}") from exc

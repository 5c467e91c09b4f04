"""CentreClient: one call to the centre, with its msgid committed before the request leaves.

Every attempt gets a fresh msgid (a msgid is never reused) and an ``attempt`` row that records
what happened, so the adapter can always say which request carried which data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from adapter.errors import BusinessRejection, OutcomeUnknown, TransientDeliveryError
from adapter.outbound.envelope import (
    CentreReply,
    Institution,
    build_envelope,
    decode,
    encode,
    parse_reply,
)
from adapter.outbound.msgid import allocate_msgid
from adapter.outbound.transport import HttpTransport
from adapter.plugin.api import RegionProfile, Signer
from adapter.state import schema
from adapter.state.store import StateStore, utcnow

logger = logging.getLogger(__name__)

SIGN_IN = "9001"
SIGN_OUT = "9002"


class CentreClient:
    """Signs in once, then sends transactions; outcomes are recorded per attempt."""

    def __init__(
        self,
        *,
        store: StateStore,
        institution: Institution,
        region: RegionProfile,
        signer: Signer,
        transport: HttpTransport,
        base_url: str,
        sign_in_input: Mapping[str, Any],
        opter: str = "",
    ) -> None:
        self._store = store
        self._institution = institution
        self._region = region
        self._signer = signer
        self._transport = transport
        self._base_url = base_url
        self._sign_in_input = dict(sign_in_input)
        self._opter = opter

    # -- session -------------------------------------------------------------------------
    def sign_no(self) -> str:
        """The cached sign_no, signing in (9001) first if there is none."""
        cached = self.cached_sign_no()
        if cached is not None:
            return cached
        code = self._institution.fixmedins_code
        try:
            _, reply = self._call(SIGN_IN, self._sign_in_input, message_id=None, sign_no="")
        except OutcomeUnknown as exc:
            # A lost sign-in reply costs nothing: the business message has not left yet.
            raise TransientDeliveryError(f"sign-in (9001): {exc}") from exc
        sign_no = self._region.dialect.sign_no_from_output(reply.output or {})
        with self._store.begin() as conn:
            conn.execute(delete(schema.session).where(schema.session.c.fixmedins_code == code))
            conn.execute(
                insert(schema.session).values(fixmedins_code=code, sign_no=sign_no, signed_at=utcnow())
            )
        logger.info("signed in to the centre", extra={"action": "sign_in", "sign_no": sign_no})
        return sign_no

    def cached_sign_no(self) -> str | None:
        with self._store.begin() as conn:
            return conn.execute(
                select(schema.session.c.sign_no).where(
                    schema.session.c.fixmedins_code == self._institution.fixmedins_code
                )
            ).scalar()

    def sign_out(self) -> bool:
        """9002 for the cached session (at shutdown). Failures are logged, never raised:
        an unclosed session simply expires at the centre. Returns True when signed out."""
        sign_no = self.cached_sign_no()
        if sign_no is None:
            return False
        self.forget_session()
        payload = self._region.dialect.sign_out_input(self._opter, sign_no)
        try:
            self._call(SIGN_OUT, payload, message_id=None, sign_no=sign_no)
        except (BusinessRejection, TransientDeliveryError) as exc:
            logger.warning("sign-out (9002) failed: %s", exc, extra={"action": "sign_out_failed"})
            return False
        logger.info("signed out of the centre", extra={"action": "sign_out"})
        return True

    def forget_session(self) -> None:
        with self._store.begin() as conn:
            conn.execute(
                delete(schema.session).where(
                    schema.session.c.fixmedins_code == self._institution.fixmedins_code
                )
            )

    # -- calls ---------------------------------------------------------------------------
    def call(
        self,
        infno: str,
        input_payload: Mapping[str, Any],
        *,
        message_id: int | None,
        insuplc_admdvs: str | None = None,
        attachment: tuple[str, bytes] | None = None,
    ) -> tuple[str, CentreReply]:
        """Send one transaction; returns (msgid, reply) or raises a DeliveryError.

        With an ``attachment`` (file name, bytes) the request is multipart/form-data: the
        message in a ``jsonStr`` part (what the gateway signature covers) and the file in a
        ``file`` part. A reply of application/octet-stream comes back as ``reply.content``.

        A refusal that says the session expired is answered by one fresh sign-in and one
        resend under a new msgid; the refused attempt stays on record.
        """
        sign_no = self.sign_no()
        try:
            return self._call(
                infno, input_payload, message_id=message_id, sign_no=sign_no, insuplc=insuplc_admdvs,
                attachment=attachment,
            )
        except BusinessRejection as exc:
            if not self._region.dialect.session_expired(exc.err_msg):
                raise
            logger.info(
                "the centre says sign_no %s expired; signing in again", sign_no,
                extra={"action": "session_expired"},
            )
            self.forget_session()
            return self._call(
                infno, input_payload, message_id=message_id, sign_no=self.sign_no(),
                insuplc=insuplc_admdvs, attachment=attachment,
            )

    def _call(
        self,
        infno: str,
        input_payload: Mapping[str, Any],
        *,
        message_id: int | None,
        sign_no: str,
        insuplc: str | None = None,
        attachment: tuple[str, bytes] | None = None,
    ) -> tuple[str, CentreReply]:
        with self._store.begin() as conn:
            msgid = allocate_msgid(conn, self._institution.fixmedins_code)
            conn.execute(
                insert(schema.attempt).values(
                    msgid=msgid, message_id=message_id, infno=infno, started_at=utcnow()
                )
            )
            if message_id is not None:
                conn.execute(
                    update(schema.message)
                    .where(schema.message.c.id == message_id)
                    .values(last_msgid=msgid)
                )
        envelope = build_envelope(
            infno=infno,
            msgid=msgid,
            institution=self._institution,
            region=self._region,
            input_payload=input_payload,
            sign_no=sign_no,
            insuplc_admdvs=insuplc,
            inf_time=datetime.now(),
        )
        body = encode(envelope)
        signed = self._signer.headers(body, infno)
        url = self._region.url_for(self._base_url, infno)
        logger.debug("send %s %s", infno, msgid, extra={"action": "send", "msgid": msgid})
        try:
            if attachment is None:
                http = self._transport.post(url, body, {"Content-Type": self._region.content_type, **signed})
            else:
                http = self._transport.post_multipart(
                    url, {"jsonStr": body.decode("utf-8")}, {"file": attachment}, signed
                )
            if http.content_type.split(";")[0].strip().lower() == "application/octet-stream":
                self._finish(msgid, "ok", http.status, 0, "")
                return msgid, CentreReply(0, "", "", None, content=http.body)
            try:
                reply = parse_reply(decode(http.body))
            except ValueError as exc:
                raise TransientDeliveryError(f"unreadable reply from the centre: {exc}") from exc
        except TransientDeliveryError as exc:
            outcome = "unknown" if isinstance(exc, OutcomeUnknown) else "transient"
            self._finish(msgid, outcome, None, None, str(exc))
            raise
        if not reply.ok:
            self._finish(msgid, "rejected", http.status, reply.infcode, reply.err_msg)
            raise BusinessRejection(reply.err_msg or "(the centre gave no err_msg)", reply.infcode)
        self._finish(msgid, "ok", http.status, reply.infcode, reply.err_msg)
        return msgid, reply

    def _finish(
        self, msgid: str, outcome: str, http_status: int | None, infcode: int | None, err: str
    ) -> None:
        with self._store.begin() as conn:
            conn.execute(
                update(schema.attempt)
                .where(schema.attempt.c.msgid == msgid)
                .values(
                    finished_at=utcnow(),
                    outcome=outcome,
                    http_status=http_status,
                    infcode=None if infcode is None else str(infcode),
                    err_msg=err,
                )
            )

"""CentreClient: one call to the centre, with its msgid committed before the request leaves.

Every attempt gets a fresh msgid (a msgid is never reused) and an ``attempt`` row that records
what happened, so the adapter can always say which request carried which data. The attempts
of several business messages sent at once may be registered together, in one commit
(:meth:`CentreClient.register_together`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update

from adapter.errors import (
    BusinessRejection,
    CentreBusy,
    CentreServerError,
    OutcomeUnknown,
    SignInRefused,
    TransientDeliveryError,
)
from adapter.outbound.attempts import AttemptFinish, finish_attempt
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

#: a cached sign_no older than this is renewed before use (centres end sessions on their own)
SESSION_MAX_AGE = timedelta(hours=8)
#: after this long without a successful call, a refusal of the first message may be the stale
#: session's (a centre restarted meanwhile answers -1 in its own words): renew once and resend
IDLE_RENEW_SECONDS = 30 * 60.0
#: how many checked answers' inf_refmsgid are remembered in memory (the attempt table has all)
ANSWERS_REMEMBERED = 10_000
# Statements of every call, built once: building one each time cost several times what
# running it does.
_SESSION = (select(schema.session.c.sign_no, schema.session.c.signed_at)
            .where(schema.session.c.fixmedins_code == bindparam("code")))
_ANSWERED_BY = (select(schema.attempt.c.msgid).where(schema.attempt.c.inf_refmsgid == bindparam("refmsgid"),
                                                     schema.attempt.c.msgid != bindparam("msgid")).limit(1))
_REGISTER = insert(schema.attempt).values({name: bindparam(name)
                                           for name in ("msgid", "message_id", "infno", "started_at")})
_LAST_MSGID = (update(schema.message).where(schema.message.c.id == bindparam("b_id"))
               .values(last_msgid=bindparam("last_msgid")))
#: an answer time further ahead of this machine's clock is no time to judge answers by: taken
#: as the newest, it would make every later answer look older
ANSWER_TIME_AHEAD_LIMIT = timedelta(days=1)


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
        answer_clock_tolerance: timedelta = timedelta(0),
    ) -> None:
        self._store = store
        self._institution = institution
        self._region = region
        self._signer = signer
        self._transport = transport
        self._base_url = base_url
        self._sign_in_input = dict(sign_in_input)
        self._opter = opter
        #: monotonic time of the last call the centre answered (None: none yet in this process)
        self._last_answer: float | None = None
        #: with messages in flight at once (several sending threads): one sign-in at a time,
        #: and one ledger write at a time (SQLite refuses a write transaction that read before
        #: another connection wrote, whatever its busy timeout)
        self._session_lock = threading.RLock()
        self._ledger_lock = threading.RLock()
        #: finish_later results not yet taken, by msgid
        self._finish_later: dict[str, AttemptFinish] = {}
        #: inf_refmsgid -> the msgid it answered, for the answers checked most recently
        self._answered: OrderedDict[str, str] = OrderedDict()
        #: the newest refmsg_time of an answer accepted (the centre's clock; loaded from the
        #: attempt table at the first call), and how far behind it an answer may still be
        self._newest_answer: datetime | None = None
        self._newest_answer_loaded = False
        self._answer_clock_tolerance = answer_clock_tolerance

    # -- session -------------------------------------------------------------------------
    def sign_no(self) -> str:
        """The cached sign_no, signing in (9001) first if there is none or it is too old.

        A refused or lost sign-in raises :class:`SignInRefused` / TransientDeliveryError: the
        business message has not left yet, and no data is at fault.
        """
        with self._session_lock:
            return self._sign_no()

    def _sign_no(self) -> str:
        cached = self._cached_session()
        if cached is not None and utcnow() - cached[1] < SESSION_MAX_AGE:
            return cached[0]
        code = self._institution.fixmedins_code
        try:
            _, reply = self._call(SIGN_IN, self._sign_in_input, message_id=None, sign_no="")
            sign_no = self._region.dialect.sign_no_from_output(reply.output or {})
        except OutcomeUnknown as exc:
            raise TransientDeliveryError(f"sign-in (9001): {exc}") from exc
        except BusinessRejection as exc:
            raise SignInRefused(f"sign-in (9001) refused: {exc.err_msg}") from exc
        with self._ledger_lock, self._store.begin() as conn:
            conn.execute(delete(schema.session).where(schema.session.c.fixmedins_code == code))
            conn.execute(
                insert(schema.session).values(fixmedins_code=code, sign_no=sign_no, signed_at=utcnow())
            )
        logger.info("signed in to the centre", extra={"action": "sign_in", "sign_no": sign_no})
        return sign_no

    def cached_sign_no(self) -> str | None:
        cached = self._cached_session()
        return None if cached is None else cached[0]

    def _cached_session(self) -> tuple[str, datetime] | None:
        with self._store.begin() as conn:
            row = conn.execute(_SESSION, {"code": self._institution.fixmedins_code}).first()
        return None if row is None else (row.sign_no, row.signed_at)

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
        with self._ledger_lock, self._store.begin() as conn:
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
        finish_later: bool = False,
        registered: str | None = None,
    ) -> tuple[str, CentreReply]:
        """Send one transaction; returns (msgid, reply) or raises a DeliveryError.

        ``registered``: the msgid :meth:`register_together` registered for this message, sent
        instead of a new one (a resend after a session renewal still gets its own).

        ``finish_later``: an infcode-0 answer's attempt row is left for the caller to finish
        with its own write (:meth:`take_finish`), e.g. in the transaction that acks the message.

        With an ``attachment`` (file name, bytes) the request is multipart/form-data: the
        message in a ``jsonStr`` part (what the gateway signature covers) and the file in a
        ``file`` part. A reply of application/octet-stream comes back as ``reply.content``.

        A refusal that names the session or the sign_no, whatever its wording, is answered by one
        fresh sign-in and one resend under a new msgid; so is any refusal of the first message
        after a long idle (a centre restarted meanwhile forgets every sign_no). A refusal is not
        a commit, so the resend cannot duplicate anything. The refused attempt stays on record.
        """
        idle = self._last_answer is None or time.monotonic() - self._last_answer > IDLE_RENEW_SECONDS
        try:
            sign_no = self.sign_no()
        except TransientDeliveryError as exc:  # a refused or lost sign-in
            if registered is not None:  # the message never left: a transient failure of its attempt
                self._finish(registered, "transient", None, None, f"not sent: {exc}")
            raise
        try:
            return self._call(
                infno, input_payload, message_id=message_id, sign_no=sign_no, insuplc=insuplc_admdvs,
                attachment=attachment, finish_later=finish_later, registered=registered,
            )
        except BusinessRejection as exc:
            if not (self._region.dialect.session_refused(exc.err_msg) or (idle and message_id is not None)):
                raise
            logger.info(
                "the centre refused sign_no %s (%s); signing in again", sign_no, exc.err_msg,
                extra={"action": "session_renewed"},
            )
            self.forget_session()
            return self._call(
                infno, input_payload, message_id=message_id, sign_no=self.sign_no(),
                insuplc=insuplc_admdvs, attachment=attachment, finish_later=finish_later,
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
        finish_later: bool = False,
        registered: str | None = None,
    ) -> tuple[str, CentreReply]:
        if registered is None:
            with self._ledger_lock, self._store.begin() as conn:
                msgid = self._register(conn, message_id, infno)
                # What the centre had answered before this request left: its answer cannot be older.
                answered_before = self._newest_answer_before(conn)
        else:
            msgid = registered
            with self._ledger_lock:  # loaded by register_together
                answered_before = self._newest_answer
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
                # A file has no envelope, so no time to judge it by: it is read by its content.
                self._finish(msgid, "ok", http.status, 0, "")
                self._last_answer = time.monotonic()
                return msgid, CentreReply(0, "", "", None, content=http.body)
            try:
                reply = parse_reply(decode(http.body))
            except ValueError as exc:
                # The request arrived and something answered: for a business message, what
                # the centre did with it cannot be read from this.
                raise self._unknown_if_sent(
                    message_id, TransientDeliveryError(f"unreadable reply from the centre: {exc}")
                ) from exc
        except CentreServerError as exc:
            unknown = self._unknown_if_sent(message_id, exc)
            self._finish(msgid, "unknown" if unknown is not exc else "transient", exc.status, None, str(exc))
            raise unknown from exc
        except TransientDeliveryError as exc:
            outcome = "unknown" if isinstance(exc, OutcomeUnknown) else "transient"
            self._finish(msgid, outcome, None, None, str(exc))
            raise
        self._last_answer = time.monotonic()
        stale = self._stale(reply, answered_before)
        if stale:
            unknown = self._unknown_if_sent(message_id, TransientDeliveryError(stale))
            self._finish(msgid, "unknown" if isinstance(unknown, OutcomeUnknown) else "transient", http.status,
                         reply.infcode, stale)
            raise unknown
        if not reply.ok:
            self._note_answer_time(reply)
            if not reply.err_msg.strip() or any(word in reply.err_msg for word in self._region.transient_answers):
                self._finish(msgid, "busy", http.status, reply.infcode, reply.err_msg, received_at=_answer_time(reply))
                raise CentreBusy(f"the centre could not take it now: {reply.err_msg or '(infcode -1 without err_msg)'}")
            self._finish(msgid, "rejected", http.status, reply.infcode, reply.err_msg, received_at=_answer_time(reply))
            raise BusinessRejection(reply.err_msg, reply.infcode)
        # The check and the write in one step: with messages in flight at once, a replayed
        # answer must not pass while the attempt it first answered is still being written.
        with self._ledger_lock:
            try:
                self._check_not_foreign(msgid, reply)
            except OutcomeUnknown as exc:
                self._finish(msgid, "unknown", http.status, reply.infcode, str(exc))
                raise
            self._note_answer_time(reply)
            finish = AttemptFinish(msgid, "ok", http.status, reply.infcode, reply.err_msg, reply.inf_refmsgid,
                                   _answer_time(reply))
            if finish_later:
                self._finish_later[msgid] = finish
            else:
                self._write_finish(finish)
        return msgid, reply

    @staticmethod
    def _unknown_if_sent(message_id: int | None, exc: TransientDeliveryError) -> TransientDeliveryError:
        """A business message that got an answer nobody can read may have taken effect."""
        if message_id is None:
            return exc
        return OutcomeUnknown(f"{exc}; the request arrived, so its outcome is unknown")

    def _check_not_foreign(self, msgid: str, reply: CentreReply) -> None:
        """An infcode-0 answer whose inf_refmsgid already answered another request is not this
        request's answer (a proxy or gateway mixed answers up): the outcome is unknown. This
        holds for inquiries, withdrawals and reversals too: a replayed "done" must not settle
        a lost message."""
        if not reply.inf_refmsgid:
            return
        # Answers checked here whose attempt rows are not written yet (finish_later) count too.
        earlier = self._answered.get(reply.inf_refmsgid)
        if earlier is None or earlier == msgid:
            with self._store.begin() as conn:
                earlier = conn.execute(_ANSWERED_BY, {"refmsgid": reply.inf_refmsgid, "msgid": msgid}).scalar()
        if earlier is None:
            self._answered[reply.inf_refmsgid] = msgid
            while len(self._answered) > ANSWERS_REMEMBERED:
                self._answered.popitem(last=False)
        else:
            raise OutcomeUnknown(
                f"the answer carries inf_refmsgid {reply.inf_refmsgid}, which already answered {earlier}: "
                "it is another request's answer, so this one's outcome is unknown"
            )

    def _newest_answer_before(self, conn: Any) -> datetime | None:
        """The newest refmsg_time accepted so far; at the first call, the newest the attempt
        table holds (a restart must not forget what the centre had already answered)."""
        if not self._newest_answer_loaded:
            self._newest_answer = conn.execute(select(func.max(schema.attempt.c.refmsg_time))).scalar()
            self._newest_answer_loaded = True
        return self._newest_answer

    def _stale(self, reply: CentreReply, answered_before: datetime | None) -> str:
        """Why an answer cannot be this request's because of its time ("" if it can be).

        The centre received this request after every request whose answer had come back before
        it left, so an answer that says it was received earlier than one of those is an earlier
        request's answer handed back again (a proxy or gateway replaying what it kept). Read as
        this request's, a replayed "not registered" to an inquiry would have a registration
        sent twice; the answer a replay stands in for is unknown instead."""
        received_at = _answer_time(reply)
        if received_at is None or answered_before is None:
            return ""
        if received_at >= answered_before - self._answer_clock_tolerance:
            return ""
        return (f"the answer says the centre received its request at {_clock(received_at)}, before it "
                f"received one answered earlier ({_clock(answered_before)}): it is an earlier request's answer "
                f"handed back again (inf_refmsgid {reply.inf_refmsgid or 'none'}), so this one's outcome is unknown "
                "(if the centre's clocks disagree, raise [centre] answer_clock_tolerance_seconds)")

    def _note_answer_time(self, reply: CentreReply) -> None:
        received_at = _answer_time(reply)
        if received_at is not None:
            with self._ledger_lock:
                if self._newest_answer is None or received_at > self._newest_answer:
                    self._newest_answer = received_at

    def _finish(
        self, msgid: str, outcome: str, http_status: int | None, infcode: int | None, err: str,
        inf_refmsgid: str = "", received_at: datetime | None = None,
    ) -> None:
        self._write_finish(AttemptFinish(msgid, outcome, http_status, infcode, err, inf_refmsgid, received_at))

    def _write_finish(self, finish: AttemptFinish) -> None:
        with self._ledger_lock, self._store.begin() as conn:
            finish_attempt(conn, finish)

    def _register(self, conn: Any, message_id: int | None, infno: str) -> str:
        msgid = allocate_msgid(conn, self._institution.fixmedins_code)
        conn.execute(_REGISTER, {"msgid": msgid, "message_id": message_id, "infno": infno, "started_at": utcnow()})
        if message_id is not None:
            conn.execute(_LAST_MSGID, {"b_id": message_id, "last_msgid": msgid})
        return msgid

    def register_together(self, messages: Sequence[tuple[int, str]]) -> list[str]:
        """Attempts (their msgids) for several business messages about to be sent at once, given
        as (message id, infno), registered in one transaction: one commit for them all instead
        of one each, and still every msgid committed before its request leaves. Each is then
        sent with :meth:`call` (``registered=``) at once; a crash before then leaves it
        unfinished, and its message is asked about as one whose request may have left."""
        with self._ledger_lock, self._store.begin() as conn:
            msgids = [self._register(conn, message_id, infno) for message_id, infno in messages]
            self._newest_answer_before(conn)
        return msgids

    def take_finish(self, msgid: str) -> AttemptFinish | None:
        """The result of a ``finish_later`` call, for the caller to record with its own write
        (None: already recorded)."""
        with self._ledger_lock:
            return self._finish_later.pop(msgid, None)


def _clock(moment: datetime) -> str:
    """A centre time as its envelope has it, to the millisecond."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _answer_time(reply: CentreReply) -> datetime | None:
    """The answer's receipt time as the client judges, keeps and records it; None when it has
    none or one absurdly far ahead, which is also never written to the attempt row: read back
    at the next start as the newest, it would make every later answer look stale."""
    received_at = reply.received_at
    if received_at is None or received_at >= datetime.now() + ANSWER_TIME_AHEAD_LIMIT:
        return None
    return received_at

"""The policy stage of a cycle: the rules in force run over every stay that has lines ready
to go; blocking findings park those lines, every finding is stored for the report."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from adapter.policy.engine import ActiveRule, EarlierStay, Finding, Stay, evaluate
from adapter.records import MappedFeeLine
from adapter.spool import schema
from adapter.spool.states import LineStatus
from adapter.spool.store import StateStore, utcnow
from adapter.validate.engine import Severity

logger = logging.getLogger(__name__)

_line = schema.fee_line
_finding = schema.finding
_stay = schema.policy_stay
#: lines of a stay that count as charged (what the centre has or will get)
_CHARGED = (LineStatus.READY.value, LineStatus.QUEUED.value, LineStatus.SENT.value)


class PolicyStage:
    def __init__(self, store: StateStore, active: Sequence[ActiveRule]) -> None:
        self.store = store
        self.active = list(active)

    @property
    def enabled(self) -> bool:
        return any(rule.enabled for rule in self.active)

    def run(self, ready: Mapping[int, MappedFeeLine]) -> dict[int, str]:
        """``ready``: line id -> a line that passed validation this cycle. Returns the lines a
        blocking finding stops, with the reason to park them under."""
        if not ready or not self.enabled:
            return {}
        by_stay: dict[str, dict[int, MappedFeeLine]] = defaultdict(dict)
        for line_id, mapped in ready.items():
            by_stay[mapped.line.mdtrt_id][line_id] = mapped
        psn_nos = {m.line.psn_no for m in ready.values()}
        with self.store.begin() as conn:
            for row in conn.execute(
                select(_line.c.id, _line.c.mdtrt_id, _line.c.mapped)
                .where(_line.c.mdtrt_id.in_(list(by_stay)), _line.c.status.in_(_CHARGED), _line.c.mapped.is_not(None))
            ):
                by_stay[row.mdtrt_id].setdefault(row.id, MappedFeeLine.from_json(json.loads(row.mapped)))
            known: dict[str, set[str]] = defaultdict(set)
            for mdtrt_id, feedetl_sn in conn.execute(
                select(_line.c.mdtrt_id, _line.c.feedetl_sn).where(_line.c.mdtrt_id.in_(list(by_stay)))
            ):
                known[mdtrt_id].add(feedetl_sn)
            earlier = _earlier_by_psn(conn, psn_nos)
        for key, lines in by_stay.items():  # stays of this batch see each other too
            summary = _summary(key, list(lines.values()))
            earlier[summary[0]][key] = summary[1]
        blocked: dict[int, list[str]] = defaultdict(list)
        stored = []
        now = utcnow()
        for key, lines in by_stay.items():
            psn_no = next(iter(lines.values())).line.psn_no
            stay = Stay(key, list(lines.values()), [e for k, e in earlier[psn_no].items() if k != key],
                        frozenset(known[key]))
            ids = {m.line.feedetl_sn: line_id for line_id, m in lines.items()}
            for found in evaluate(self.active, stay):
                line_id = ids.get(found.line.line.feedetl_sn)
                if found.severity is Severity.BLOCK and line_id in ready:
                    outcome = "parked"
                    blocked[line_id].append(f"[{found.rule_id}] {found.message}")
                else:
                    outcome = "late" if found.severity is Severity.BLOCK else "reported"
                stored.append(_row(found, key, line_id, outcome, now))
        with self.store.begin() as conn:
            self.store.insert_ignoring_duplicates(conn, _finding, stored)
            for key, lines in by_stay.items():
                self._remember_stay(conn, key, list(lines.values()))
        if stored:
            logger.info("policy rules: %d finding(s), %d line(s) stopped", len(stored), len(blocked),
                        extra={"action": "policy_findings"})
        return {line_id: "; ".join(reasons) for line_id, reasons in blocked.items()}

    @staticmethod
    def _remember_stay(conn: Connection, key: str, lines: list[MappedFeeLine]) -> None:
        psn_no, stay = _summary(key, lines)
        conn.execute(delete(_stay).where(_stay.c.stay_key == key))
        conn.execute(insert(_stay).values(
            stay_key=key, psn_no=psn_no, adm_time=stay.adm_time, dscg_time=stay.dscg_time,
            main_diag_code=stay.main_diag_code, outpatient=int(stay.outpatient)))




def _earlier_by_psn(conn: Connection, psn_nos: set[str]) -> dict[str, dict[str, EarlierStay]]:
    """psn_no -> stay key -> the stay as the policy rules remember it (one query)."""
    earlier: dict[str, dict[str, EarlierStay]] = defaultdict(dict)
    for row in conn.execute(select(_stay).where(_stay.c.psn_no.in_(list(psn_nos)))):
        earlier[row.psn_no][row.stay_key] = EarlierStay(row.stay_key, row.adm_time, row.dscg_time,
                                                        row.main_diag_code, bool(row.outpatient))
    return earlier


def _summary(key: str, lines: list[MappedFeeLine]) -> tuple[str, EarlierStay]:
    """(psn_no, the stay's dates and main diagnosis) from its lines."""
    outpatient = lines[0].line.med_type.startswith("1")
    admitted = min((m.line.adm_time for m in lines if m.line.adm_time), default=None)
    if outpatient and admitted is None:  # an outpatient visit starts with its first charge
        admitted = min(m.line.fee_ocur_time for m in lines)
    discharged = max((m.line.dscg_time for m in lines if m.line.dscg_time), default=None)
    diagnosis = next((m.line.main_diag_code for m in lines if m.line.main_diag_code), "")
    return lines[0].line.psn_no, EarlierStay(key, admitted, discharged, diagnosis, outpatient)


def _row(found: Finding, key: str, line_id: int | None, outcome: str, now: object) -> dict[str, object]:
    line = found.line.line
    return {
        "rule_id": found.rule_id, "severity": found.severity.value, "outcome": outcome, "stay_key": key,
        "feedetl_sn": line.feedetl_sn, "line_id": line_id, "his_item_code": line.his_item_code,
        "dept": line.his_dept_name or line.his_dept_code, "doctor": line.his_doctor_name or line.his_doctor_code,
        "fee_time": line.fee_ocur_time, "amount": str(found.amount), "message": found.message,
        "evidence": json.dumps(found.evidence, ensure_ascii=False, default=str), "created_at": now,
    }


def _outcome(found: Finding, stoppable: bool) -> str:
    if found.severity is Severity.BLOCK:
        return "parked" if stoppable else "late"
    return "reported"


class BatchPolicy:
    """The policy rules over batches of lines that travel as one record each (2204: a charge
    batch of an outpatient visit), seen with the visit's earlier batches and the patient's
    other visits. A whole extraction batch is checked with one query for the patients'
    stays; what it finds is written in the transaction that stores the records."""

    def __init__(self, stage: PolicyStage) -> None:
        self.stage = stage

    def check_all(
        self, batches: Sequence[tuple[str, Sequence[MappedFeeLine], Sequence[MappedFeeLine]]]
    ) -> tuple[list[str | None], Callable[[Connection], None]]:
        """``batches``: (stay key, the batch's lines, the stay's lines already on their way),
        in order; batches of one stay see the ones before them. Returns the reason to park
        each batch (None: it goes) and a writer of the findings and stays."""
        if not self.stage.enabled:
            return [None] * len(batches), lambda _conn: None
        psn_nos = {lines[0].line.psn_no for _key, lines, _history in batches if lines}
        with self.stage.store.begin() as conn:
            earlier = _earlier_by_psn(conn, psn_nos)
        passed: dict[str, list[MappedFeeLine]] = defaultdict(list)
        stays: dict[str, list[MappedFeeLine]] = {}
        reasons: list[str | None] = []
        rows = []
        now = utcnow()
        for key, lines, history in batches:
            if not lines:
                reasons.append(None)
                continue
            mine = {m.line.feedetl_sn for m in lines}
            everything = [*history, *passed[key], *lines]
            psn_no = lines[0].line.psn_no
            stay = Stay(key, everything, [e for k, e in earlier[psn_no].items() if k != key],
                        frozenset(m.line.feedetl_sn for m in everything))
            found = [f for f in evaluate(self.stage.active, stay) if f.line.line.feedetl_sn in mine]
            rows += [_row(f, key, None, _outcome(f, True), now) for f in found]
            blocked = [f"[{f.rule_id}] {f.message}" for f in found if f.severity is Severity.BLOCK]
            reasons.append("; ".join(blocked) or None)
            if not blocked:  # a parked batch is not on its way to the centre
                passed[key].extend(lines)
            stays[key] = everything
            earlier[psn_no][key] = _summary(key, everything)[1]

        def write(conn: Connection) -> None:
            self.stage.store.insert_ignoring_duplicates(conn, _finding, rows)
            for key, lines in stays.items():
                PolicyStage._remember_stay(conn, key, lines)

        return reasons, write

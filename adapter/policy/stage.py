"""The policy rules over whole stays: every stay with records ready to go is evaluated with
the lines of that stay already on their way and the patient's other stays; a blocking finding
on a ready record's line parks that record, every finding is stored for the report."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from adapter.plugin.policy import EarlierStay, Stay
from adapter.plugin.rules import Severity
from adapter.policy.engine import ActiveRule, Finding, evaluate
from adapter.records import MappedFeeLine
from adapter.state import schema
from adapter.state.store import StateStore, in_chunks, utcnow

logger = logging.getLogger(__name__)

_finding = schema.finding
_stay = schema.policy_stay


@dataclass(frozen=True)
class Candidate:
    """A record that passed its checks this cycle: its ledger id, stay and fee lines."""

    record_id: int
    stay_key: str
    lines: Sequence[MappedFeeLine]


class PolicyStage:
    def __init__(self, store: StateStore, active: Sequence[ActiveRule]) -> None:
        self.store = store
        self.active = list(active)

    @property
    def enabled(self) -> bool:
        return any(rule.enabled for rule in self.active)

    def check(
        self,
        candidates: Sequence[Candidate],
        history: Mapping[str, Sequence[tuple[int, MappedFeeLine]]],
        known: Mapping[str, set[str]],
    ) -> tuple[dict[int, str], Callable[[Connection], None]]:
        """``history``: stay -> (record id, line) of the stay already ready, queued or sent;
        ``known``: stay -> every feedetl_sn the adapter holds for it, parked ones too.
        Returns the reason to park each stopped candidate, and the writer of the findings and
        stays (called in the transaction that stores the candidates)."""
        if not candidates or not self.enabled:
            return {}, lambda _conn: None
        by_stay: dict[str, list[tuple[int, MappedFeeLine]]] = defaultdict(list)
        mine: set[int] = set()
        for candidate in candidates:
            mine.add(candidate.record_id)
            by_stay[candidate.stay_key].extend((candidate.record_id, line) for line in candidate.lines)
        for key in by_stay:
            seen = {record_id for record_id, _ in by_stay[key]}
            by_stay[key] = [item for item in history.get(key, ()) if item[0] not in seen] + by_stay[key]
        psn_nos = {line.line.psn_no for items in by_stay.values() for _, line in items}
        with self.store.begin() as conn:
            earlier = _earlier_by_psn(conn, psn_nos)
        summaries = {}
        blocked: dict[int, list[str]] = defaultdict(list)
        stored = []
        now = utcnow()
        # Stays are evaluated in the order their records arrived; each sees the stays before it
        # (stored ones and those of this batch), so a pattern across two stays is found once.
        first = {key: min(record_id for record_id, _ in items if record_id in mine) for key, items in by_stay.items()}
        for key in sorted(by_stay, key=first.__getitem__):
            items = by_stay[key]
            psn_no = items[0][1].line.psn_no
            lines = [line for _, line in items]
            stay = Stay(key, lines, [e for k, e in earlier[psn_no].items() if k != key],
                        frozenset(known.get(key, set()) | {m.line.feedetl_sn for m in lines}))
            earlier[psn_no][key] = summaries[key] = _summary(key, lines)[1]
            owner = {id(line): record_id for record_id, line in items}
            for found in evaluate(self.active, stay):
                record_id = owner.get(id(found.line))
                if found.severity is Severity.BLOCK and record_id in mine:
                    outcome = "parked"
                    blocked[record_id].append(f"[{found.rule_id}] {found.message}")
                else:
                    outcome = "late" if found.severity is Severity.BLOCK else "reported"
                stored.append(_row(found, key, record_id, outcome, now))
        if stored:
            logger.info("policy rules: %d finding(s), %d record(s) stopped", len(stored), len(blocked),
                        extra={"action": "policy_findings"})

        def write(conn: Connection) -> None:
            self.store.insert_ignoring_duplicates(conn, _finding, stored)
            keys = list(summaries)
            for chunk in in_chunks(keys):
                conn.execute(delete(_stay).where(_stay.c.stay_key.in_(chunk)))
            rows = [{"stay_key": key, "psn_no": by_stay[key][0][1].line.psn_no, "adm_time": s.adm_time,
                     "dscg_time": s.dscg_time, "main_diag_code": s.main_diag_code, "outpatient": int(s.outpatient)}
                    for key, s in summaries.items()]
            if rows:
                conn.execute(insert(_stay), rows)

        return {record_id: "; ".join(reasons) for record_id, reasons in blocked.items()}, write


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

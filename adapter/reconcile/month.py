"""A month of settlements in one pass, without holding them: the totals 3201 sends (per
clearing agency x insurance type x clearing type), the daily figures of the report, and each
clearing agency x clearing type kept compressed for the 3202 drill-down, which reads it back in
the HIS's order to write the detail file and to find the few settlements result.txt names.

A settlement costs about 25 bytes here instead of the 600 or so of a settlement object; a
month of 1,000,000 is about 25 MB, plus the fixed 16 MB of the duplicate filter."""

from __future__ import annotations

import marshal
import operator
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapter.reconcile.local import Group, HisSettlement, Totals

#: (setl_optins, clr_type): what one 3202 is about
Partition = tuple[str, str]

#: one settlement as a partition keeps it: setl_id, mdtrt_id, psn_no, insutype, setl_time,
#: medfee_sumamt, fund_pay_sumamt (the region's), acct_pay, psn_cash_pay (amounts as their exact
#: text), refd_setl_flag, msgid; setl_optins and clr_type are the partition's
Kept = tuple[str, str, str, str, str, str, str, str, str, str, str]
#: where the fields of :data:`Kept` are
SETL_ID, MDTRT_ID, PSN_NO, INSUTYPE, SETL_TIME, MEDFEE, FUND, ACCT, CASH, REFD, MSGID = range(11)

#: settlements compressed together (a batch is the unit read back)
_BATCH = 4096
#: zlib level 1: the batches are text of a few kinds of column, so it already gets most of what
#: level 6 would, for a fraction of the time
_LEVEL = 1


class SeenFilter:
    """Which setl_ids may have been seen before, in a fixed 16 MB: a bit per hash value.

    A set of a month's setl_ids would take about 90 bytes a settlement. A bit that is already
    set only says "perhaps": the caller keeps the full hash of every such setl_id
    (:attr:`candidates`) and counts them exactly later (:meth:`KeptSettlements.matching`).
    A setl_id the HIS repeats always lands in the candidates, since its second occurrence finds
    its own bit set. Among 1,000,000 distinct setl_ids about 0.4 % are false candidates."""

    BITS = 1 << 27

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS // 8)
        #: hash(setl_id) of every setl_id that found its bit already set
        self.candidates: set[int] = set()

    def add_all(self, setl_ids: Iterable[str]) -> None:
        bits, last = self._bits, self.BITS - 1
        for setl_id in setl_ids:
            key = hash(setl_id)
            slot = key & last
            mask = 1 << (slot & 7)
            if bits[slot >> 3] & mask:
                self.candidates.add(key)
            else:
                bits[slot >> 3] |= mask


class KeptSettlements:
    """The settlements of one clearing agency x clearing type, in the HIS's order, kept as
    compressed batches of :data:`Kept` tuples (marshal: exact, and fast to read back)."""

    def __init__(self, setl_optins: str, clr_type: str) -> None:
        self.setl_optins = setl_optins
        self.clr_type = clr_type
        self.count = 0
        self._batches: list[bytes] = []
        self._pending: list[Kept] = []

    def extend(self, kept: list[Kept]) -> None:
        self._pending += kept
        self.count += len(kept)
        if len(self._pending) >= _BATCH:
            self._seal()

    def _seal(self) -> None:
        if self._pending:
            self._batches.append(zlib.compress(marshal.dumps(self._pending), _LEVEL))
            self._pending = []

    def batches(self) -> Iterator[list[Kept]]:
        """Every settlement, a batch at a time, in the order they were added."""
        self._seal()
        for batch in self._batches:
            yield marshal.loads(zlib.decompress(batch))

    def matching(self, wanted: Callable[[Kept], bool]) -> list[HisSettlement]:
        """The settlements ``wanted`` keeps, as settlements again, in the HIS's order."""
        return [self.settlement(kept) for batch in self.batches() for kept in batch if wanted(kept)]

    def settlement(self, kept: Kept) -> HisSettlement:
        return HisSettlement(
            kept[SETL_ID], kept[MDTRT_ID], kept[PSN_NO], kept[INSUTYPE], self.clr_type, kept[SETL_TIME],
            Decimal(kept[MEDFEE]), Decimal(kept[FUND]), Decimal(kept[ACCT]), Decimal(kept[CASH]), kept[REFD],
            self.setl_optins, kept[MSGID],
        )


@dataclass
class Month:
    """What one pass over the period's settlements leaves for the rest of the reconciliation."""

    groups: dict[Group, Totals] = field(default_factory=dict)
    partitions: dict[Partition, KeptSettlements] = field(default_factory=dict)
    #: day -> [count, medfee_sumamt, fund_pay_sumamt]
    days: dict[str, list[Any]] = field(default_factory=dict)
    seen: SeenFilter = field(default_factory=SeenFilter)

    def add_page(self, page: Sequence[HisSettlement]) -> None:
        """One page of settlements whose clearing agency is resolved and whose fund_pay_sumamt is
        the region's. The sums are taken a run of rows at a time, left to right in the HIS's
        order, so every total is the very Decimal that adding row by row gives."""
        for (setl_optins, clr_type), rows in _runs(page, _partition_of).items():
            for insutype, group in _runs(rows, _insutype_of).items():
                self._group(setl_optins, insutype, clr_type).add_all(group)
            self._partition(setl_optins, clr_type).extend([
                (s.setl_id, s.mdtrt_id, s.psn_no, s.insutype, s.setl_time, str(s.medfee_sumamt),
                 str(s.fund_pay_sumamt), str(s.acct_pay), str(s.psn_cash_pay), s.refd_setl_flag, s.msgid)
                for s in rows])
        for day, rows in _runs(page, _day_of).items():
            figures = self.days.setdefault(day, [0, Decimal(0), Decimal(0)])
            figures[0] += len(rows)
            figures[1] = sum([s.medfee_sumamt for s in rows], figures[1])
            figures[2] = sum([s.fund_pay_sumamt for s in rows], figures[2])
        self.seen.add_all([s.setl_id for s in page])

    def _group(self, setl_optins: str, insutype: str, clr_type: str) -> Totals:
        key = (setl_optins, insutype, clr_type)
        totals = self.groups.get(key)
        if totals is None:
            totals = self.groups[key] = Totals()
        return totals

    def _partition(self, setl_optins: str, clr_type: str) -> KeptSettlements:
        kept = self.partitions.get((setl_optins, clr_type))
        if kept is None:
            kept = self.partitions[(setl_optins, clr_type)] = KeptSettlements(setl_optins, clr_type)
        return kept

    def partition_totals(self, setl_optins: str, clr_type: str) -> Totals:
        """The totals of one clearing agency x clearing type: the sum of its groups. Decimal
        adds amounts of two (or a few) decimals exactly, so the order the rows are added in does
        not change the figures."""
        total = Totals()
        for (optins, _, clr), group in sorted(self.groups.items()):
            if (optins, clr) == (setl_optins, clr_type):
                total.merge(group)
        return total

    def daily(self) -> dict[str, list[str]]:
        """day -> [count, medfee_sumamt, fund_pay_sumamt] of the hospital's settlements."""
        return {day: [str(v) for v in figures] for day, figures in sorted(self.days.items())}


#: the keys a page is split by (attrgetter: read in C)
_partition_of = operator.attrgetter("setl_optins", "clr_type")
_insutype_of = operator.attrgetter("insutype")


def _day_of(s: HisSettlement) -> str:
    return s.setl_time[:10]


def _runs(page: Sequence[HisSettlement], key: Callable[[HisSettlement], Any]) -> dict[Any, list[HisSettlement]]:
    """The page's settlements by ``key``, each list in the page's order."""
    keys = list(map(key, page))
    if keys and keys.count(keys[0]) == len(keys):  # most pages: one group
        return {keys[0]: list(page)}
    runs: dict[Any, list[HisSettlement]] = {}
    for k, s in zip(keys, page, strict=True):
        rows = runs.get(k)
        if rows is None:
            runs[k] = [s]
        else:
            rows.append(s)
    return runs

"""A month of settlements in one pass, without holding them: the totals 3201 sends (per
clearing agency x insurance type x clearing type), the daily figures of the report, and each
clearing agency x clearing type kept compressed for the 3202 drill-down, which reads it back in
the HIS's order to write the detail file and to find the few settlements result.txt names.

A settlement costs about 25 bytes here instead of the 600 or so of a settlement object; a
month of 1,000,000 is about 25 MB, plus the fixed 16 MB of the duplicate filter."""

from __future__ import annotations

import itertools
import marshal
import zlib
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapter.reconcile.local import Columns, Group, HisSettlement, Totals, taken

#: (setl_optins, clr_type): what one 3202 is about
Partition = tuple[str, str]

#: one settlement as a partition keeps it: setl_id, mdtrt_id, psn_no, insutype, setl_time,
#: medfee_sumamt, fund_pay_sumamt (the region's), acct_pay, psn_cash_pay (amounts as their exact
#: text), refd_setl_flag, msgid; setl_optins and clr_type are the partition's
Kept = tuple[str, str, str, str, str, str, str, str, str, str, str]
#: where the fields of :data:`Kept` are
SETL_ID, MDTRT_ID, PSN_NO, INSUTYPE, SETL_TIME, MEDFEE, FUND, ACCT, CASH, REFD, MSGID = range(11)
_FIELDS = 11

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
    compressed batches, each batch the :data:`Kept` fields a column at a time (marshal: exact,
    and fast to read back; a column of like values also compresses better than rows)."""

    def __init__(self, setl_optins: str, clr_type: str) -> None:
        self.setl_optins = setl_optins
        self.clr_type = clr_type
        self.count = 0
        self._batches: list[bytes] = []
        self._pending: list[list[str]] = [[] for _ in range(_FIELDS)]

    def extend_columns(self, columns: Sequence[Sequence[str]]) -> None:
        """Settlements given as the :data:`Kept` fields, a column each, all of one length."""
        for pending, column in zip(self._pending, columns, strict=True):
            pending += column
        self.count += len(columns[0])
        if len(self._pending[0]) >= _BATCH:
            self._seal()

    def _seal(self) -> None:
        if self._pending[0]:
            self._batches.append(zlib.compress(marshal.dumps(self._pending), _LEVEL))
            self._pending = [[] for _ in range(_FIELDS)]

    def column_batches(self) -> Iterator[list[list[str]]]:
        """Every settlement, a batch at a time, as the :data:`Kept` fields a column each."""
        self._seal()
        for batch in self._batches:
            yield marshal.loads(zlib.decompress(batch))

    def batches(self) -> Iterator[list[Kept]]:
        """Every settlement, a batch at a time, in the order they were added."""
        for columns in self.column_batches():
            yield list(zip(*columns, strict=True))

    def matching(self, wanted: Callable[[Kept], bool]) -> list[HisSettlement]:
        """The settlements ``wanted`` keeps, as settlements again, in the HIS's order."""
        return [self.settlement(kept) for batch in self.batches() for kept in batch if wanted(kept)]

    def having(self, values: Mapping[int, Container[str]], hashes: Container[int] = ()) -> list[HisSettlement]:
        """The settlements one of whose fields is among ``values`` (field of :data:`Kept` ->
        the values wanted), or whose setl_id's hash is among ``hashes``, as settlements again,
        in the HIS's order: :meth:`matching` for those tests, looked up a column at a time."""
        found = []
        for columns in self.column_batches():
            hits = [map(wanted.__contains__, columns[at]) for at, wanted in values.items()]
            if hashes:
                hits.append(map(hashes.__contains__, map(hash, columns[SETL_ID])))
            for row in itertools.compress(range(len(columns[SETL_ID])), map(any, zip(*hits, strict=True))):
                found.append(self.settlement(tuple(column[row] for column in columns)))  # type: ignore[arg-type]
        return found

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
        the region's (see :meth:`add_columns`)."""
        self.add_columns(Columns.of(page))

    def add_columns(self, page: Columns) -> None:
        """One page of settlements, a column each (see :class:`Columns`). The sums are taken a
        group of rows at a time, each group left to right in the HIS's order, so every total is
        the very Decimal that adding row by row gives."""
        for (setl_optins, clr_type), rows in _groups(list(zip(page.setl_optins, page.clr_type, strict=True))):
            part = page.taking(rows)
            for insutype, group in _groups(part.insutype):
                mine = part.taking(group)
                self._group(setl_optins, insutype, clr_type).add_columns(
                    mine.medfee_sumamt, mine.fund_pay_sumamt, mine.acct_pay, mine.psn_cash_pay, mine.refd_setl_flag)
            self._partition(setl_optins, clr_type).extend_columns([
                part.setl_id, part.mdtrt_id, part.psn_no, part.insutype, part.setl_time,
                part.medfee_text, part.fund_text, part.acct_text, part.cash_text, part.refd_setl_flag, part.msgid])
        for day, rows in _groups([at[:10] for at in page.setl_time]):
            figures = self.days.setdefault(day, [0, Decimal(0), Decimal(0)])
            figures[0] += len(rows) if rows is not None else len(page.setl_time)
            figures[1] = sum(taken(page.medfee_sumamt, rows), figures[1])
            figures[2] = sum(taken(page.fund_pay_sumamt, rows), figures[2])
        self.seen.add_all(page.setl_id)

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


def _groups(keys: Sequence[Any]) -> Iterator[tuple[Any, list[int] | None]]:
    """(key, the positions of the rows with that key, in the page's order) for each key of a
    page; None for the positions where every row has the one key (most pages). The grouping is
    a stable sort of the positions, so it runs in C however the keys are interleaved."""
    if not keys:
        return
    if keys.count(keys[0]) == len(keys):
        yield keys[0], None
        return
    ordered = sorted(range(len(keys)), key=keys.__getitem__)
    for key, rows in itertools.groupby(ordered, key=keys.__getitem__):
        yield key, list(rows)

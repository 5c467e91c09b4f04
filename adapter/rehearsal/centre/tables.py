"""The simulated centre's check of every request against the published tables of its
region's edition (adapter/spec), as a real centre refuses a message that breaks them — with
the field named — and its check of its own answers against the tables' output shapes.

This reads the published tables and the region's declared differences only, never the
adapter's transaction specs, so a mistake in those specs is caught here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapter.plugin.api import RegionProfile
from adapter.rehearsal.centre.checks import Refusal
from adapter.spec.check import Problem, check
from adapter.spec.tables import Edition, load_edition

#: transactions of the file and session plumbing whose inputs the edition describes loosely
#: (9101's fsUploadIn carries the file; 9102 answers the file itself)
_SKIPPED = frozenset({"9101", "9102"})
#: problems named in one refusal (a real centre names the first; a few help more)
_NAMED = 3
#: where the simulated centre answers otherwise than the output tables, on purpose: (path of
#: the field in the answer, with [] for any entry) -> why. Such a field's problems are not
#: recorded as the centre's own mistakes.
DEVIATIONS = {
    # 1304, 1312, 1316-1319 write 更新时间 日期型; the centre answers the time it updated the
    # item (yyyy-MM-dd HH:mm:ss), as a date alone cannot order the updates of one day and the
    # next query's lower bound is taken from it. This edition writes timestamps 日期型 elsewhere
    # too (9001's sign_time, with the note yyyy-MM-dd HH:mm:ss).
    "data[].updt_time": "paged catalogue items carry the time of their update",
    # 1318 writes 医保目录定价上限金额 BigDecimal 16 with no decimals; a price cap has fen.
    "data[].hilist_pric_uplmt_amt": "a price cap is answered with its decimals",
}


class TableCheck:
    def __init__(self, region: RegionProfile | None) -> None:
        self.region = region
        self.edition: Edition = load_edition(region.interface_edition) if region is not None else load_edition()
        self.differences = region.table_changes if region is not None else ()

    def request(self, infno: str, document: Mapping[str, Any]) -> None:
        """Refuse an ``input`` that breaks the tables, naming the fields."""
        if infno in _SKIPPED:
            return
        if infno not in self.edition.transactions:
            raise Refusal(f"交易编号[{infno}]不存在 (接口规范 {self.edition.about.get('version', '')} 无此交易)")
        problems = check(self.edition, infno, document.get("input"), "input", self.differences)
        if problems:
            named = "; ".join(str(p) for p in problems[:_NAMED])
            more = f" 等{len(problems)}项" if len(problems) > _NAMED else ""
            raise Refusal(f"入参校验失败: {named}{more}")

    def answer(self, infno: str, output: Any) -> list[str]:
        """How the centre's own ``output`` breaks the tables (kept for the tests to read), one
        line per kind of problem (entries of a list are written ``[]``). A paged query's answer
        is checked item by item (see :meth:`paged`)."""
        if infno in _SKIPPED or infno not in self.edition.transactions or output is None:
            return []
        if self.paged(infno) and isinstance(output, Mapping) and isinstance(output.get("data"), list):
            problems = [Problem(f"data{p.path}", p.message)
                        for p in check(self.edition, infno, output["data"], "output", self.differences)]
        else:
            problems = check(self.edition, infno, output, "output", self.differences)
        found = dict.fromkeys(_general(p) for p in problems)
        return [problem for problem in found if problem.split(":", 1)[0] not in DEVIATIONS]

    def paged(self, infno: str) -> bool:
        """A paged query (1304, 1312, 1316-1319): page_num and page_size in, the fields of one
        item out with no node. The platform answers the page in its paging wrapper (pageNum,
        recordCounts, data[]...), which the edition does not describe: the items are checked."""
        table = self.edition.transaction(infno)
        asked = {f.code for node in table.input for f in node.fields}
        return {"page_num", "page_size"} <= asked and all(node.node is None for node in table.output)


def _general(problem: Problem) -> str:
    """A problem with the entry numbers of its path written [] (one line per kind)."""
    return str(Problem(re.sub(r"\[\d+\]", "[]", problem.path), problem.message))

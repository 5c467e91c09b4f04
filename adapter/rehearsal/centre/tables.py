"""The simulated centre's check of every request against the published tables of its
region's edition (adapter/spec), as a real centre refuses a message that breaks them — with
the field named — and its check of its own answers against the tables' output shapes.

This reads the published tables and the region's declared differences only, never the
adapter's transaction specs, so a mistake in those specs is caught here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapter.plugin.api import RegionProfile
from adapter.rehearsal.centre.checks import Refusal
from adapter.spec.check import check
from adapter.spec.tables import Edition, load_edition

#: transactions of the file and session plumbing whose inputs the edition describes loosely
#: (9101's fsUploadIn carries the file; 9001/9002 are checked by their handlers)
_SKIPPED = frozenset({"9101", "9102"})
#: problems named in one refusal (a real centre names the first; a few help more)
_NAMED = 3


class TableCheck:
    def __init__(self, region: RegionProfile | None) -> None:
        self.region = region
        self.edition: Edition = load_edition(region.interface_edition) if region is not None else load_edition()
        self.differences = region.edition_differences if region is not None else ()

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
        """How the centre's own ``output`` breaks the tables (kept for the tests to read)."""
        if infno in _SKIPPED or infno not in self.edition.transactions or output is None:
            return []
        return [str(p) for p in check(self.edition, infno, output, "output", self.differences)]

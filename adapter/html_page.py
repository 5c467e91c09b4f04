"""The reports' HTML pages: Jinja2 templates (adapter/templates) over the tables of
adapter.reports.layout, every value escaped (autoescape on), one stylesheet for the screen and
for print, no scripts and no external files, so a page can be mailed or archived as it is.

On the screen a page is readable at 1,000 px: a table wider than that scrolls inside its own
box instead of being cut off or widening the page. Printed, it fits A4 landscape: the
stylesheet's @page and @media print rules narrow the tables and repeat their headers."""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from adapter.reports.layout import NUMERIC, Coded, Masthead, duration_text, local_time


def cell_text(value: Any, kind: str = "text") -> str:
    """A value as the page shows it: amounts with thousands separators and two decimals,
    counts with separators, fractions as percentages, durations in days, hours and minutes,
    times in local time. A code's label is added by the template (it is styled apart)."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "是 yes" if value else "否 no"
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, date):
        return f"{value:%Y-%m-%d}"
    if isinstance(value, Decimal | float) and kind == "percent":
        share = Decimal(str(value)) * 100
        return "<0.01%" if 0 < abs(share) < Decimal("0.005") else f"{share:,.2f}%"
    if isinstance(value, Decimal | float):
        return f"{Decimal(str(value)):,.2f}"
    if isinstance(value, int) and kind in NUMERIC:
        return f"{value:,}"
    return str(value)


@functools.cache
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("adapter", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["cell"] = cell_text
    env.filters["local_time"] = local_time
    env.tests["coded"] = lambda value: isinstance(value, Coded)
    env.globals["NUMERIC"] = NUMERIC
    return env


def render(template: str, head: Masthead, **context: Any) -> str:
    """The page ``template`` (a file of adapter/templates) with the masthead ``head``."""
    return _environment().get_template(template).render(head=head, **context)

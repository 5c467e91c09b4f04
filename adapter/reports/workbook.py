"""A report's tables as an XLSX workbook finance can close on: one sheet per table, its
Chinese header in the first row (the English in a comment on each header cell, so that the
filter and sort see one header row), numbers stored as numbers with their format (amounts
``#,##0.00``), dates and times as dates and times, a code's label in the column after it,
column widths fitted to the content, the header row frozen, an autofilter over the data and a
totals row of SUM formulas that Excel recomputes when a figure is corrected. Each sheet prints
on A4 landscape, one page wide, the header row repeated, with the hospital, the report and the
page in its header and footer. A last sheet says whose report it is, for when, made when and
by which version."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from adapter.reports.layout import Coded, Column, Masthead, Table, duration_text, zone_text

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

#: number formats by column kind
FORMATS = {"money": "#,##0.00", "count": "#,##0", "percent": "0.00%", "hours": "#,##0.00",
           "date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm:ss"}
_HEAD_FILL = "DCE6F0"
_MAX_WIDTH = 60


def workbook(head: Masthead, tables: Sequence[Table], *, about_sheet: str = "说明 About",
             about_first: bool = False) -> bytes:
    """The workbook of ``tables`` with the masthead's sheet (``about_sheet``) last, or first."""
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    first = book.active
    assert isinstance(first, Worksheet)  # a new workbook starts with one worksheet, active
    book.remove(first)
    book.properties.title = f"{head.zh} {head.en} {head.period}"
    book.properties.creator = f"yibao-adapter {head.version}"
    if about_first:
        _about(book.create_sheet(about_sheet[:31]), head)
    for table in tables:
        _sheet(book.create_sheet(table.sheet[:31]), head, table)
    if not about_first:
        _about(book.create_sheet(about_sheet[:31]), head)
    book.active = 0
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _expanded(columns: Sequence[Column]) -> list[tuple[Column, bool]]:
    """The sheet's columns: each code column followed by one for its label (True)."""
    out: list[tuple[Column, bool]] = []
    for column in columns:
        out.append((column, False))
        if column.kind == "code":
            out.append((Column(f"{column.zh}名称", f"{column.en} (label)", "text"), True))
    return out


def _cells(columns: Sequence[Column], row: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for column, value in zip(columns, row, strict=True):
        if column.kind == "code":
            coded = value if isinstance(value, Coded) else Coded("" if value is None else str(value))
            out += [coded.code or None, coded.label or None]
        else:
            out.append(_value(value))
    return out


def _value(value: Any) -> Any:
    """A cell value as Excel stores it: numbers, naive local dates and times, text."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, timedelta):
        return round(value.total_seconds() / 3600, 2)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None, microsecond=0)
    if isinstance(value, int | float | date):
        return value
    return str(value)


def _sheet(sheet: Worksheet, head: Masthead, table: Table) -> None:
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties

    columns = _expanded(table.columns)
    bold, fill = Font(bold=True), PatternFill("solid", start_color=_HEAD_FILL, end_color=_HEAD_FILL)
    sheet.append([c.zh + ("(小时)" if c.kind == "hours" else "") for c, _ in columns])
    for index, (column, _) in enumerate(columns, start=1):
        cell = sheet.cell(row=1, column=index)
        cell.font, cell.fill = bold, fill
        cell.alignment = Alignment(vertical="center", wrap_text=True)
        english = column.en + {"datetime": f" ({zone_text(head.generated_at)})", "hours": " (hours)"}.get(
            column.kind, "")
        cell.comment = Comment(english, "yibao-adapter", width=220, height=60)
    for row in table.rows:
        sheet.append(_cells(table.columns, row))
    last = sheet.max_row
    for index, (column, label) in enumerate(columns, start=1):
        number_format = FORMATS.get(column.kind) if not label else None
        for (cell,) in sheet.iter_rows(min_row=2, max_row=last, min_col=index, max_col=index):
            if number_format and not isinstance(cell.value, str):
                cell.number_format = number_format
            if column.wrap:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    if table.totals and table.rows:
        _totals(sheet, columns, last)
        top = Border(top=Side(style="thin"))
        for cell in sheet[sheet.max_row]:
            cell.font, cell.border = bold, top
    _widths(sheet, columns)
    letter = get_column_letter(len(columns))
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{letter}{max(last, 2)}"
    sheet.print_title_rows = "1:1"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    header, footer = sheet.oddHeader, sheet.oddFooter
    assert header is not None and footer is not None  # a new worksheet has both
    _text(header.left, f"{head.hospital.name} {head.hospital.code}".strip())
    _text(header.center, f"{head.zh} {table.zh} {head.period}")
    _text(header.right, "第 &P / &N 页")
    _text(footer.left, f"生成 Generated {head.generated}")
    _text(footer.right, f"yibao-adapter {head.version}")


def _text(part: Any, text: str) -> None:
    """One part (left, centre, right) of a sheet's printed header or footer."""
    part.text = text


def _totals(sheet: Worksheet, columns: Sequence[tuple[Column, bool]], last: int) -> None:
    """"合计 Total" and, under each summed column, =SUM of its data rows."""
    from openpyxl.utils import get_column_letter

    row: list[Any] = []
    for index, (column, label) in enumerate(columns, start=1):
        letter = get_column_letter(index)
        row.append(f"=SUM({letter}2:{letter}{last})" if column.total and not label else None)
    first_free = next((i for i, value in enumerate(row) if value is None), None)
    if first_free is not None:
        row[first_free] = "合计 Total"
    sheet.append(row)
    for index, (column, label) in enumerate(columns, start=1):
        if column.total and not label:
            sheet.cell(row=sheet.max_row, column=index).number_format = FORMATS.get(column.kind, "General")


def _width(value: Any, kind: str) -> int:
    """Characters a value takes (a Chinese character counts two)."""
    if value is None:
        return 0
    if isinstance(value, float | int | Decimal) and kind in ("money", "hours"):
        text = f"{value:,.2f}"
    elif isinstance(value, datetime):
        text = "2026-01-01 00:00:00"
    elif isinstance(value, date):
        text = "2026-01-01"
    elif isinstance(value, timedelta):
        text = duration_text(value)
    else:
        text = str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _widths(sheet: Worksheet, columns: Sequence[tuple[Column, bool]]) -> None:
    from openpyxl.utils import get_column_letter

    for index, (column, _) in enumerate(columns, start=1):
        widest = max((_width(cell.value, column.kind) for (cell,) in sheet.iter_rows(
            min_row=2, min_col=index, max_col=index) if not str(cell.value or "").startswith("=")), default=0)
        header = _width(column.zh, "text")
        limit = 40 if column.wrap else _MAX_WIDTH
        sheet.column_dimensions[get_column_letter(index)].width = min(max(widest, header, 6) + 2, limit)


def _about(sheet: Worksheet, head: Masthead) -> None:
    """The masthead as a sheet: what the report is, whose, for when, made when and by what."""
    from openpyxl.styles import Font

    rows: list[tuple[str, str, Any]] = [
        ("报表", "Report", f"{head.zh} {head.en}"),
        ("医院", "Hospital", head.hospital.name),
        ("医院编码", "Institution code", head.hospital.code),
        ("开始日期", "From", head.start),
        ("结束日期", "To", head.end),
        *head.facts,
        ("生成时间", f"Generated ({zone_text(head.generated_at)})", head.generated_at.replace(tzinfo=None,
                                                                                       microsecond=0)),
        ("版本", "Version", f"yibao-adapter {head.version}"),
    ]
    sheet.append(["项目", "Item", "内容 Value"])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for zh, en, value in rows:
        sheet.append([zh, en, value])
        cell = sheet.cell(row=sheet.max_row, column=3)
        if isinstance(value, datetime):
            cell.number_format = FORMATS["datetime"]
        elif isinstance(value, date):
            cell.number_format = FORMATS["date"]
    sheet.column_dimensions["A"].width = 14
    sheet.column_dimensions["B"].width = 30
    sheet.column_dimensions["C"].width = 60
    sheet.freeze_panes = "A2"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4

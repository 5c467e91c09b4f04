"""Self-contained HTML pages for the reports (no scripts, no external files): one stylesheet,
escaped tables."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
          "td,th{border:1px solid #999;padding:4px 8px;text-align:left}th{background:#eee}.bad{color:#b00}")


def table(head: Sequence[Any], rows: Iterable[Sequence[Any]], title: str = "") -> str:
    """A table with every cell escaped, under an ``<h2>`` title if one is given."""
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    heading = f"<h2>{html.escape(title)}</h2>" if title else ""
    return f"{heading}<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, parts: Iterable[str]) -> str:
    """The whole document; ``parts`` are HTML already escaped where they need it."""
    return (f"<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")

"""Reports people read: a report's tables as data (``layout``), written as a finance-grade
workbook (``workbook``) and, through adapter.html_page, as one HTML page; and the transmission
compliance report (``transmission``) an inspection asks for.

Nothing is imported here: the reconciliation and self-inspection reports use ``layout`` and
``workbook`` without pulling in the transmission report's reading of the state database."""

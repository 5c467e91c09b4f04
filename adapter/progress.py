"""Progress of long work: a backfill (the cycle's extract, check, build and send over a large HIS
backlog), a catalogue import, a mapping import, a reconciliation.

The work asks its :class:`Reporter` for a :class:`Progress` and calls ``advance(n)`` after each
batch it commits. Advancing is an addition and a clock read; everything else is throttled by
time: each sink has a delay (work that ends sooner shows nothing there, so an ordinary 20-minute
cycle writes and logs nothing more) and an interval between two updates. Where it goes:

- :class:`TerminalSink`: rich progress bars on stderr, when stderr is a terminal (the CLI only);
- :class:`LogSink`: otherwise (a service, cron, a pipe) an INFO line in the log every
  ``[progress] every_seconds`` (``extract 2301: 120,000 of ~1,000,000 rows, 2,300 rows/s, about 6
  min left``), and one when the work ends;
- :class:`StoreSink`: the ``progress`` row of the state store (:mod:`adapter.state.progress`), at
  the same pace, which ``status`` and the status page read from their own processes.

A total is what the work knows (a catalogue's declared ``data_cnt``, a paged query's
``recordCounts``, the pairs of a reconciliation); or what ``remaining`` counts once, when the work
has proved long (the HIS rows past the watermark, the records still to check); or what
``estimate`` guesses at every update (a catalogue file's rows from the bytes read). Without one,
the work reports what it did and its rate. A sink that fails never stops the work.

A Progress belongs to the thread that runs the work; advance it outside any state-store
transaction when its reporter writes the store row (SQLite would make the row wait for it).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from adapter.errors import StateStoreError
from adapter.state.progress import ProgressRow, write_progress
from adapter.state.store import StateStore, utcnow

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as Bars
    from rich.progress import TaskID

logger = logging.getLogger(__name__)

#: the default pace of the log line and the store row (``[progress] every_seconds``)
EVERY_SECONDS = 5.0
#: a bar appears once the work has run this long, and is redrawn at most this often
TERMINAL_DELAY, TERMINAL_INTERVAL = 0.3, 0.1


# -- the words ---------------------------------------------------------------------------------
def duration_text(seconds: float) -> str:
    """``40 s``, ``6 min``, ``2 h 10 min``."""
    if seconds < 59.5:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def rate_text(rate: float) -> str:
    """``2,300`` units a second; ``0.5`` below ten."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


def figures(row: ProgressRow) -> str:
    """``120,000 of ~1,000,000 rows, 2,300 rows/s, about 6 min left`` (``~``: an estimated total)."""
    if row.total is not None:
        parts = [f"{row.done:,} of {'~' if row.estimated else ''}{row.total:,} {row.unit}"]
    else:
        parts = [f"{row.done:,} {row.unit} so far"]
    if row.rate is not None:
        parts.append(f"{rate_text(row.rate)} {row.unit}/s")
    left = row.seconds_left
    if left is not None:
        parts.append("nearly done" if left < 1 else f"about {duration_text(left)} left")
    elif row.total is None:
        parts.append("total not known")
    return ", ".join(parts)


def describe(row: ProgressRow) -> str:
    """The log line: ``extract 2301: 120,000 of ~1,000,000 rows, 2,300 rows/s, about 6 min left``."""
    return f"{row.label}: {figures(row)}"


def ended(row: ProgressRow, failed: bool) -> str:
    """``extract 2301: done, 1,000,000 rows in 7 min, 2,381 rows/s`` (or ``stopped after ...``)."""
    took = duration_text(row.elapsed_seconds)
    if failed:
        return f"{row.label}: stopped after {row.done:,} {row.unit} in {took}"
    rate = f", {rate_text(row.rate)} {row.unit}/s" if row.rate is not None else ""
    return f"{row.label}: done, {row.done:,} {row.unit} in {took}{rate}"


# -- the work ----------------------------------------------------------------------------------
class Sink(Protocol):
    """Where progress is shown. ``delay``: how long work runs before it is shown here at all;
    ``interval``: the least time between two updates."""

    @property
    def delay(self) -> float: ...

    @property
    def interval(self) -> float: ...

    def update(self, row: ProgressRow) -> None: ...

    def finish(self, row: ProgressRow, failed: bool) -> None:
        """The work ended (``failed``: by an exception); called only where it was shown."""


class Progress:
    """One piece of long work; a context manager that finishes it."""

    def __init__(self, reporter: Reporter, stage: str, infno: str, unit: str, total: int | None,
                 remaining: Callable[[], int | None] | None, estimate: Callable[[int], int | None] | None) -> None:
        self._reporter = reporter
        self.stage, self.infno, self.unit = stage, infno, unit
        self.done = 0
        self.total = total
        self.estimated = False
        self._remaining = remaining if total is None else None
        self._estimate = estimate if total is None else None
        self._clock = reporter.clock
        self._began = self._clock()
        self._started_at = reporter.now()
        sinks = reporter.sinks
        self._due = [self._began + sink.delay for sink in sinks]
        self._shown = [False] * len(sinks)
        #: when the next sink is due (never, without sinks)
        self._next = min(self._due, default=math.inf)
        self._finished = False

    def advance(self, n: int = 1) -> None:
        """``n`` more units done (cheap: the sinks are told only when one is due)."""
        if n:
            self.done += n
            if self._clock() >= self._next:
                self._report()

    def row(self, finished: bool = False) -> ProgressRow:
        """Where the work stands now."""
        at = self._started_at + timedelta(seconds=max(0.0, self._clock() - self._began))
        return ProgressRow(self.stage, self.infno, self.unit, self.done, self.total, self.estimated,
                           self._started_at, at, at if finished else None, self._reporter.owner)

    def _report(self) -> None:
        self._find_total()
        row = self.row()
        now = self._clock()
        for index, sink in enumerate(self._reporter.sinks):
            if now >= self._due[index]:
                self._shown[index] = True
                self._due[index] = now + sink.interval
                _safely(sink.update, row)
        self._next = min(self._due)

    def _find_total(self) -> None:
        if self._remaining is not None:
            count, self._remaining = self._remaining, None  # asked once
            try:
                left = count()
            except Exception as exc:  # counting is a courtesy: the work goes on without a total
                logger.warning("%s: could not count what is left (%s); progress shows what is done and its rate",
                               f"{self.stage} {self.infno}".strip(), exc, extra={"action": "progress_uncounted"})
                left = None
            if left is not None:
                self.total, self.estimated = self.done + left, True
        if self._estimate is not None:
            try:
                guess = self._estimate(self.done)
            except Exception as exc:  # a guess that fails is no guess
                logger.debug("no estimate of the total: %s", exc, extra={"action": "progress_unestimated"})
                guess = None
            if guess is not None:
                self.total, self.estimated = guess, True
        if self.estimated and self.total is not None and self.done > self.total:
            self.total = self.done  # more came than was counted (rows added, records requeued)

    def finish(self, failed: bool = False) -> None:
        """The work ended; the sinks that showed it say so (the others never heard of it)."""
        if self._finished:
            return
        self._finished = True
        if self._estimate is not None and not failed:
            self.total = self.done  # read to the end: what the guess was about is known now
        row = self.row(finished=True)
        for index, sink in enumerate(self._reporter.sinks):
            if self._shown[index]:
                _safely(sink.finish, row, failed)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.finish(failed=kind is not None)


def _safely(call: Callable[..., None], *args: object) -> None:
    try:
        call(*args)
    except Exception as exc:  # a bar or a log line that fails must not stop an upload
        logger.debug("progress not shown: %s", exc, extra={"action": "progress_failed"})


class Reporter:
    """Hands out a :class:`Progress` for each piece of long work, all shown on the same sinks.
    ``Reporter()`` shows nothing (the default of every stage)."""

    def __init__(self, sinks: Sequence[Sink] = (), clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.sinks = list(sinks)
        self.clock = clock
        self.now = now
        self.owner = f"{socket.gethostname()}:{os.getpid()}"[:64]

    def start(self, stage: str, infno: str = "", *, unit: str = "rows", total: int | None = None,
              remaining: Callable[[], int | None] | None = None,
              estimate: Callable[[int], int | None] | None = None) -> Progress:
        """Work begins. ``total``: known now; else ``remaining()`` (what is left: asked once, when the
        work is first shown) or ``estimate(done)`` (a guess at the whole, at every update)."""
        return Progress(self, stage, infno, unit, total, remaining, estimate)

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


#: shows nothing
SILENT = Reporter()


def reporter(store: StateStore | None = None, every_seconds: float = EVERY_SECONDS, *,
             interactive: bool = False) -> Reporter:
    """The sinks of this process: bars when ``interactive`` (a command a person started) and
    stderr is a terminal, a log line otherwise; the store row when ``store`` is given."""
    sinks: list[Sink] = []
    terminal = TerminalSink.on_stderr() if interactive else None
    sinks.append(terminal if terminal is not None else LogSink(every_seconds))
    if store is not None:
        sinks.append(StoreSink(store, every_seconds))
    return Reporter(sinks)


# -- the sinks ---------------------------------------------------------------------------------
class LogSink:
    """An INFO line every ``every_seconds`` while the work runs, and one when it ends."""

    def __init__(self, every_seconds: float = EVERY_SECONDS, log: logging.Logger = logger) -> None:
        self.delay = self.interval = every_seconds
        self.log = log

    def update(self, row: ProgressRow) -> None:
        self.log.info("%s", describe(row), extra=_extra(row, "progress"))

    def finish(self, row: ProgressRow, failed: bool) -> None:
        self.log.info("%s", ended(row, failed), extra=_extra(row, "progress_stopped" if failed else "progress_done"))


def _extra(row: ProgressRow, action: str) -> dict[str, object]:
    return {"action": action, "stage": row.stage, "infno": row.infno, "done": row.done, "total": row.total}


class StoreSink:
    """The ``progress`` row, every ``every_seconds`` while the work runs, marked finished at its end."""

    def __init__(self, store: StateStore, every_seconds: float = EVERY_SECONDS) -> None:
        self.store = store
        self.delay = self.interval = every_seconds
        self._warned = False

    def update(self, row: ProgressRow) -> None:
        self._write(row)

    def finish(self, row: ProgressRow, failed: bool) -> None:
        self._write(row)

    def _write(self, row: ProgressRow) -> None:
        try:
            write_progress(self.store, row)
        except StateStoreError as exc:
            if not self._warned:  # once: the work itself goes on
                self._warned = True
                logger.warning("progress of %s not written to the state store: %s", row.label, exc,
                               extra={"action": "progress_unwritten"})


class TerminalSink:
    """rich progress bars on a terminal: one line per piece of work, kept on screen when it ends.
    While bars are shown, log lines written to the same terminal go above them."""

    delay, interval = TERMINAL_DELAY, TERMINAL_INTERVAL

    def __init__(self, console: Console) -> None:
        self.console = console
        self._bars: Bars | None = None
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._open: set[tuple[str, str]] = set()
        self._moved: list[logging.StreamHandler] = []  # type: ignore[type-arg]
        self._stderr = sys.stderr

    @classmethod
    def on_stderr(cls) -> TerminalSink | None:
        """A sink on stderr, if stderr is a terminal (None: a pipe, a file, the journal)."""
        try:
            terminal = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        except (AttributeError, ValueError):
            terminal = False
        if not terminal:
            return None
        from rich.console import Console

        return cls(Console(stderr=True))

    def update(self, row: ProgressRow) -> None:
        bars = self._bars or self._begin()
        key = (row.stage, row.infno)
        if key not in self._tasks:
            self._tasks[key] = bars.add_task(row.label, total=row.total, completed=row.done, figures=figures(row))
        self._open.add(key)
        bars.update(self._tasks[key], completed=row.done, total=row.total, figures=figures(row), refresh=True)

    def finish(self, row: ProgressRow, failed: bool) -> None:
        key = (row.stage, row.infno)
        if self._bars is not None and key in self._tasks:
            self._bars.update(self._tasks[key], completed=row.done, total=row.total if failed else row.done,
                              figures=ended(row, failed).removeprefix(f"{row.label}: "), refresh=True)
        self._open.discard(key)
        if not self._open:
            self.close()

    def _begin(self) -> Bars:
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bars

        self._stderr = sys.stderr
        self._bars = Bars(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[figures]}"),
                          TimeElapsedColumn(), console=self.console, transient=False, redirect_stderr=True,
                          redirect_stdout=_isatty(sys.stdout), refresh_per_second=8)
        self._bars.start()
        if sys.stderr is not self._stderr:  # rich's stand-in, which prints above the bars
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is self._stderr:
                    handler.setStream(sys.stderr)
                    self._moved.append(handler)
        return self._bars

    def close(self) -> None:
        """Stop drawing (the last state of every bar stays on screen)."""
        if self._bars is None:
            return
        bars, self._bars = self._bars, None
        bars.stop()
        for handler in self._moved:
            handler.setStream(self._stderr)
        self._moved = []
        self._tasks.clear()
        self._open.clear()


def _isatty(stream: object) -> bool:
    try:
        return bool(getattr(stream, "isatty", lambda: False)())
    except ValueError:  # closed
        return False

"""Progress of long work (predictions, corruption generation, fine-tuning), tqdm-like.

A :class:`Reporter` is what long-running code is handed as ``progress``: calling it
writes one line of text (as the plain ``Callable[[str], None]`` it replaces), and
:func:`task` opens a counted task on it:

- on a terminal (``live``): one bar per task, redrawn in place at most every
  :data:`REDRAW_SECONDS`, with count, rate and ETA::

      prunecheck: parent, wt80 on cifar10 [gaussian_noise-3]  45%|#####      | 4500/10000 images [00:12<00:15]

- elsewhere (a log file, ``CI`` set, a pytest-xdist worker): a start line, one plain
  line every :data:`PLAIN_SECONDS` while it runs and a closing line, so CI logs
  stay short but show the job is alive.

Code that receives a bare callable instead of a :class:`Reporter` still works:
:func:`task` then falls back to plain lines through it.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

REDRAW_SECONDS = 0.2  # terminal bar: at most five redraws a second
PLAIN_SECONDS = 10.0  # plain output: one line per task every ten seconds
BAR_WIDTH = 24


def fmt_duration(seconds: float) -> str:
    """``mm:ss`` below an hour, ``h:mm:ss`` above (tqdm's style); ``?`` when unknown."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def plain_output_wanted(*, isatty: bool, environ: dict[str, str] | None = None) -> bool:
    """True when progress should be plain periodic lines instead of a redrawn bar.

    Plain when the output is not a terminal, in CI (``CI`` set to anything but
    ``false``/``0``/empty, as GitHub Actions, GitLab and most CI services do), under a
    pytest-xdist worker (its output reaches the terminal through the controller) or
    with ``TERM=dumb``.
    """
    env = os.environ if environ is None else environ
    ci = env.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return not isatty or ci or bool(env.get("PYTEST_XDIST_WORKER")) or env.get("TERM") == "dumb"


class Reporter:
    """Writes progress: plain lines via ``write_line``; bars via ``draw`` when live.

    Args:
        write_line: Writes one complete line (no newline in the text).
        draw: Redraws the current bar line in place (no newline), then ``end_draw``
            closes it; ``None`` means plain output only.
        end_draw: Ends the bar line (the final state stays visible).
        clock: Seconds, monotonic (tests pass a fake one).
        plain_seconds: Interval of the plain progress lines.
    """

    def __init__(
        self,
        write_line: Callable[[str], None],
        *,
        draw: Callable[[str], None] | None = None,
        end_draw: Callable[[], None] | None = None,
        width: int = 100,
        clock: Callable[[], float] = time.monotonic,
        plain_seconds: float = PLAIN_SECONDS,
    ):
        self.write_line = write_line
        self.draw = draw
        self.end_draw = end_draw or (lambda: None)
        self.width = max(40, int(width))
        self.clock = clock
        self.plain_seconds = plain_seconds

    @property
    def live(self) -> bool:
        return self.draw is not None

    def __call__(self, message: str) -> None:
        self.write_line(message)

    def task(self, label: str, total: int, unit: str = "images", start_line: str | None = None) -> "Task":
        return Task(self, label, total, unit, start_line)


class Task:
    """One counted job (``update(done)`` with the running count, then ``close()``)."""

    def __init__(self, reporter: Reporter, label: str, total: int, unit: str, start_line: str | None):
        self.reporter, self.label, self.total, self.unit = reporter, label, max(0, int(total)), unit
        self.started = self.last = reporter.clock()
        self.done = 0
        self.closed = False
        if reporter.live:
            self._draw(force=True)
        else:
            reporter.write_line(start_line or f"{label}: {self.total} {unit}")

    def update(self, done: int) -> None:
        """Set the count done so far (absolute, not an increment)."""
        self.done = min(int(done), self.total) if self.total else int(done)
        now = self.reporter.clock()
        if self.reporter.live:
            self._draw()
        elif now - self.last >= self.reporter.plain_seconds and self.done < self.total:
            self.last = now
            self.reporter.write_line(f"  {self.label}: {self._counts()}, {fmt_duration(now - self.started)} "
                                     f"elapsed, ~{fmt_duration(self._eta(now))} left")

    def close(self) -> None:
        """Finish: the full bar stays on screen, or a closing plain line is written."""
        if self.closed:
            return
        self.closed = True
        elapsed = self.reporter.clock() - self.started
        if self.reporter.live:
            self._draw(force=True)
            self.reporter.end_draw()
        else:
            self.reporter.write_line(f"  {self.label}: done, {self.done}/{self.total} {self.unit} in {elapsed:.1f} s")

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- rendering ----------------------------------------------------------------
    def _eta(self, now: float) -> float:
        elapsed = now - self.started
        if self.done <= 0 or elapsed <= 0:
            return float("nan")
        return elapsed * (self.total - self.done) / self.done

    def _counts(self) -> str:
        pct = f" ({100 * self.done // self.total}%)" if self.total else ""
        return f"{self.done}/{self.total} {self.unit}{pct}"

    def bar_text(self, now: float) -> str:
        """``label  45%|#####     | 4500/10000 images [00:12<00:15]`` fitted to the width."""
        fraction = self.done / self.total if self.total else 1.0
        elapsed = now - self.started
        counts = f" {self.done}/{self.total} {self.unit} [{fmt_duration(elapsed)}<{fmt_duration(self._eta(now))}]"
        # the bar gives way to the label first (down to 10 cells), then the label is cut
        spare = self.reporter.width - len(self.label) - len(counts) - 8
        width = max(10, min(BAR_WIDTH, spare))
        filled = int(round(fraction * width))
        tail = f" {100 * fraction:3.0f}%|{'#' * filled}{' ' * (width - filled)}|{counts}"
        room = self.reporter.width - len(tail) - 1
        label = self.label if len(self.label) <= room else self.label[: max(0, room - 3)] + "..."
        return label + tail

    def _draw(self, force: bool = False) -> None:
        now = self.reporter.clock()
        if not force and now - self.last < REDRAW_SECONDS and self.done < self.total:
            return
        self.last = now
        assert self.reporter.draw is not None
        self.reporter.draw(self.bar_text(now))


def stderr_reporter(stream=None) -> Reporter:
    """A reporter for the command line: a bar on a terminal's stderr, plain lines otherwise."""
    import shutil
    import sys

    stream = stream or sys.stderr

    def write_line(message: str) -> None:
        stream.write(message + "\n")
        stream.flush()

    if plain_output_wanted(isatty=stream.isatty()):
        return Reporter(write_line)
    drawn = [0]

    def draw(text: str) -> None:
        stream.write("\r" + text + " " * max(0, drawn[0] - len(text)))
        stream.flush()
        drawn[0] = len(text)

    def end_draw() -> None:
        stream.write("\n")
        drawn[0] = 0

    return Reporter(write_line, draw=draw, end_draw=end_draw, width=shutil.get_terminal_size().columns - 1)


def with_finetune_progress(finetune: Callable[..., Any], reporter: Reporter, steps: int) -> Callable[..., Any]:
    """Wrap ``finetune(model, mask)`` so each call reports its step, duration and the ETA.

    A fine-tuning function that takes a ``progress`` keyword gets a
    ``progress(done, total)`` callback as well, drawn as a bar per step (count
    whatever it likes: batches or epochs).
    """
    import inspect

    try:
        parameters = inspect.signature(finetune).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_progress = "progress" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    state = {"step": 0, "started": reporter.clock()}

    def wrapped(model, mask):
        state["step"] += 1
        k = state["step"]
        reporter(f"fine-tuning step {k}/{steps} ...")
        began = reporter.clock()
        if takes_progress:
            result = finetune(model, mask, progress=counting(reporter, f"fine-tuning step {k}/{steps}",
                                                             unit="steps"))
        else:
            result = finetune(model, mask)
        now = reporter.clock()
        left = (now - state["started"]) / k * (steps - k)
        reporter(f"fine-tuned step {k}/{steps} in {now - began:.1f} s"
                 + (f"; ~{fmt_duration(left)} left for {steps - k} more" if k < steps else ""))
        return result

    return wrapped


def task(progress: Callable[[str], None] | None, label: str, total: int, *, unit: str = "images",
         start_line: str | None = None) -> Task:
    """A task on ``progress``: its own bars for a :class:`Reporter`, plain lines for a bare callable."""
    if isinstance(progress, Reporter):
        return progress.task(label, total, unit, start_line)
    write = progress or (lambda message: None)
    return Reporter(write).task(label, total, unit, start_line)


def counting(progress: Callable[[str], None] | None, label: str, *, unit: str = "images") -> Callable[[int, int], None]:
    """A ``callback(done, total)`` for code that reports counts (corruption generation):
    the task opens on the first call and closes when ``done`` reaches ``total``."""
    current: list[Task] = []

    def callback(done: int, total: int) -> None:
        if not current or current[-1].closed:
            current.append(task(progress, label, total, unit=unit))
        current[-1].update(done)
        if done >= total:
            current[-1].close()

    return callback


class TerminalLines:
    """pytest's terminal as a progress target, written between pytest's own output.

    Writes with output capturing suspended (as live logging does), after ending
    pytest's current progress line. :meth:`resume` (called by the plugin just before
    pytest reports the next result) writes that line's prefix again (the test file,
    or the verbose test id), so the next ``.``/``PASSED`` and the ``[ 42%]`` column
    continue as pytest would draw them, with no blank line.
    ``reporter`` and ``capture`` are pytest's terminalreporter and capturemanager.
    """

    def __init__(self, reporter, capture, *, prefix: str = "prunecheck: "):
        self.reporter = reporter
        self.capture = capture
        self.prefix = prefix
        self._drawn = 0  # width of the bar currently on screen, 0 when none
        self._pending = None  # pytest's line prefix to write again before its next result

    def _suspended(self):
        import contextlib

        return self.capture.global_and_fixture_disabled() if self.capture is not None else contextlib.nullcontext()

    def _leave_pytest_line(self) -> None:
        previous = self.reporter.currentfspath
        if isinstance(previous, (str, os.PathLike)) and self._pending is None:
            self._pending = previous
        self.reporter.ensure_newline()

    def resume(self) -> None:
        """Write pytest's interrupted line prefix again (if progress output interrupted it)."""
        previous, self._pending = self._pending, None
        if previous is None or self.reporter.currentfspath is not None or self._drawn:
            return
        with self._suspended():
            if isinstance(previous, str):
                self.reporter._tw.write(previous)
            else:
                try:
                    shown = os.path.relpath(previous, self.reporter.startpath)
                except ValueError:
                    shown = str(previous)
                self.reporter._tw.write(shown + " ")
            self.reporter.currentfspath = previous

    def line(self, message: str) -> None:
        with self._suspended():
            if self._drawn:  # a plain message while a bar is drawn: keep the bar's last state
                self.reporter._tw.line()
                self._drawn = 0
            self._leave_pytest_line()
            self.reporter._tw.line(self.prefix + message)

    def draw(self, text: str) -> None:
        with self._suspended():
            if not self._drawn:
                self._leave_pytest_line()
            text = self.prefix + text
            self.reporter._tw.write("\r" + text + " " * max(0, self._drawn - len(text)), flush=True)
            self._drawn = len(text)

    def end_draw(self) -> None:
        with self._suspended():
            self.reporter._tw.line()
            self._drawn = 0

    def width(self) -> int:
        return getattr(self.reporter._tw, "fullwidth", 100)

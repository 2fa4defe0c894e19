"""What the simulator scripts share: stdout lines, atomic writes, termination signals and
tqdm-like diffusion progress. Test and demo infrastructure only (see README.md).

Beside the scripts in this folder (run from here, their folder is on sys.path) and at
/workspace/simkit.py in the image (PYTHONPATH=/workspace)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

BAR_WIDTH = 10
BAR_CHARS = " 123456789#"


class ScriptCrash(Exception):
    """A crash of a real script, shown as its traceback: the script (and the function, when
    given), then the exception. Each script subclasses it to name itself in `script_path`."""

    script_path = "script.py"

    def __init__(
        self, message: str, exc_type: str = "ValueError", exit_code: int = 1, where: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exc_type = exc_type
        self.exit_code = exit_code
        self.where = where

    def render(self) -> str:
        lines = ["Traceback (most recent call last):", f'  File "{self.script_path}", in <module>']
        if self.where:
            lines.append(f'  File "{self.script_path}", in {self.where}')
        return "\n".join([*lines, f"{self.exc_type}: {self.message}"])


class Interrupted(BaseException):
    """Raised from the signal handler so that every ``finally`` cleans up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _SignalState:
    """The first SIGTERM/SIGINT received; later ones are ignored during cleanup."""

    received: int | None = None


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    """Turn the first termination signal into :class:`Interrupted`."""
    if _SignalState.received is not None:
        return
    _SignalState.received = signum
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """Stop promptly on SIGTERM (``docker stop``) and SIGINT (Ctrl-C)."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def emit(line: str) -> None:
    """Print one stdout line and flush it, so followers see it at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def format_interval(seconds: float) -> str:
    """Format seconds as tqdm does: ``MM:SS`` or ``H:MM:SS``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours:d}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def progress_bar(fraction: float) -> str:
    """Return tqdm's ascii bar of ``BAR_WIDTH`` characters."""
    symbols = len(BAR_CHARS) - 1
    full, partial = divmod(int(fraction * BAR_WIDTH * symbols), symbols)
    bar = BAR_CHARS[-1] * full
    if full < BAR_WIDTH:
        bar += BAR_CHARS[partial] + BAR_CHARS[0] * (BAR_WIDTH - full - 1)
    return bar


def progress_line(label: str, step: int, total: int, elapsed: float) -> str:
    """One tqdm-like progress line, e.g. ``label:  40%|####      | 14/35 [00:01<00:02, ...]``."""
    fraction = step / total
    if elapsed > 0 and step > 0:
        rate = step / elapsed
        remaining = format_interval((total - step) / rate)
        speed = f"{rate:5.2f}it/s" if rate >= 1 else f"{1 / rate:5.2f}s/it"
    else:
        remaining, speed = "?", "?it/s"
    return (
        f"{label}: {fraction * 100:3.0f}%|{progress_bar(fraction)}| "
        f"{step}/{total} [{format_interval(elapsed)}<{remaining}, {speed}]"
    )


def diffuse(label: str, num_steps: int, seconds: float) -> None:
    """Spread ``seconds`` evenly over ``num_steps`` steps, printing one line per step."""
    start = time.monotonic()
    for step in range(1, num_steps + 1):
        delay = start + seconds * step / num_steps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        emit(progress_line(label, step, num_steps, time.monotonic() - start))

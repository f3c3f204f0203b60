"""Profiling: from the slow span to the slow function and line.

A trace names the service and the operation that spent the time (week 10, section 3); it
cannot name the line, because nobody opened a span around it. A **sampling profiler** can:
many times a second it reads the call stack of every thread of a process and counts the
stacks. A function on top of many samples spends the time itself (**self time**); a function
anywhere in many stacks is on the way to it (**total time**). Drawn with one box per frame,
callers under callees and widths proportional to samples, the counts become a **flame graph**:
the wide boxes at the top are where the CPU went.

Two profilers, for two situations:

* **py-spy** (``record_pid``) attaches to a *running* process from outside, with no change to
  its code and no restart: the live service, under its real load. It reads the target's
  memory with ptrace (``process_vm_readv``), so the operating system must let it: macOS
  allows it only as root, and Linux refuses it without ``CAP_SYS_PTRACE`` when
  ``kernel.yama.ptrace_scope`` is 1 or more and the target is not py-spy's own child (the
  usual case in a notebook: the services are the kernel's children, not py-spy's), or in a
  container started without ``SYS_PTRACE`` on some seccomp profiles. :func:`ptrace_refusal`
  says which of those applies, in one sentence.
* **pyinstrument** (``profile_call``) runs *inside* the process, on the thread that calls it:
  the fallback where ptrace is refused, on an in-process path to the same code.

They differ in what they count. py-spy, by default, samples only threads running on a CPU:
a thread sleeping, waiting for a lock or for a socket is *idle* and left out, so a
``time.sleep`` in a handler does not show at all; ``idle=True`` (``--idle``) counts those
samples too, and then every idle worker of a thread pool shows with them. pyinstrument
measures wall-clock time on its own thread, so a sleep there shows as time spent in ``sleep``.

Both are *statistical*: at the default 100 samples a second, 2 s give about 200 samples per
busy thread, and a function seen in a share ``p`` of them is known to about
``sqrt(p * (1 - p) / n)`` (±3 points at 50 %). More samples cost more: py-spy pauses the
target to read each stack (``nonblocking=True`` avoids that, at the price of a torn stack now
and then). When not to profile: to find *which service* is slow, read traces first; a
profile of the wrong process is precise about the wrong thing.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

DEFAULT_RATE_HZ = 100
PTRACE_SCOPE = Path("/proc/sys/kernel/yama/ptrace_scope")
CAP_SYS_PTRACE = 19  # bit number in /proc/<pid>/status CapEff
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_REFUSED = ("permission denied", "operation not permitted", "os error 1)", "os error 13)")


class ProfilerUnavailable(RuntimeError):
    """py-spy cannot read the target process; ``reason`` says why in one sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    """One frame of a sampled stack: a function, its file and the line that was executing."""

    function: str
    file: str = ""
    line: int | None = None

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def label(self) -> str:
        return f"{self.function} ({self.location})" if self.file else self.function


Stack = tuple[Frame, ...]  # outermost frame first, the frame on the CPU last


@dataclass(frozen=True)
class FunctionStats:
    """One function's share of a profile.

    ``line`` is, for py-spy, the line of it seen most often on top of a stack (the line that
    was running); pyinstrument knows only the line where the function starts.
    """

    function: str
    file: str
    line: int | None
    self_share: float
    total_share: float

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True)
class Profile:
    """Weighted stacks (samples for py-spy, seconds for pyinstrument) and where they came from."""

    stacks: Mapping[Stack, float]
    profiler: str
    duration_s: float
    note: str = ""
    weight_unit: str = "samples"
    svg_title: str = field(default="", compare=False)

    @property
    def total(self) -> float:
        return sum(self.stacks.values())

    def functions(self) -> list[FunctionStats]:
        """Every function, most self time first (ties: most total time)."""
        total = self.total or 1.0
        own: dict[tuple[str, str], float] = defaultdict(float)
        inside: dict[tuple[str, str], float] = defaultdict(float)
        lines: dict[tuple[str, str], dict[int | None, float]] = defaultdict(lambda: defaultdict(float))
        for stack, weight in self.stacks.items():
            if not stack:
                continue
            top = stack[-1]
            own[(top.function, top.file)] += weight
            lines[(top.function, top.file)][top.line] += weight
            for key in {(f.function, f.file) for f in stack}:  # a recursive function counts once
                inside[key] += weight
                lines[key].setdefault(next(f.line for f in stack if (f.function, f.file) == key), 0.0)
        stats = [
            FunctionStats(
                function,
                file,
                max(lines[(function, file)].items(), key=lambda item: item[1])[0],
                own.get((function, file), 0.0) / total,
                weight / total,
            )
            for (function, file), weight in inside.items()
        ]
        return sorted(stats, key=lambda s: (-s.self_share, -s.total_share, s.function))

    def hottest(self) -> FunctionStats:
        """The function with the most self time."""
        functions = self.functions()
        if not functions:
            raise ValueError(f"the {self.profiler} profile holds no samples")
        return functions[0]

    def table(self, limit: int = 8) -> str:
        """The top functions by self time, as a fixed-width text table."""
        rows = [f"{'self %':>6} {'total %':>7}  {'function':32} file:line"]
        for s in self.functions()[:limit]:
            rows.append(f"{s.self_share:6.1%} {s.total_share:7.1%}  {s.function[:32]:32} {s.location}")
        return "\n".join(rows)


# ----------------------------------------------------------------------------- py-spy


def parse_frame(text: str) -> Frame:
    """``"burn_cpu (bookstore/platform/faults.py:78)"`` -> Frame; a bare name keeps no file."""
    match = _FRAME.match(text.strip())
    if match is None:
        return Frame(text.strip())
    line = match["line"]
    return Frame(match["function"], match["file"], int(line) if line else None)


def parse_collapsed(text: str) -> dict[Stack, float]:
    """Parse collapsed stacks (py-spy ``--format raw``, flamegraph.pl's input): ``a;b;c 42``."""
    stacks: dict[Stack, float] = defaultdict(float)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        try:
            weight = float(count)
        except ValueError:
            raise ValueError(f"line {number} does not end with a sample count: {raw!r}") from None
        stacks[tuple(parse_frame(f) for f in frames.split(";") if f)] += weight
    return dict(stacks)


def to_collapsed(profile: Profile) -> str:
    """The profile as collapsed stacks, whole numbers as counts (pyinstrument's in microseconds)."""
    scale = 1e6 if profile.weight_unit == "s" else 1.0
    return "".join(
        f"{';'.join(frame.label() for frame in stack)} {round(weight * scale)}\n"
        for stack, weight in profile.stacks.items()
        if stack and round(weight * scale) > 0
    )


def py_spy_path() -> str | None:
    """The py-spy next to this interpreter (the venv's), else one on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _has_cap_sys_ptrace(status: str) -> bool:
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_PTRACE & 1)
    return False


def ptrace_refusal(
    *,
    platform: str = sys.platform,
    euid: int | None = None,
    ptrace_scope: int | None = None,
    cap_sys_ptrace: bool | None = None,
    py_spy: str | None = "",
) -> str | None:
    """Why this process cannot let py-spy read another process of this user, or None if it can.

    Every argument defaults to what this machine says; tests pass their own. The answer is
    a prediction from the rules above: :func:`record_pid` still reports a refusal it meets.
    """
    if py_spy == "":
        py_spy = py_spy_path()
    if py_spy is None:
        return (
            "py-spy is not installed here (pip install py-spy), so no process can be profiled from outside."
        )
    if platform == "darwin":
        root = (os.geteuid() if euid is None else euid) == 0
        return None if root else "macOS lets py-spy read another process only as root (run it with sudo)."
    if not platform.startswith("linux"):
        return None
    if ptrace_scope is None:
        try:
            ptrace_scope = int(PTRACE_SCOPE.read_text())
        except (OSError, ValueError):
            ptrace_scope = 0  # no Yama module: classic ptrace rules, same user may attach
    if cap_sys_ptrace is None:
        cap_sys_ptrace = _has_cap_sys_ptrace(Path("/proc/self/status").read_text())
    if ptrace_scope >= 3:
        return "kernel.yama.ptrace_scope is 3 here, which forbids ptrace for everyone until a reboot."
    if ptrace_scope >= 1 and not cap_sys_ptrace:
        return (
            f"kernel.yama.ptrace_scope is {ptrace_scope} and this process lacks CAP_SYS_PTRACE, so py-spy "
            "may not read the services (set it to 0, run as root, or start the container with "
            "--cap-add SYS_PTRACE)."
        )
    return None


def record_pid(
    pid: int,
    duration_s: float = 2.0,
    *,
    rate_hz: int = DEFAULT_RATE_HZ,
    idle: bool = False,
    nonblocking: bool = False,
    py_spy: str | None = None,
) -> Profile:
    """Record process ``pid`` with py-spy for ``duration_s`` seconds and parse the stacks.

    Raises :class:`ProfilerUnavailable` with the cause when ptrace is refused or py-spy is
    missing; any other failure of py-spy raises RuntimeError with its message.
    """
    program = py_spy or py_spy_path()
    if program is None:
        raise ProfilerUnavailable(ptrace_refusal(py_spy=None) or "py-spy is not installed")
    seconds = max(1, round(duration_s))  # py-spy takes whole seconds
    with tempfile.TemporaryDirectory(prefix="py-spy-") as folder:
        output = Path(folder) / "stacks.txt"
        command = [program, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate_hz)]
        command += ["--format", "raw", "--output", str(output)]
        command += ["--idle"] * idle + ["--nonblocking"] * nonblocking
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 20, check=False)
        except FileNotFoundError:
            raise ProfilerUnavailable(ptrace_refusal(py_spy=None) or f"{program} not found") from None
        if done.returncode != 0 or not output.exists():
            message = (done.stderr or done.stdout).strip()
            if any(marker in message.lower() for marker in _REFUSED):
                raise ProfilerUnavailable(ptrace_refusal(py_spy=program) or f"py-spy was refused: {message}")
            raise RuntimeError(f"py-spy record --pid {pid} failed ({done.returncode}): {message[-500:]}")
        stacks = parse_collapsed(output.read_text())
    mode = "on-CPU and idle" if idle else "on-CPU"
    return Profile(stacks, "py-spy", float(seconds), note=f"pid {pid}, {rate_hz} Hz, {mode} samples")


class HasStatus(Protocol):
    def status(self) -> Iterable[Any]: ...


def service_pid(cluster: HasStatus, service: str, replica: int = 0) -> int:
    """The process id of one running replica of a cluster's service."""
    for status in cluster.status():
        if status.service == service and status.replica == replica and status.pid is not None:
            return int(status.pid)
    raise LookupError(f"no running replica {replica} of {service!r}")


# ----------------------------------------------------------------------------- pyinstrument


def _short_path(path: str) -> str:
    """``.../site-packages/grpc/_server.py`` -> ``grpc/_server.py``, as py-spy shortens its paths."""
    roots = [str(Path(__file__).resolve().parents[2]), *sys.path]
    for root in sorted((r for r in roots if r), key=len, reverse=True):
        if path.startswith(root.rstrip(os.sep) + os.sep):
            return path[len(root.rstrip(os.sep)) + 1 :]
    return path


def _pyinstrument_stacks(root: Any) -> dict[Stack, float]:
    """Flatten pyinstrument's frame tree; a built-in's time counts as its caller's own."""
    stacks: dict[Stack, float] = defaultdict(float)

    def visit(frame: Any, above: Stack) -> None:
        stack = (*above, Frame(frame.function, _short_path(frame.file_path or ""), frame.line_no))
        own = 0.0
        for child in frame.children:
            if child.is_synthetic or child.file_path == "<built-in>":
                own += child.time
            else:
                visit(child, stack)
        if own:
            stacks[stack] += own

    visit(root, ())
    return dict(stacks)


def profile_call(
    work: Callable[[], object], *, duration_s: float = 1.0, interval_s: float = 0.001
) -> Profile:
    """Call ``work`` again and again for ``duration_s`` under pyinstrument, in this thread.

    Wall-clock time: what ``work`` waits for (a sleep, a lock, a socket) counts, as it does
    for a caller waiting on it. Only this thread is seen, not threads ``work`` starts.
    """
    from pyinstrument import Profiler  # imported here: only the in-process path needs it

    profiler = Profiler(interval=interval_s)
    started = time.perf_counter()
    profiler.start()
    try:
        while time.perf_counter() - started < duration_s:
            work()
    finally:
        session = profiler.stop()
    root = session.root_frame()
    stacks = _pyinstrument_stacks(root) if root is not None else {}
    return Profile(stacks, "pyinstrument", session.duration, note="this thread, wall-clock", weight_unit="s")


# ----------------------------------------------------------------------------- flame graph


def flame_graph_svg(profile: Profile, *, width: int = 960, row_px: int = 17, min_share: float = 0.003) -> str:
    """An SVG flame graph: one box per frame, callers below, width proportional to weight.

    Boxes narrower than ``min_share`` of the whole are left out. Hover a box for its
    function, location and share (an SVG ``<title>``).
    """
    tree: dict[Stack, float] = defaultdict(float)
    for stack, weight in profile.stacks.items():
        for depth in range(1, len(stack) + 1):
            tree[stack[:depth]] += weight
    total = profile.total or 1.0
    depth = max((len(s) for s in tree), default=0)
    height = (depth + 2) * row_px
    boxes: list[str] = []

    def draw(prefix: Stack, left: float) -> None:
        children = sorted(
            (s for s in tree if len(s) == len(prefix) + 1 and s[:-1] == prefix), key=lambda s: s[-1].label()
        )
        for stack in children:
            share = tree[stack] / total
            if share >= min_share:
                x, w, y = left * width, share * width, height - (len(stack) + 1) * row_px
                frame = stack[-1]
                hue = 20 + zlib.crc32(frame.file.encode()) % 40
                text = html.escape(frame.function[: max(0, int(w / 7))])
                boxes.append(
                    f"<g><title>{html.escape(frame.label())}: {share:.1%}</title>"
                    f'<rect x="{x:.1f}" y="{y}" width="{max(w - 0.5, 0.5):.1f}" height="{row_px - 1}" '
                    f'fill="hsl({hue},85%,{55 + len(stack) % 3 * 5}%)"/>'
                    f'<text x="{x + 3:.1f}" y="{y + row_px - 5}" font-size="11">{text}</text></g>'
                )
                draw(stack, left)
            left += share

    draw((), 0.0)
    title = html.escape(profile.svg_title or f"{profile.profiler}: {profile.note}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace">'
        f'<text x="4" y="13" font-size="12">{title}</text>{"".join(boxes)}</svg>'
    )

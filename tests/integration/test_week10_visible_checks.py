"""Week 10: a submission that passes every visible check earns at least 90% of the points.

Each planted submission is the solution with one mistake a learner could plausibly make,
graded by the real grader in a fresh kernel. Either a visible check trips (a check cell
fails, so the learner sees FAIL before handing in), or the hidden checks still give at
least 90%. A mistake that slipped past the visible checks and cost more would fail here:
that is the proof issue 12 asks for, per mistake.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from bookstore.grading.batch import grade_batch

REPO = Path(__file__).resolve().parents[2]
SOLUTION = REPO / "solutions" / "week10_observability.ipynb"

# name -> (text in the solution, its replacement)
MISTAKES: dict[str, tuple[str, str]] = {
    "q1 sampled only when flags are 01": ("bool(int(flags, 16) & 0x01)", 'flags == "01"'),
    "q1 version ff accepted": ('if version == "ff" or trace_id', "if trace_id"),
    "q1 an all-zero parent-id accepted": (' or parent_id == "0" * 16:', ":"),
    "q1 no length check": ("!= [2, 32, 16, 2]:", "== []:"),
    "q1 int() as the hex validator": (
        'if not all(set(field) <= set("0123456789abcdef") for field in fields):',
        "if any(field != field.lower() or not _parses(field) for field in fields):",
    ),
    "q2 the last bucket reaching the rank, not the first": ("if count >= rank:", "if count > rank:"),
    "q2 +Inf answered as infinity": ("return lower  # beyond the last finite bound", "return le  #"),
    "q2 no NaN without observations": ("if total <= 0:\n        return math.nan", "if False:\n        pass"),
    "q3 children not clipped to their parent": (
        'lo, hi = max(child["start_ms"], reached), min(child["end_ms"], end)',
        'lo, hi = max(child["start_ms"], reached), child["end_ms"]',
    ),
    "q3 a child wholly outside its parent subtracted": ("if hi > lo:  # only", "if True:  # only"),
    "q3 overlapping children counted twice": ("reached = hi\n", "reached = start\n"),
    "q4 user id as a metric label": (
        'return ("status", "payment_method")',
        'return ("status", "payment_method", "user_id")',
    ),
    "q4 no status label": ('return ("status", "payment_method")', 'return ("payment_method",)'),
    "q4 statuses folded into ok and error": (
        "latency.labels(*(order[name] for name in checkout_labels())).observe(seconds)",
        'latency.labels("ok" if order["status"] == "APPROVED" else "error", order["payment_method"])'
        ".observe(seconds)",
    ),
    "q4 observed twice": (
        "latency.labels(*(order[name] for name in checkout_labels())).observe(seconds)",
        "for _ in range(2):\n"
        "        latency.labels(*(order[name] for name in checkout_labels())).observe(seconds)",
    ),
    "q4 order id in the span name": (
        'tracer.start_as_current_span("checkout")',
        "tracer.start_as_current_span(f\"checkout {order['order_id']}\")",
    ),
    "q4 no order id attribute": ('        span.set_attribute("order.id", order["order_id"])\n', ""),
    "q4 no user id attribute": ('        span.set_attribute("user.id", order["user_id"])\n', ""),
    "q5 the outermost frame, not the innermost": ('stack.split(";")[-1]', 'stack.split(";")[0]'),
    "q5 one stack's count, not the sum": (
        "self_samples.get(function, 0) + int(count)",
        "max(self_samples.get(function, 0), int(count))",
    ),
    "q5 total samples, not self": (
        '        innermost = stack.split(";")[-1]  # the frame on the CPU: the last one\n'
        '        function = innermost.rsplit(" (", 1)[0]  # "name (file:line)" -> name\n'
        "        self_samples[function] = self_samples.get(function, 0) + int(count)\n",
        '        for frame in set(stack.split(";")):\n'
        '            function = frame.rsplit(" (", 1)[0]\n'
        "            self_samples[function] = self_samples.get(function, 0) + int(count)\n",
    ),
    "q4 order id written with a prefix": (
        'span.set_attribute("order.id", order["order_id"])',
        'span.set_attribute("order", f"order {order[\'order_id\']}")',
    ),
}

# Only int() mistakes need a helper the solution does not have.
PARSES_HELPER = """
def _parses(field):
    try:
        int(field, 16)
        return True
    except ValueError:
        return False
"""


def planted(name: str, target: Path) -> Path:
    """The solution with one mistake planted; fails loudly if the solution text moved."""
    old, new = MISTAKES[name]
    notebook = nbformat.read(SOLUTION, as_version=4)
    hits = [cell for cell in notebook.cells if cell.cell_type == "code" and old in cell.source]
    assert len(hits) == 1 and hits[0].source.count(old) == 1, f"{name}: {old!r} is not once in the solution"
    hits[0].source = hits[0].source.replace(old, new)
    if "_parses(" in new:
        hits[0].source = PARSES_HELPER.lstrip() + "\n" + hits[0].source
    nbformat.write(notebook, target)
    return target


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bool, float, float]]:
    """name -> (passed every visible check, points earned, maximum), one batch for all."""
    folder = tmp_path_factory.mktemp("week10_planted")
    paths = {name: planted(name, folder / f"planted_{i:02d}.ipynb") for i, name in enumerate(MISTAKES)}
    batch = grade_batch(
        list(paths.values()), week=10, out_dir=folder / "grades", progress=False, echo=lambda _: None
    )
    by_path = {r.path.resolve(): r for r in batch.results}
    out = {}
    for name, path in paths.items():
        result = by_path[path.resolve()]
        earned, maximum = result.total(batch.specs)
        out[name] = (not result.cell_errors, earned, maximum)
    return out


@pytest.mark.parametrize("name", list(MISTAKES))
def test_a_planted_mistake_trips_a_visible_check_or_still_earns_90_percent(
    name: str, graded: dict[str, tuple[bool, float, float]]
) -> None:
    visible_pass, earned, maximum = graded[name]
    assert earned < maximum, f"{name}: the hidden checks gave full marks, so this plants no mistake"
    assert not visible_pass or earned >= 0.9 * maximum, (
        f"{name}: every visible check passed, yet it earned {earned}/{maximum}"
    )

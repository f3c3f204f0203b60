"""The learner acts: predictions, knobs, side-by-side verdicts and quick questions.

People learn distributed systems by predicting, watching the prediction meet a measurement,
and changing a setting until the difference makes sense. This module gives every notebook the
same four pieces for that loop:

- ``predict_number`` / ``predict_choice``: the learner records a prediction *before* running
  the experiment, in a slider or a dropdown. Its ``value`` is read when the experiment runs,
  so a learner moves it and then runs the next cell. Unattended runs (nbval, ``bookstore
  course run``) take the default.
- ``knob``: a real setting (replicas, a deadline, a breaker threshold) as a widget whose
  default runs unattended; ``experiment`` re-runs a function each time a knob is released,
  which is what makes sweeping a range cheap (``ipywidgets.interact``).
- ``verdict`` / ``show_verdict``: prediction and measurement side by side, with whether the
  prediction held and the explanation of why. Given to ``experiment(..., verdict=...)``, the
  verdict renders under every run's result, so it compares the prediction with the run the
  learner is looking at, not only with the default one.
- ``quick_question``: a multiple-choice or numeric question with feedback at once; nothing is
  graded or stored. Graded questions live in ``exercises/``.

Outside a Jupyter kernel (a plain script, a test) nothing is displayed and every widget keeps
its default, so notebook code stays runnable anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import ipywidgets as widgets

T = TypeVar("T")

_LABEL_STYLE = {"description_width": "initial"}
_LAYOUT = widgets.Layout(width="640px")


def _in_kernel() -> bool:
    from IPython import get_ipython

    return get_ipython() is not None


def _display(*objects: Any) -> None:
    """Display in a kernel; do nothing in plain Python (no frontend to show widgets)."""
    from IPython.display import display

    if _in_kernel():
        display(*objects)


@dataclass
class Prediction(Generic[T]):
    """A prediction the learner records in a widget; ``value`` is what it holds right now."""

    question: str
    default: T
    control: widgets.ValueWidget

    @property
    def value(self) -> T:
        return self.control.value  # type: ignore[no-any-return]

    def show(self) -> Prediction[T]:
        _display(widgets.VBox([widgets.HTML(f"<b>Predict:</b> {self.question}"), self.control]))
        return self


def predict_number(
    question: str,
    default: float,
    *,
    low: float,
    high: float,
    step: float | None = None,
    unit: str = "",
) -> Prediction[float]:
    """A numeric prediction on a slider from ``low`` to ``high`` (integers when all are integers)."""
    if not low <= default <= high:
        raise ValueError(f"the default {default} lies outside [{low}, {high}]")
    integral = all(float(x).is_integer() for x in (low, high, default, step or 1))
    slider: widgets.ValueWidget
    if integral:
        slider = widgets.IntSlider(
            value=int(default),
            min=int(low),
            max=int(high),
            step=int(step or 1),
            description=f"my prediction{f' ({unit})' if unit else ''}",
            style=_LABEL_STYLE,
            layout=_LAYOUT,
        )
    else:
        slider = widgets.FloatSlider(
            value=default,
            min=low,
            max=high,
            step=step or (high - low) / 100,
            description=f"my prediction{f' ({unit})' if unit else ''}",
            style=_LABEL_STYLE,
            layout=_LAYOUT,
        )
    return Prediction(question, default, slider).show()


def predict_choice(question: str, options: Sequence[str], default: str) -> Prediction[str]:
    """A prediction among named outcomes."""
    if default not in options:
        raise ValueError(f"the default {default!r} is not one of {list(options)}")
    picker = widgets.Dropdown(
        options=list(options),
        value=default,
        description="my prediction",
        style=_LABEL_STYLE,
        layout=_LAYOUT,
    )
    return Prediction(question, default, picker).show()


def knob(
    description: str, default: Any, options: Sequence[Any] | tuple[float, float, float]
) -> widgets.ValueWidget:
    """A setting to turn: a dropdown over ``options``, or a slider for ``(low, high, step)`` numbers.

    Sliders report only when released (``continuous_update=False``): each change re-runs a real
    experiment, which takes seconds, not milliseconds.
    """
    common: dict[str, Any] = {"description": description, "style": _LABEL_STYLE, "layout": _LAYOUT}
    if isinstance(options, tuple) and len(options) == 3 and all(isinstance(x, (int, float)) for x in options):
        low, high, step = options
        if all(float(x).is_integer() for x in (low, high, step, default)):
            return widgets.IntSlider(
                value=int(default),
                min=int(low),
                max=int(high),
                step=int(step),
                continuous_update=False,
                **common,
            )
        return widgets.FloatSlider(
            value=float(default), min=low, max=high, step=step, continuous_update=False, **common
        )
    return widgets.Dropdown(options=list(options), value=default, **common)


def experiment(
    run: Callable[..., T],
    *,
    verdict: Callable[[T], object] | None = None,
    **knobs: widgets.ValueWidget,
) -> T:
    """Run ``run(**defaults)`` now, and again whenever a knob changes; return the first result.

    In a kernel the knobs appear above an output area that each run replaces. The first run
    raises like any cell (so an unattended run fails loudly); a later run started by a knob
    shows its error in the output area instead, in one paragraph (``rerun_failure``), since no
    cell is running to raise it.

    ``verdict``, if given, is called with each run's result and renders below it, in the same
    output area: a verdict in a cell of its own would go on comparing the prediction with the
    default run after the learner has moved a knob. It may print (``show_verdict`` does) or
    return what to show: a string is printed, any other object but ``None`` displayed.
    """

    def run_and_judge(**settings: Any) -> T:
        result = run(**settings)
        if verdict is not None:
            _show_result(verdict(result))
        return result

    defaults = {name: control.value for name, control in knobs.items()}
    if not _in_kernel():
        return run_and_judge(**defaults)
    from IPython.display import clear_output

    out = widgets.Output()
    _display(widgets.VBox([*knobs.values(), out]))

    def rerun(_: Any) -> None:
        with out:
            clear_output(wait=True)
            try:
                run_and_judge(**{name: control.value for name, control in knobs.items()})
            except Exception as error:
                print(rerun_failure(error))

    for control in knobs.values():
        control.observe(rerun, names="value")
    with out:
        return run_and_judge(**defaults)


def _show_result(shown: object) -> None:
    if shown is None:
        return
    if isinstance(shown, str) or not _in_kernel():  # without a frontend, its text is all there is
        print(shown)
    else:
        _display(shown)


def rerun_failure(error: BaseException) -> str:
    """What a knob's failed re-run says: the error in one line and the usual cause.

    The commonest cause by far: Run All reached the notebook's last cells, which stop its
    services, and a knob was turned afterwards. A traceback through gRPC's internals says
    nothing of that; this says it.
    """
    from bookstore.platform.learner_errors import explain

    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    said = explain(error) or f"{type(error).__name__}: {first_line}"
    return (
        f"This run failed: {said}\n"
        "If the notebook's last cells have already stopped its services (Run All does that), "
        "re-run the notebook up to this cell (Run > Run All Above Selected Cell, then this cell) "
        "and turn the knob again."
    )


@dataclass(frozen=True)
class Verdict:
    """A prediction beside a measurement: did it hold, and by how much did it miss."""

    predicted: Any
    measured: Any
    held: bool
    miss: str


def verdict(predicted: Any, measured: Any, *, tolerance: float = 0.0, relative: bool = False) -> Verdict:
    """Compare; numbers hold within ``tolerance`` (a fraction of ``measured`` when ``relative``)."""
    if isinstance(predicted, (int, float)) and isinstance(measured, (int, float)):
        allowed = abs(measured) * tolerance if relative else tolerance
        off = float(predicted) - float(measured)
        held = math.isclose(predicted, measured) or abs(off) <= allowed
        miss = (
            "spot on"
            if math.isclose(predicted, measured)
            else f"{'over' if off > 0 else 'under'} by {float(f'{abs(off):.3g}'):g}"
        )
        return Verdict(predicted, measured, held, miss)
    held = predicted == measured
    return Verdict(predicted, measured, held, "as predicted" if held else "not what was predicted")


def show_verdict(
    prediction: Prediction[Any] | Any,
    measured: Any,
    explain: str,
    *,
    tolerance: float = 0.0,
    relative: bool = False,
    unit: str = "",
) -> None:
    """Print prediction and measurement side by side, whether it held, and the explanation.

    Returns nothing, so a cell that ends with it shows the printed lines only; ``verdict``
    computes the same comparison as a value.
    """
    predicted = prediction.value if isinstance(prediction, Prediction) else prediction
    result = verdict(predicted, measured, tolerance=tolerance, relative=relative)
    suffix = f" {unit}" if unit else ""
    mark = "held" if result.held else "missed"
    print(f"you predicted: {_shown(predicted)}{suffix}")
    print(f"measured:      {_shown(measured)}{suffix}")
    print(f"prediction {mark} ({result.miss})")
    print(f"why: {explain}")


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def answer_feedback(chosen: Any, answer: Any, *, why: str, tolerance: float = 0.0) -> tuple[bool, str]:
    """The feedback a quick question gives for ``chosen``: (correct, text)."""
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        try:
            correct = abs(float(chosen) - float(answer)) <= tolerance
        except (TypeError, ValueError):
            return False, f"{chosen!r} is not a number: answer with a number."
    else:
        correct = chosen == answer
    return correct, ("Correct. " if correct else "Not quite. ") + why


def quick_question(
    question: str,
    answer: Any,
    why: str,
    *,
    options: Sequence[str] | None = None,
    tolerance: float = 0.0,
) -> None:
    """Show a question with feedback at once: multiple choice when ``options`` are given, else numeric."""
    _display(question_panel(question, answer, why, options=options, tolerance=tolerance))


def question_panel(
    question: str,
    answer: Any,
    why: str,
    *,
    options: Sequence[str] | None = None,
    tolerance: float = 0.0,
) -> widgets.VBox:
    """The widgets of a quick question: text, choices or a number field, a Check button, feedback."""
    if options is not None and answer not in options:
        raise ValueError(f"the answer {answer!r} is not one of the options")
    field: widgets.ValueWidget = (
        widgets.RadioButtons(options=list(options), value=None, layout=_LAYOUT)
        if options is not None
        else widgets.FloatText(value=None, description="answer", style=_LABEL_STYLE)
    )
    button = widgets.Button(description="Check", button_style="info")
    feedback = widgets.HTML()

    def check(_: Any) -> None:
        if field.value is None:
            feedback.value = "Pick an answer first."
            return
        correct, text = answer_feedback(field.value, answer, why=why, tolerance=tolerance)
        colour = "green" if correct else "#b35900"
        feedback.value = f"<span style='color:{colour}'>{text}</span>"

    button.on_click(check)
    return widgets.VBox([widgets.HTML(f"<b>Quick question:</b> {question}"), field, button, feedback])

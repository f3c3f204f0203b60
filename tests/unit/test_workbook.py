"""The workbook pieces a notebook hands the learner: predictions, knobs, verdicts, quick questions."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from bookstore.workbook import (
    answer_feedback,
    experiment,
    knob,
    predict_choice,
    predict_number,
    question_panel,
    quick_question,
    rerun_failure,
    show_verdict,
    verdict,
)


def test_a_numeric_prediction_holds_within_its_tolerance_and_says_by_how_much_it_missed() -> None:
    assert verdict(100, 104, tolerance=5).held
    missed = verdict(100, 140, tolerance=5)
    assert not missed.held and missed.miss == "under by 40"
    assert verdict(0.5, 0.4, tolerance=0.3, relative=True).held  # 0.1 off, 0.12 allowed
    assert not verdict(0.5, 0.3, tolerance=0.3, relative=True).held


def test_a_miss_is_said_in_three_significant_digits_not_in_float_noise() -> None:
    assert verdict(0.4, 1.269582).miss == "under by 0.87"
    assert verdict(1000, 2234.5).miss == "under by 1230"
    assert verdict(3, 1).miss == "over by 2"


def test_a_choice_prediction_holds_only_when_equal() -> None:
    assert verdict("OPEN", "OPEN").held
    assert not verdict("OPEN", "CLOSED").held


def test_show_verdict_prints_both_sides_and_the_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    guess = predict_number("How many?", 10, low=0, high=20)
    guess.control.value = 12
    show_verdict(guess, 15, "because three more arrived", tolerance=1, unit="calls")
    printed = capsys.readouterr().out
    assert "you predicted: 12 calls" in printed and "measured:      15 calls" in printed
    assert "missed (under by 3)" in printed and "because three more arrived" in printed


def test_predictions_reject_a_default_they_cannot_show() -> None:
    with pytest.raises(ValueError, match="outside"):
        predict_number("?", 30, low=0, high=20)
    with pytest.raises(ValueError, match="not one of"):
        predict_choice("?", ["a", "b"], "c")


def test_predictions_read_the_widget_at_the_time_they_are_asked() -> None:
    guess = predict_choice("Which state?", ["CLOSED", "OPEN"], "CLOSED")
    assert guess.value == "CLOSED"
    guess.control.value = "OPEN"
    assert guess.value == "OPEN"
    assert isinstance(predict_number("?", 0.5, low=0, high=1).control, widgets.FloatSlider)
    assert isinstance(predict_number("?", 5, low=0, high=10).control, widgets.IntSlider)


def test_knobs_are_sliders_for_ranges_and_dropdowns_for_options() -> None:
    replicas = knob("replicas", 2, (1, 4, 1))
    assert isinstance(replicas, widgets.IntSlider) and replicas.value == 2
    assert not replicas.continuous_update  # a real experiment runs per change: only on release
    assert isinstance(knob("deadline (s)", 0.3, (0.1, 2.0, 0.1)), widgets.FloatSlider)
    policy = knob("policy", "round_robin", ["pick_first", "round_robin"])
    assert isinstance(policy, widgets.Dropdown) and policy.value == "round_robin"


def test_an_experiment_outside_a_kernel_runs_once_with_the_defaults() -> None:
    seen: list[dict[str, object]] = []

    def run(replicas: int, policy: str) -> int:
        seen.append({"replicas": replicas, "policy": policy})
        return replicas * 10

    result = experiment(run, replicas=knob("replicas", 3, (1, 4, 1)), policy=knob("p", "a", ["a", "b"]))
    assert result == 30 and seen == [{"replicas": 3, "policy": "a"}]


def test_an_experiment_that_fails_raises_so_an_unattended_run_stops() -> None:
    def run(n: int) -> None:
        raise RuntimeError(f"broke with {n}")

    with pytest.raises(RuntimeError, match="broke with 1"):
        experiment(run, n=knob("n", 1, (1, 3, 1)))


def test_a_verdict_given_to_an_experiment_judges_its_result_once_outside_a_kernel(
    capsys: pytest.CaptureFixture[str],
) -> None:
    judged: list[int] = []

    def judge(measured: int) -> str:
        judged.append(measured)
        return f"verdict on {measured}"

    assert experiment(lambda n: n * 2, verdict=judge, n=knob("n", 3, (1, 5, 1))) == 6
    assert judged == [6] and capsys.readouterr().out == "verdict on 6\n"


def test_in_a_kernel_the_verdict_renders_under_each_run_including_a_knobs_rerun(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Moving a knob re-runs the experiment and re-judges it: the verdict is never the stale one."""
    monkeypatch.setattr("bookstore.workbook._in_kernel", lambda: True)
    monkeypatch.setattr("bookstore.workbook._display", lambda *objects: None)
    guess = predict_number("How many?", 4, low=0, high=10)
    n = knob("n", 2, (1, 5, 1))

    def judge(measured: int) -> None:
        show_verdict(guess, measured, "twice n")

    assert experiment(lambda n: n * 2, verdict=judge, n=n) == 4
    assert "prediction held" in capsys.readouterr().out
    n.value = 5
    rerun = capsys.readouterr().out
    assert "measured:      10" in rerun and "prediction missed (under by 6)" in rerun


def test_a_verdict_that_fails_on_a_rerun_says_so_in_the_output_area(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("bookstore.workbook._in_kernel", lambda: True)
    monkeypatch.setattr("bookstore.workbook._display", lambda *objects: None)
    n = knob("n", 1, (1, 5, 1))

    def judge(measured: int) -> str:
        if measured > 1:
            raise ValueError(f"cannot judge {measured}")
        return "judged"

    experiment(lambda n: n, verdict=judge, n=n)
    n.value = 3
    printed = capsys.readouterr().out
    assert "judged" in printed and "This run failed: ValueError: cannot judge 3" in printed


def test_quick_question_feedback() -> None:
    assert answer_feedback("UNAVAILABLE", "UNAVAILABLE", why="the port is closed") == (
        True,
        "Correct. the port is closed",
    )
    correct, text = answer_feedback("DEADLINE_EXCEEDED", "UNAVAILABLE", why="the port is closed")
    assert not correct and text.startswith("Not quite.")
    assert answer_feedback(0.48, 0.5, why="", tolerance=0.05)[0]
    assert not answer_feedback("many", 0.5, why="")[0]


def test_a_quick_question_must_contain_its_answer() -> None:
    with pytest.raises(ValueError, match="not one of the options"):
        quick_question("?", "c", "because", options=["a", "b"])
    with pytest.raises(ValueError, match="not one of the options"):
        question_panel("?", "c", "because", options=["a", "b"])


def test_a_quick_question_checks_the_chosen_option_when_clicked() -> None:
    panel = question_panel("Which?", "b", "b is right", options=["a", "b"])
    _, field, button, feedback = panel.children
    button.click()
    assert "Pick an answer first" in feedback.value
    field.value = "a"
    button.click()
    assert "Not quite. b is right" in feedback.value
    field.value = "b"
    button.click()
    assert "Correct. b is right" in feedback.value


def test_a_failed_rerun_says_the_error_in_one_line_and_the_usual_cause() -> None:
    said = rerun_failure(RuntimeError("cannot scale: this cluster is stopped\n  with details below"))
    assert said.startswith("This run failed: RuntimeError: cannot scale: this cluster is stopped\n")
    assert "details below" not in said and "Run All Above Selected Cell" in said

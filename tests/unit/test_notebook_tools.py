"""``wait_for``: poll with a deadline, and say what did not happen."""

from __future__ import annotations

import pytest

from bookstore.notebook_tools import wait_for


def test_wait_for_returns_once_the_condition_holds() -> None:
    answers = iter([False, False, True])
    wait_for(lambda: next(answers), timeout_s=5, poll_s=0)


def test_wait_for_names_what_did_not_happen_when_time_runs_out() -> None:
    with pytest.raises(TimeoutError, match=r"the e-mail did not happen within 0\.05 s"):
        wait_for(lambda: False, timeout_s=0.05, what="the e-mail", poll_s=0.01)

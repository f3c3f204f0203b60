"""``wait_for``: poll with a deadline, and say what did not happen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bookstore.notebook_tools import dirty_cells, strip, wait_for


def test_wait_for_returns_once_the_condition_holds() -> None:
    answers = iter([False, False, True])
    wait_for(lambda: next(answers), timeout_s=5, poll_s=0)


def test_wait_for_names_what_did_not_happen_when_time_runs_out() -> None:
    with pytest.raises(TimeoutError, match=r"the e-mail did not happen within 0\.05 s"):
        wait_for(lambda: False, timeout_s=0.05, what="the e-mail", poll_s=0.01)


def test_strip_removes_outputs_counts_and_saved_widget_state(tmp_path: Path) -> None:
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# hi"]},
            {
                "cell_type": "code",
                "metadata": {"execution": {"iopub.status.busy": "x"}},
                "source": ["1"],
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1"]}],
                "execution_count": 3,
            },
        ],
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(notebook))
    assert dirty_cells(path) == [-1, 1]
    assert strip(path)
    assert dirty_cells(path) == []
    assert not strip(path)  # nothing left to strip

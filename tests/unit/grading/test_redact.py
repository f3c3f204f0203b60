"""Feedback text: the learner's own frames, gRPC errors as sentences, no line of hidden checks."""

from __future__ import annotations

from bookstore.grading.redact import REDACTED, Redactor, cut, grpc_sentence, learner_traceback

RPC_ERROR = (
    "<_InactiveRpcError of RPC that terminated with:\n"
    "\tstatus = StatusCode.NOT_FOUND\n"
    '\tdetails = "book 31337 not found"\n'
    '\tdebug_error_string = "UNKNOWN:Error received from peer ipv4:127.0.0.1:40123 '
    '{grpc_message:"book 31337 not found", grpc_status:5, created_time:"2026-12-02T15:00:00+00:00"}"\n'
    ">"
)

IPYTHON_TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mZeroDivisionError\x1b[0m                         Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[3], line 4\x1b[0m\n\x1b[1;32m      2\x1b[0m total \x1b[38;5;241m=\x1b[39m 0\n"
    "\x1b[0;32m----> 4\x1b[0m \x1b[43maverage\x1b[49m([])",
    "File \x1b[0;32m/opt/venv/lib/python3.11/site-packages/stats.py:42\x1b[0m, in \x1b[0;36mmean\x1b[0m\n"
    "     40 def mean(xs):\n---> 42     return sum(xs) / len(xs)",
    "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
]


def test_a_grpc_error_becomes_its_code_and_details() -> None:
    assert (
        grpc_sentence(f"RpcError: {RPC_ERROR}")
        == "RpcError: gRPC call failed: NOT_FOUND: book 31337 not found"
    )


def test_text_without_a_grpc_error_is_unchanged() -> None:
    assert grpc_sentence("ValueError: bad isbn") == "ValueError: bad isbn"


def test_a_cell_error_keeps_the_learners_frames_and_drops_library_frames() -> None:
    text = learner_traceback(IPYTHON_TRACEBACK, "ZeroDivisionError", "division by zero")
    assert text.startswith("Cell In[3], line 4")
    assert "----> 4 average([])" in text
    assert "site-packages" not in text and "Traceback" not in text and "\x1b" not in text
    assert text.splitlines()[-1] == "ZeroDivisionError: division by zero"


def test_a_long_traceback_is_cut_to_twenty_lines_and_two_thousand_characters() -> None:
    frame = "Cell In[1], line 1\n" + "\n".join(f"  line {i}" for i in range(100))
    text = learner_traceback([frame], "RecursionError", "maximum recursion depth exceeded")
    assert len(text.splitlines()) == 20 and text.splitlines()[-1].startswith("... (")
    assert len(cut("x" * 5000)) == 2000


def test_lines_of_the_hidden_checks_are_removed_wherever_they_appear() -> None:
    hidden = 'expected = "PLANTED answer"\nif got != expected:\n    x = 1\n'
    redact = Redactor(hidden)
    leaked = 'RuntimeError: stolen: expected = "PLANTED answer" and if got != expected:'
    assert redact(leaked) == f"RuntimeError: stolen: {REDACTED} and {REDACTED}"
    assert redact("x = 1 is my own line") == "x = 1 is my own line", "short lines are left alone"


def test_notebook_outputs_are_redacted_too() -> None:
    redact = Redactor("SECRET_EXPECTED_VALUE = 42\n")
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "outputs": [{"output_type": "stream", "text": ["SECRET_EXPECTED_VALUE = 42\n"]}],
            }
        ]
    }
    assert redact.notebook(notebook)["cells"][0]["outputs"][0]["text"] == [f"{REDACTED}\n"]

"""Fuzz the live gateway's OpenAPI document with every schemathesis check, on every operation.

The unit suite fuzzes the ASGI app with fakes; this one runs schemathesis' own command line,
``schemathesis run``, over HTTP against the gateway of a real cluster, so the services' own
validation is exercised too (an INVALID_ARGUMENT that escaped as INTERNAL would show up as a
502). It runs all four phases (the document's examples, coverage of each constraint's edges,
random fuzzing, stateful sequences following the document's links) and ``--checks all``:

* no 5xx; status codes, content types, headers and bodies as documented;
* every request the document allows is accepted (``positive_data_acceptance``) and every one it
  rules out is refused (``negative_data_rejection``);
* an undocumented method gets 405 with an honest ``Allow``; a missing token 401;
* what a POST created can be read back (``ensure_resource_availability``, ``use_after_free``).

No fault is injected, so any failure is a bug, with one exception the hooks file below
explains (``lists_a_book_twice``): a rule the document states in words because JSON Schema
cannot. ``MAX_EXAMPLES`` bounds the run to well under a minute per cluster on two cores;
raise it for a deeper search. On failure the assertion shows schemathesis' report, with a
``curl`` line and the seed that reproduce each finding.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bookstore.launcher.cluster import Cluster

MAX_EXAMPLES = 20
RUN_TIMEOUT_S = 600  # a hung run fails with its output instead of hanging the suite
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


@pytest.fixture(scope="module")
def bearer(cluster: Cluster) -> str:
    name = f"fuzz_{secrets.token_hex(4)}"
    with httpx.Client(base_url=cluster.gateway_url, timeout=10) as client:
        client.post("/auth/register", json={"username": name, "password": "fuzzing-password"})
        token = client.post("/auth/login", json={"username": name, "password": "fuzzing-password"})
    return f"Bearer {token.json()['access_token']}"


def test_every_check_passes_on_every_operation_of_the_live_gateway(
    cluster: Cluster, bearer: str, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{cluster.gateway_url}/openapi.json",
        "--checks=all",
        f"--max-examples={MAX_EXAMPLES}",
        "--workers=1",  # one request at a time: a fuzzer is not a load test
        "--request-timeout=30",
        "--no-color",
        f"--header=Authorization: {bearer}",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    # In tmp_path: schemathesis keeps a cache of past crashes in its working directory.
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )

    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "9 selected / 9 total" in report, report  # every operation of the document was tested

"""Small helpers every benchmark shares: percentiles, the machine's load, verdicts, a logged-in user."""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from collections.abc import Sequence

import httpx


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list: a value that was actually observed."""
    if not ordered:
        raise ValueError("no samples")
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    with contextlib.suppress(OSError, AttributeError):
        return os.getloadavg()[0]
    return None


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def bearer_headers(gateway_url: str, timeout_s: float = 10.0) -> dict[str, str]:
    """Register a fresh user and log in; the headers carry its JWT."""
    credentials = {"username": f"bench_{secrets.token_hex(4)}", "password": "benchmark password"}
    with httpx.Client(base_url=gateway_url, timeout=timeout_s) as client:
        client.post("/auth/register", json=credentials).raise_for_status()
        login = client.post("/auth/login", json=credentials)
        login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}

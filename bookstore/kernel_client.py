"""A Jupyter kernel client that cannot sleep through a reply: used by the course runner and the grader.

Both drive kernels with nbclient, whose asyncio client waits for a cell's reply with one
``poll`` as long as the cell's timeout. With IPC sockets (and with encrypted TCP) that poll
sometimes misses its wake-up: the reply has arrived, but the poll sees it only when its
timeout ends. Week 8's live breaker experiment then "took" the whole 300 s cell timeout under
``make course`` although the kernel answered after 5 s; in the grader, a missed wake-up would
interrupt a cell that had finished and cost the learner points.

``PatientChannel`` waits in slices of ``POLL_SLICE_S`` seconds instead, looking again after
each, so a missed wake-up costs at most one slice, while the wait as a whole still ends with
``Empty`` at its timeout. Select it with the kernel manager's ``client_class``
(``bookstore.kernel_client.PatientKernelClient``).
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type

POLL_SLICE_S = 1.0
CLIENT_CLASS = "bookstore.kernel_client.PatientKernelClient"


class PatientChannel(AsyncZMQSocketChannel):
    """A kernel channel whose wait for a message looks again every ``POLL_SLICE_S`` seconds.

    The wait still ends with ``Empty`` at ``timeout`` (``None`` waits for ever), so nbclient's
    cell timeout means what it says; only a missed wake-up is cut short.
    """

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await super().get_msg(timeout=min(POLL_SLICE_S, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class PatientKernelClient(AsyncKernelClient):
    """nbclient's kernel client, with ``PatientChannel`` for the replies and the outputs."""

    shell_channel_class = Type(PatientChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(PatientChannel)  # type: ignore[assignment]

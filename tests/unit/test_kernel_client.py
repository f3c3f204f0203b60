"""The kernel client of the course runner and the grader: it looks again every slice, times out on time."""

from __future__ import annotations

import asyncio
import time
from queue import Empty

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from bookstore import course, kernel_client


@pytest.fixture
def pair() -> tuple[zmq.asyncio.Socket, zmq.asyncio.Socket]:
    context = zmq.asyncio.Context()
    receiver, sender = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    receiver.bind("inproc://patient")
    sender.connect("inproc://patient")
    yield receiver, sender
    receiver.close(linger=0)
    sender.close(linger=0)
    context.term()


def test_a_wait_with_nothing_to_read_ends_with_empty_at_its_deadline_not_at_the_first_slice(
    pair: tuple[zmq.asyncio.Socket, zmq.asyncio.Socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_client, "POLL_SLICE_S", 0.05)
    channel = kernel_client.PatientChannel(pair[0], Session())

    began = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(channel.get_msg(timeout=0.3))
    assert time.monotonic() - began >= 0.3


def test_a_message_sent_after_several_slices_is_returned_whole(
    pair: tuple[zmq.asyncio.Socket, zmq.asyncio.Socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_client, "POLL_SLICE_S", 0.05)
    receiver, sender = pair
    session = Session()
    channel = kernel_client.PatientChannel(receiver, session)

    async def reply_later() -> dict[str, object]:
        async def send() -> None:
            await asyncio.sleep(0.3)
            session.send(sender, "execute_reply", {"status": "ok"})

        sending = asyncio.ensure_future(send())
        message = await channel.get_msg(timeout=None)
        await sending
        return message

    message = asyncio.run(reply_later())
    assert message["header"]["msg_type"] == "execute_reply"
    assert message["content"] == {"status": "ok"}


def test_the_runner_configures_nbclient_with_the_patient_client_over_ipc(tmp_path) -> None:
    config = course.ipc_kernel(tmp_path / "week8")

    manager = config["KernelManager"]
    assert manager["transport"] == "ipc"
    assert manager["client_class"] == "bookstore.kernel_client.PatientKernelClient"
    assert kernel_client.PatientKernelClient.shell_channel_class.klass is kernel_client.PatientChannel  # type: ignore[attr-defined]

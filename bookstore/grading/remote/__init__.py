"""A narrow channel between the trusted grader and the learner's kernel: remote objects by handle.

Hidden checks must decide pass or fail where learner code cannot reach: in the grader's own
process, outside the sandbox. Yet they test functions that live in the learner's kernel. This
module joins the two with the smallest thing that works: a socket carrying JSON lines, and
*proxies*. A check asks for ``ns["find_book_title"]`` and gets a :class:`Proxy`; calling it
sends ``{"op": "call", "h": 7, "a": [...]}`` to a small agent in the kernel, which calls the
real function and answers with JSON data (numbers, strings, lists, dicts, enum members by
name, protobuf messages as bytes, exceptions as class path and message) or with a handle to
an object that stays in the kernel. Objects of the grader passed as arguments (a stub, a
fake clock, ``waits.append``) go the other way as handles too: when learner code calls them,
the kernel sends the call back, the grader runs it and answers. Calls nest both ways on one
*chain* (the thread that started it on each side), so a saga step running in the kernel can
call the grader's warehouse, which raised the error the saga orchestrator, in the grader,
then sees as the very same object.

What makes it safe to trust the grader's verdicts:

* **Nothing is unpickled.** Values are JSON; a class is rebuilt from its dotted name only for
  the modules in :data:`REBUILDABLE` (enum members, frozen dataclasses, protobuf messages,
  exceptions), and only with its own constructor.
* **Learner code gets capabilities, not access.** From the kernel, a grader object can be
  called, have its public attributes read and its items used; never an attribute starting
  with ``_`` (no ``__globals__``, no frames), never set an attribute, and modules, classes,
  frames, code and the process's dangerous built-ins (``open``, ``exec``, ``os.system``) never
  cross at all. What a check passes to learner code is what the learner may use: a real
  sqlite3 connection lets learner code do what SQL does, so pass fakes where you can.
* **What comes back is only an observation.** Patching ``json.dumps`` in the kernel, printing,
  or replacing this agent changes what the kernel *says*, and a check believes nothing it
  cannot check: forging an answer means giving the right answer to an input only the check
  sent. Where a check can measure instead of ask (a server's own counters), it should.

Lists, tuples, dicts and sets cross by value (a copy); a list or dict passed as an argument is
copied back after the call, so a learner who changes the list they were given is seen. The
protocol is symmetric: this one package runs in the grader (``trusted=True``) and, loaded from
its files under a private name, in the kernel (:func:`serve_kernel`). It imports only the
standard library. Its modules, from the ground up: ``policy`` (what may cross), ``errors``,
``proxy``, ``codec`` (values on the wire), ``endpoint`` (requests and chains) and ``connect``.
"""

from .connect import accept_kernel, agent_cell_source, serve_kernel
from .endpoint import Endpoint
from .errors import Cancelled, ChannelClosed, ProtocolError, RemoteError
from .proxy import Proxy

__all__ = [
    "Cancelled",
    "ChannelClosed",
    "Endpoint",
    "ProtocolError",
    "Proxy",
    "RemoteError",
    "accept_kernel",
    "agent_cell_source",
    "serve_kernel",
]

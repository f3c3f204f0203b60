"""``python -m bookstore.platform.child MODULE``: run MODULE as ``__main__``, tied to its launcher.

``python -m bookstore.platform.child --exec PROGRAM [ARGS...]`` ties itself the same way, then
becomes PROGRAM (``exec``): the parent-death signal survives the ``exec``, so a program that
is not Python (Prometheus) dies with its launcher too.

The launcher starts every service through this shim instead of asking for
``PR_SET_PDEATHSIG`` between fork and exec (a ``preexec_fn``): Python code run in a forked
child of a multi-threaded gRPC process can crash in gRPC's fork handlers. Here the child,
already a fresh interpreter, asks the kernel itself, then checks that its launcher did not
die in the meantime.
"""

from __future__ import annotations

import os
import runpy
import sys

from bookstore.platform.processes import tie_to_parent

if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m bookstore.platform.child MODULE [ARGS...]")
    tie_to_parent()
    if sys.argv[1] == "--exec":
        if len(sys.argv) < 3:
            raise SystemExit("usage: python -m bookstore.platform.child --exec PROGRAM [ARGS...]")
        os.execvp(sys.argv[2], sys.argv[2:])
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)

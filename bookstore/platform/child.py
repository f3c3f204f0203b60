"""``python -m bookstore.platform.child MODULE``: run MODULE as ``__main__``, tied to its launcher.

The launcher starts every service through this shim instead of asking for
``PR_SET_PDEATHSIG`` between fork and exec (a ``preexec_fn``): Python code run in a forked
child of a multi-threaded gRPC process can crash in gRPC's fork handlers. Here the child,
already a fresh interpreter, asks the kernel itself, then checks that its launcher did not
die in the meantime.
"""

from __future__ import annotations

import runpy
import sys

from bookstore.platform.processes import tie_to_parent

if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m bookstore.platform.child MODULE [ARGS...]")
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    tie_to_parent()
    runpy.run_module(module, run_name="__main__", alter_sys=True)

"""Errors a learner can act on, told in plain words instead of a library's traceback.

When RabbitMQ restarts under a notebook, pika raises ``StreamLostError: Stream connection
lost: ConnectionResetError(104, ...)`` at the bottom of thirty frames of pika's internals.
Everything the learner needs is elsewhere: what happened (the broker went away), how to check
(``rabbitmqctl status``), what to run (start it, then re-run the notebook). A *renderer* turns
an exception into that text; the package that knows the exception registers one::

    register(pika.exceptions.StreamLostError, explain_lost_connection)

and inside IPython (a notebook's kernel) the error is then shown as that text alone. The
cell still fails, so Run All still stops there, and the kernel still reports the exception's
own name and message, which is what a grader or a search engine needs.

Why a registry, in this low layer: IPython keeps exactly one custom exception handler per
shell (``set_custom_exc``); a second caller replaces the first. So one module owns the
handler, and every package that has something to say registers a renderer with it, whatever
order the notebook imports them in. Packages of every layer may register; this module
imports none of them. The exercise notebooks' self-checks (``bookstore.grading.selfcheck``)
hand it their *presenter*: how errors that no renderer explains are shown there (a
learner's own frames only).

When not to use this: for an exception class of our own, give it a
``_render_traceback_`` method, which IPython honours without any registry. Renderers are
for exceptions raised by libraries. Outside IPython (services, pytest, scripts) nothing is
installed, and tracebacks stay complete: there, a developer reads them.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

Renderer = Callable[[BaseException], str | None]
"""Returns the learner's text for an error, or None to let it be shown as usual."""

Presenter = Callable[[Any, type[BaseException], BaseException, types.TracebackType | None], None]
"""Shows an error no renderer explains: ``(shell, type, error, traceback)``."""

_renderers: list[tuple[type[BaseException], Renderer]] = []
_presenter: Presenter | None = None


def register(error_type: type[BaseException], renderer: Renderer) -> None:
    """Explain errors of ``error_type`` (and its subclasses) with ``renderer``.

    Registering the same pair again changes nothing, so a module may register at import time
    even when it is reloaded. A renderer registered for a subclass wins over one for its base.
    """
    if (error_type, renderer) not in _renderers:
        _renderers.append((error_type, renderer))


def explain(error: BaseException) -> str | None:
    """The learner's text for ``error``, or None when no renderer has one.

    An error raised ``from`` another (``raise PublishFailed(...) from lost``) is explained by
    its cause when it has no text of its own. The implicit context (an error raised while
    handling another) is not followed: the error in the ``except`` block is the news there.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for error_type, renderer in sorted(_renderers, key=lambda entry: -len(entry[0].__mro__)):
            if isinstance(current, error_type) and (text := renderer(current)) is not None:
                return text
        current = current.__cause__
    return None


def _show(
    shell: Any,
    etype: type[BaseException],
    value: BaseException,
    traceback: types.TracebackType | None,
    tb_offset: int | None = None,
) -> None:
    """IPython's custom exception handler: a renderer's text, else the presenter, else as usual."""
    text = explain(value)
    if text is not None:
        # The text replaces the traceback; the error message keeps the exception's name and value.
        shell._showtraceback(etype, value, text.splitlines())
    elif _presenter is not None:
        _presenter(shell, etype, value, traceback)
    else:
        shell.showtraceback((etype, value, traceback), tb_offset=tb_offset)


def install(presenter: Presenter | None = None) -> bool:
    """Show errors through the registry in the running IPython shell; False when there is none.

    ``presenter``, when given, shows the errors no renderer explains (it stays installed when
    another module later installs without one). Safe to call from every module that registers.
    """
    global _presenter
    if presenter is not None:
        _presenter = presenter
    ipython = sys.modules.get("IPython")  # never import IPython: a plain process has no shell
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    shell.set_custom_exc((Exception,), _show)
    return True

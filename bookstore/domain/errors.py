"""Typed domain errors.

Code below the service edge raises these instead of gRPC statuses, so the same rule can be
used by a servicer, a saga step or a unit test. Each error names the request field that is
at fault; servicers turn them into gRPC status codes (see ``bookstore.platform.status``)
and the gateway turns those into HTTP statuses.
"""

from __future__ import annotations


class BookstoreError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(BookstoreError):
    """The request itself is malformed: retrying it unchanged can never succeed."""


class NotFound(BookstoreError):
    """A referenced entity (book, user, order, payment) does not exist."""


class AlreadyExists(BookstoreError):
    """The entity to create exists already (a taken username, say)."""


class FailedPrecondition(BookstoreError):
    """The request is well formed but the system's state refuses it (stock short, card declined)."""


class Unauthenticated(BookstoreError):
    """The caller's credentials are wrong or missing."""

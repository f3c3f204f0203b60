"""The catalog service's database: one table of books, seeded once, read by id, page or search.

Seeding is idempotent: the seed runs inside ``initialize`` (one transaction on SQLite, a
named lock on MySQL) and inserts only into an empty table, so replicas that start together,
or a service that restarts, never duplicate a book.

Search is a case-insensitive substring match: ``lower(title) LIKE '%query%'``. ``%`` and
``_`` are wildcards in LIKE, so the query is escaped first; otherwise a search for "%"
would match every book and "_" any single character. We escape with ``/`` rather than a
backslash because MySQL already treats a backslash inside string literals as an escape.

When not to: a leading ``%`` cannot use an index, so every search scans the table. That is
fine for a shelf of a hundred books; a real catalogue uses a full-text index (SQLite FTS5,
MySQL FULLTEXT, Elasticsearch) with stemming and ranking. Note also that SQLite's ``lower``
folds only ASCII letters, so stored titles with capital non-ASCII letters ("Émile") match
only when the query spells the case exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import BigInteger, Engine, Integer, String, func, or_, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bookstore.domain.errors import NotFound
from bookstore.domain.models import Book
from bookstore.platform.database import initialize, session_factory
from bookstore.services.catalog.books import BOOKS

LIKE_ESCAPE = "/"


class Base(DeclarativeBase):
    pass


class BookRow(Base):
    __tablename__ = "books"

    # Ids come from the seed, not the database, so they are stable across replicas.
    book_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(200))
    isbn: Mapped[str] = mapped_column(String(13), unique=True)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    year: Mapped[int] = mapped_column(Integer)

    @classmethod
    def from_domain(cls, book: Book) -> BookRow:
        return cls(
            book_id=book.book_id,
            title=book.title,
            author=book.author,
            isbn=book.isbn,
            price_cents=book.price_cents,
            year=book.year,
        )

    def to_domain(self) -> Book:
        return Book(
            book_id=self.book_id,
            title=self.title,
            author=self.author,
            isbn=self.isbn,
            price_cents=self.price_cents,
            year=self.year,
        )


def escape_like(text: str, escape: str = LIKE_ESCAPE) -> str:
    """``text`` with LIKE's wildcards (and the escape character itself) matching literally."""
    for special in (escape, "%", "_"):
        text = text.replace(special, escape + special)
    return text


def seeder(books: Sequence[Book]) -> Callable[[Session], None]:
    """A seed for ``initialize`` that inserts ``books`` into an empty table and else does nothing."""

    def seed(session: Session) -> None:
        if session.scalar(select(func.count()).select_from(BookRow)):
            return
        session.add_all(BookRow.from_domain(book) for book in books)

    return seed


class CatalogStore:
    def __init__(self, engine: Engine, books: Sequence[Book] = BOOKS) -> None:
        initialize(engine, Base.metadata, seeder(books))
        self._sessions = session_factory(engine)

    def list_books(self, offset: int, limit: int) -> tuple[list[Book], int]:
        """One page in ``book_id`` order, and the number of books in all."""
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(BookRow)) or 0
            rows = session.scalars(select(BookRow).order_by(BookRow.book_id).offset(offset).limit(limit))
            return [row.to_domain() for row in rows], total

    def search(self, query: str, limit: int) -> list[Book]:
        """Books whose title or author contains ``query``, ignoring case, in ``book_id`` order."""
        pattern = f"%{escape_like(query.lower())}%"
        matches = or_(
            func.lower(BookRow.title).like(pattern, escape=LIKE_ESCAPE),
            func.lower(BookRow.author).like(pattern, escape=LIKE_ESCAPE),
        )
        with self._sessions() as session:
            rows = session.scalars(select(BookRow).where(matches).order_by(BookRow.book_id).limit(limit))
            return [row.to_domain() for row in rows]

    def get(self, book_id: int) -> Book:
        with self._sessions() as session:
            row = session.get(BookRow, book_id)
            if row is None:
                raise NotFound(f"no book with id {book_id}", field="book_id")
            return row.to_domain()

    def batch_get(self, book_ids: Sequence[int]) -> list[Book]:
        """All the books, in the order asked; ``NotFound`` naming the first unknown id's position."""
        with self._sessions() as session:
            found = self.find_in(session, book_ids)
        for index, book_id in enumerate(book_ids):
            if book_id not in found:
                raise NotFound(f"no book with id {book_id}", field=f"book_ids[{index}]")
        return [found[book_id] for book_id in book_ids]

    @staticmethod
    def find_in(session: Session, book_ids: Sequence[int]) -> dict[int, Book]:
        """The books among ``book_ids`` that exist, by id, read in the caller's transaction.

        The in-process monolith (``bookstore.monolith``) prices an order this way, inside the
        one transaction that also takes the stock and the money.
        """
        rows = session.scalars(select(BookRow).where(BookRow.book_id.in_(book_ids)))
        return {row.book_id: row.to_domain() for row in rows}

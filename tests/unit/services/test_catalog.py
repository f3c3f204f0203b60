"""The catalog: its shelf of books, the seeded store, and CatalogService's paging, search and batches."""

import grpc
import pytest
from sqlalchemy import Engine

from bookstore.domain.models import Book
from bookstore.rpc.v1 import catalog_pb2
from bookstore.services.catalog.books import BOOKS, isbn13_check_digit, isbn13_is_valid
from bookstore.services.catalog.servicer import CatalogServicer
from bookstore.services.catalog.store import CatalogStore, escape_like

from .conftest import AbortedCall, FakeContext


@pytest.fixture
def store(sqlite_engine: Engine) -> CatalogStore:
    return CatalogStore(sqlite_engine)


@pytest.fixture
def servicer(store: CatalogStore) -> CatalogServicer:
    return CatalogServicer(store)


def book(book_id: int, title: str, author: str = "Anonymous") -> Book:
    return Book(
        book_id=book_id, title=title, author=author, isbn=f"{book_id:013d}", price_cents=999, year=2000
    )


def aborted(call: pytest.ExceptionInfo[AbortedCall]) -> tuple[grpc.StatusCode, str]:
    return call.value.code, call.value.details


# The shelf


def test_the_shelf_holds_at_least_fifty_books() -> None:
    assert len(BOOKS) >= 50


def test_book_ids_run_from_1_to_n_in_order() -> None:
    assert [b.book_id for b in BOOKS] == list(range(1, len(BOOKS) + 1))


def test_every_isbn_is_13_digits_with_a_valid_check_digit() -> None:
    invalid = [(b.book_id, b.isbn) for b in BOOKS if not isbn13_is_valid(b.isbn)]
    assert invalid == []


def test_isbns_are_unique_and_prices_are_positive_cents() -> None:
    assert len({b.isbn for b in BOOKS}) == len(BOOKS)
    assert all(isinstance(b.price_cents, int) and b.price_cents > 0 for b in BOOKS)


def test_the_check_digit_catches_a_typo() -> None:
    assert isbn13_check_digit("978030640615") == 7
    assert isbn13_is_valid("9780306406157")
    assert not isbn13_is_valid("9780306406158")
    assert not isbn13_is_valid("978030640615")
    assert not isbn13_is_valid("978030640615X")


def test_several_authors_have_more_than_one_book() -> None:
    for author in ("J. R. R. Tolkien", "Jane Austen", "George Orwell"):
        assert sum(b.author == author for b in BOOKS) >= 3


# The store


def test_the_store_seeds_the_shelf_once(sqlite_engine: Engine) -> None:
    CatalogStore(sqlite_engine)
    again = CatalogStore(sqlite_engine)
    books, total = again.list_books(0, 100)
    assert total == len(BOOKS)
    assert books == list(BOOKS[:100])


def test_the_seed_leaves_a_table_that_has_books_alone(sqlite_engine: Engine) -> None:
    CatalogStore(sqlite_engine, books=[book(1, "Only Book")])
    store = CatalogStore(sqlite_engine)
    assert store.list_books(0, 100) == ([book(1, "Only Book")], 1)


def test_escape_like_makes_wildcards_literal() -> None:
    assert escape_like("100%_a/b") == "100/%/_a//b"


# ListBooks


def test_list_books_pages_through_every_book_in_id_order(
    servicer: CatalogServicer, context: FakeContext
) -> None:
    seen: list[int] = []
    token = ""
    while True:
        request = catalog_pb2.ListBooksRequest(page_size=7, page_token=token)
        page = servicer.ListBooks(request, context)  # type: ignore[arg-type]
        assert page.total_size == len(BOOKS)
        seen += [b.book_id for b in page.books]
        token = page.next_page_token
        if not token:
            break
    assert seen == [b.book_id for b in BOOKS]


def test_list_books_defaults_to_pages_of_20(servicer: CatalogServicer, context: FakeContext) -> None:
    page = servicer.ListBooks(catalog_pb2.ListBooksRequest(), context)  # type: ignore[arg-type]
    assert [b.book_id for b in page.books] == list(range(1, 21))
    assert page.next_page_token == "20"


def test_list_books_carries_every_field(servicer: CatalogServicer, context: FakeContext) -> None:
    first = servicer.ListBooks(catalog_pb2.ListBooksRequest(page_size=1), context).books[0]  # type: ignore[arg-type]
    hobbit = BOOKS[0]
    assert (first.title, first.author, first.isbn, first.price_cents, first.year) == (
        hobbit.title,
        hobbit.author,
        hobbit.isbn,
        hobbit.price_cents,
        hobbit.year,
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"page_size": 101}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "x"}, "page_token"),
    ],
)
def test_list_books_rejects_a_bad_page_size_or_token(
    servicer: CatalogServicer, context: FakeContext, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(AbortedCall) as call:
        servicer.ListBooks(catalog_pb2.ListBooksRequest(**fields), context)  # type: ignore[arg-type]
    code, details = aborted(call)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")


# SearchBooks


def search(servicer: CatalogServicer, context: FakeContext, query: str, page_size: int = 0) -> list[str]:
    request = catalog_pb2.SearchBooksRequest(query=query, page_size=page_size)
    return [b.title for b in servicer.SearchBooks(request, context).books]  # type: ignore[arg-type]


def test_search_matches_the_author_ignoring_case(servicer: CatalogServicer, context: FakeContext) -> None:
    titles = search(servicer, context, "TOLKIEN")
    assert titles[:2] == ["The Hobbit", "The Fellowship of the Ring"]
    assert len(titles) == sum(b.author == "J. R. R. Tolkien" for b in BOOKS)


def test_search_matches_titles_and_authors_alike(servicer: CatalogServicer, context: FakeContext) -> None:
    titles = search(servicer, context, "king")
    assert "The Return of the King" in titles  # a title
    assert "The Shining" in titles  # by Stephen King


def test_search_returns_books_in_id_order_and_at_most_page_size(
    servicer: CatalogServicer, context: FakeContext
) -> None:
    assert search(servicer, context, "patterns", page_size=2) == search(servicer, context, "patterns")[:2]
    assert len(search(servicer, context, "patterns")) >= 3


def test_search_treats_like_wildcards_literally(sqlite_engine: Engine, context: FakeContext) -> None:
    store = CatalogStore(
        sqlite_engine, books=[book(1, "100% Python"), book(2, "snake_case"), book(3, "Plain")]
    )
    servicer = CatalogServicer(store)
    assert search(servicer, context, "%") == ["100% Python"]
    assert search(servicer, context, "_") == ["snake_case"]
    assert search(servicer, context, "e_c") == ["snake_case"]
    assert search(servicer, context, "n%") == []


def test_search_finds_nothing_for_an_unknown_word(servicer: CatalogServicer, context: FakeContext) -> None:
    assert search(servicer, context, "zzzz") == []


@pytest.mark.parametrize("query", ["", "   ", "x" * 101])
def test_search_rejects_an_empty_or_overlong_query(
    servicer: CatalogServicer, context: FakeContext, query: str
) -> None:
    with pytest.raises(AbortedCall) as call:
        search(servicer, context, query)
    code, details = aborted(call)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("query:")


# GetBook


def test_get_book_returns_the_book(servicer: CatalogServicer, context: FakeContext) -> None:
    response = servicer.GetBook(catalog_pb2.GetBookRequest(book_id=12), context)  # type: ignore[arg-type]
    assert response.book.title == BOOKS[11].title


@pytest.mark.parametrize(
    ("book_id", "code"), [(0, "INVALID_ARGUMENT"), (-3, "INVALID_ARGUMENT"), (10_000, "NOT_FOUND")]
)
def test_get_book_rejects_a_bad_or_unknown_id_naming_book_id(
    servicer: CatalogServicer, context: FakeContext, book_id: int, code: str
) -> None:
    with pytest.raises(AbortedCall) as call:
        servicer.GetBook(catalog_pb2.GetBookRequest(book_id=book_id), context)  # type: ignore[arg-type]
    status, details = aborted(call)
    assert status is grpc.StatusCode[code]
    assert details.startswith("book_id:")


# BatchGetBooks


def batch(servicer: CatalogServicer, context: FakeContext, ids: list[int]) -> list[int]:
    response = servicer.BatchGetBooks(catalog_pb2.BatchGetBooksRequest(book_ids=ids), context)  # type: ignore[arg-type]
    return [b.book_id for b in response.books]


def test_batch_get_returns_books_in_the_order_asked(servicer: CatalogServicer, context: FakeContext) -> None:
    assert batch(servicer, context, [30, 2, 17]) == [30, 2, 17]


def test_batch_get_accepts_up_to_100_ids(sqlite_engine: Engine, context: FakeContext) -> None:
    servicer = CatalogServicer(
        CatalogStore(sqlite_engine, books=[book(i, f"Book {i}") for i in range(1, 101)])
    )
    assert batch(servicer, context, list(range(100, 0, -1))) == list(range(100, 0, -1))


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        ([], "book_ids"),
        (list(range(1, 102)), "book_ids"),
        ([1, -2], "book_ids[1]"),
        ([1, 2, 1], "book_ids[2]"),
    ],
)
def test_batch_get_rejects_an_empty_overlong_bad_or_repeated_list(
    servicer: CatalogServicer, context: FakeContext, ids: list[int], field: str
) -> None:
    with pytest.raises(AbortedCall) as call:
        batch(servicer, context, ids)
    code, details = aborted(call)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")


def test_batch_get_is_all_or_nothing_naming_the_first_unknown_id(
    servicer: CatalogServicer, context: FakeContext
) -> None:
    with pytest.raises(AbortedCall) as call:
        batch(servicer, context, [1, 5000, 2, 6000])
    code, details = aborted(call)
    assert code is grpc.StatusCode.NOT_FOUND
    assert details.startswith("book_ids[1]:")

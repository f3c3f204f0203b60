"""CatalogService: validate, call the store, translate to protobuf."""

from __future__ import annotations

import grpc

from bookstore.domain import validation as v
from bookstore.domain.errors import InvalidArgument
from bookstore.domain.models import Book
from bookstore.platform.status import translate_errors
from bookstore.rpc.v1 import catalog_pb2, catalog_pb2_grpc
from bookstore.services.catalog.store import CatalogStore

MAX_QUERY_LEN = 100
MAX_BATCH_SIZE = 100


def book_to_pb(book: Book) -> catalog_pb2.Book:
    return catalog_pb2.Book(
        book_id=book.book_id,
        title=book.title,
        author=book.author,
        isbn=book.isbn,
        price_cents=book.price_cents,
        year=book.year,
    )


def require_book_ids(values: list[int]) -> list[int]:
    """1..MAX_BATCH_SIZE positive, distinct ids; errors name the position, e.g. ``book_ids[3]``."""
    if not values:
        raise InvalidArgument("must name at least one book", field="book_ids")
    if len(values) > MAX_BATCH_SIZE:
        raise InvalidArgument(
            f"must name at most {MAX_BATCH_SIZE} books, got {len(values)}", field="book_ids"
        )
    ids = [v.require_id(f"book_ids[{index}]", value) for index, value in enumerate(values)]
    v.require_distinct("book_ids", ids)
    return ids


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    @translate_errors
    def ListBooks(
        self, request: catalog_pb2.ListBooksRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.ListBooksResponse:
        limit = v.page_size(request.page_size)
        offset = v.decode_page_token(request.page_token)
        books, total = self._store.list_books(offset, limit)
        return catalog_pb2.ListBooksResponse(
            books=[book_to_pb(book) for book in books],
            next_page_token=v.encode_page_token(offset + limit, total),
            total_size=total,
        )

    @translate_errors
    def SearchBooks(
        self, request: catalog_pb2.SearchBooksRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.SearchBooksResponse:
        query = v.require_text("query", request.query, max_len=MAX_QUERY_LEN)
        limit = v.page_size(request.page_size)
        return catalog_pb2.SearchBooksResponse(
            books=[book_to_pb(book) for book in self._store.search(query, limit)]
        )

    @translate_errors
    def GetBook(
        self, request: catalog_pb2.GetBookRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.GetBookResponse:
        book_id = v.require_id("book_id", request.book_id)
        return catalog_pb2.GetBookResponse(book=book_to_pb(self._store.get(book_id)))

    @translate_errors
    def BatchGetBooks(
        self, request: catalog_pb2.BatchGetBooksRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.BatchGetBooksResponse:
        book_ids = require_book_ids(list(request.book_ids))
        return catalog_pb2.BatchGetBooksResponse(
            books=[book_to_pb(book) for book in self._store.batch_get(book_ids)]
        )

import pytest

from bookstore.domain import validation as v
from bookstore.domain.errors import InvalidArgument


def test_text_is_stripped_and_bounded() -> None:
    assert v.require_text("title", "  Dune ") == "Dune"
    with pytest.raises(InvalidArgument, match="title: must not be empty"):
        v.require_text("title", "   ")
    with pytest.raises(InvalidArgument, match="at most 5"):
        v.require_text("title", "abcdef", max_len=5)


def test_a_uuid_is_normalised_and_garbage_names_the_field() -> None:
    assert (
        v.require_uuid("order_id", "A3BB189E-8BF9-3888-9912-ACE4E6543002")
        == "a3bb189e-8bf9-3888-9912-ace4e6543002"
    )
    with pytest.raises(InvalidArgument, match="order_id: must be a UUID"):
        v.require_uuid("order_id", "42")


def test_page_size_zero_means_the_default_and_out_of_range_is_refused() -> None:
    assert v.page_size(0) == v.DEFAULT_PAGE_SIZE
    assert v.page_size(100) == 100
    with pytest.raises(InvalidArgument, match="page_size"):
        v.page_size(101)
    with pytest.raises(InvalidArgument, match="page_size"):
        v.page_size(-1)


def test_page_tokens_round_trip_and_foreign_tokens_are_refused() -> None:
    token = v.encode_page_token(40, 100)
    assert v.decode_page_token(token) == 40
    assert v.encode_page_token(100, 100) == ""
    for foreign in ("abc", "²", "-1", "9" * 12):
        with pytest.raises(InvalidArgument, match="page_token"):
            v.decode_page_token(foreign)


def test_duplicates_are_named_by_their_position() -> None:
    with pytest.raises(InvalidArgument, match=r"items\[2\]: duplicate id 5"):
        v.require_distinct("items", [5, 6, 5])


def test_ids_must_be_positive() -> None:
    with pytest.raises(InvalidArgument, match="book_id"):
        v.require_id("book_id", 0)

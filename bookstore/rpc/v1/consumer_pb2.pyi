from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetConsumerStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetConsumerStatsResponse(_message.Message):
    __slots__ = ("consumer", "queue", "received", "applied", "duplicates", "retried", "dead_lettered", "last_applied_at")
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    LAST_APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    queue: str
    received: int
    applied: int
    duplicates: int
    retried: int
    dead_lettered: int
    last_applied_at: float
    def __init__(self, consumer: _Optional[str] = ..., queue: _Optional[str] = ..., received: _Optional[int] = ..., applied: _Optional[int] = ..., duplicates: _Optional[int] = ..., retried: _Optional[int] = ..., dead_lettered: _Optional[int] = ..., last_applied_at: _Optional[float] = ...) -> None: ...

class ListRecordsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListRecordsResponse(_message.Message):
    __slots__ = ("records", "total")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedScalarFieldContainer[str]
    total: int
    def __init__(self, records: _Optional[_Iterable[str]] = ..., total: _Optional[int] = ...) -> None: ...

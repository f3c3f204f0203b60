from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Fault(_message.Message):
    __slots__ = ("method", "error_rate", "status_code", "latency_ms", "slow_rate", "cpu_ms")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SLOW_RATE_FIELD_NUMBER: _ClassVar[int]
    CPU_MS_FIELD_NUMBER: _ClassVar[int]
    method: str
    error_rate: float
    status_code: str
    latency_ms: int
    slow_rate: float
    cpu_ms: int
    def __init__(self, method: _Optional[str] = ..., error_rate: _Optional[float] = ..., status_code: _Optional[str] = ..., latency_ms: _Optional[int] = ..., slow_rate: _Optional[float] = ..., cpu_ms: _Optional[int] = ...) -> None: ...

class InjectFaultRequest(_message.Message):
    __slots__ = ("fault",)
    FAULT_FIELD_NUMBER: _ClassVar[int]
    fault: Fault
    def __init__(self, fault: _Optional[_Union[Fault, _Mapping]] = ...) -> None: ...

class InjectFaultResponse(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    def __init__(self, faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ...) -> None: ...

class ClearFaultsRequest(_message.Message):
    __slots__ = ("method",)
    METHOD_FIELD_NUMBER: _ClassVar[int]
    method: str
    def __init__(self, method: _Optional[str] = ...) -> None: ...

class ClearFaultsResponse(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    def __init__(self, faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("service", "replica", "pid", "calls_by_method", "faults", "breakers")
    class CallsByMethodEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    CALLS_BY_METHOD_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    service: str
    replica: int
    pid: int
    calls_by_method: _containers.ScalarMap[str, int]
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    breakers: _containers.RepeatedCompositeFieldContainer[BreakerState]
    def __init__(self, service: _Optional[str] = ..., replica: _Optional[int] = ..., pid: _Optional[int] = ..., calls_by_method: _Optional[_Mapping[str, int]] = ..., faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ..., breakers: _Optional[_Iterable[_Union[BreakerState, _Mapping]]] = ...) -> None: ...

class BreakerState(_message.Message):
    __slots__ = ("name", "state", "generation", "window_calls", "window_failures", "rejected")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_CALLS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FAILURES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    generation: int
    window_calls: int
    window_failures: int
    rejected: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., generation: _Optional[int] = ..., window_calls: _Optional[int] = ..., window_failures: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATUS_UNSPECIFIED: _ClassVar[ServingStatus]
    SERVING_STATUS_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_NOT_SERVING: _ClassVar[ServingStatus]
SERVING_STATUS_UNSPECIFIED: ServingStatus
SERVING_STATUS_SERVING: ServingStatus
SERVING_STATUS_NOT_SERVING: ServingStatus

class BatteryTelemetry(_message.Message):
    __slots__ = ("battery_id", "online", "soc_mwh", "capacity_mwh", "backup_reserve_mwh", "available_charge_mw", "available_discharge_mw", "charge_efficiency", "discharge_efficiency")
    BATTERY_ID_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    SOC_MWH_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_MWH_FIELD_NUMBER: _ClassVar[int]
    BACKUP_RESERVE_MWH_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_CHARGE_MW_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_DISCHARGE_MW_FIELD_NUMBER: _ClassVar[int]
    CHARGE_EFFICIENCY_FIELD_NUMBER: _ClassVar[int]
    DISCHARGE_EFFICIENCY_FIELD_NUMBER: _ClassVar[int]
    battery_id: str
    online: bool
    soc_mwh: float
    capacity_mwh: float
    backup_reserve_mwh: float
    available_charge_mw: float
    available_discharge_mw: float
    charge_efficiency: float
    discharge_efficiency: float
    def __init__(self, battery_id: _Optional[str] = ..., online: _Optional[bool] = ..., soc_mwh: _Optional[float] = ..., capacity_mwh: _Optional[float] = ..., backup_reserve_mwh: _Optional[float] = ..., available_charge_mw: _Optional[float] = ..., available_discharge_mw: _Optional[float] = ..., charge_efficiency: _Optional[float] = ..., discharge_efficiency: _Optional[float] = ...) -> None: ...

class BatteryDispatch(_message.Message):
    __slots__ = ("battery_id", "net_mw")
    BATTERY_ID_FIELD_NUMBER: _ClassVar[int]
    NET_MW_FIELD_NUMBER: _ClassVar[int]
    battery_id: str
    net_mw: float
    def __init__(self, battery_id: _Optional[str] = ..., net_mw: _Optional[float] = ...) -> None: ...

class GetTelemetryRequest(_message.Message):
    __slots__ = ("portfolio", "as_of")
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    portfolio: str
    as_of: str
    def __init__(self, portfolio: _Optional[str] = ..., as_of: _Optional[str] = ...) -> None: ...

class GetTelemetryResponse(_message.Message):
    __slots__ = ("portfolio", "as_of", "batteries")
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    BATTERIES_FIELD_NUMBER: _ClassVar[int]
    portfolio: str
    as_of: str
    batteries: _containers.RepeatedCompositeFieldContainer[BatteryTelemetry]
    def __init__(self, portfolio: _Optional[str] = ..., as_of: _Optional[str] = ..., batteries: _Optional[_Iterable[_Union[BatteryTelemetry, _Mapping]]] = ...) -> None: ...

class DispatchRequest(_message.Message):
    __slots__ = ("portfolio", "interval_end", "net_mw", "interval_minutes")
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    NET_MW_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MINUTES_FIELD_NUMBER: _ClassVar[int]
    portfolio: str
    interval_end: str
    net_mw: float
    interval_minutes: int
    def __init__(self, portfolio: _Optional[str] = ..., interval_end: _Optional[str] = ..., net_mw: _Optional[float] = ..., interval_minutes: _Optional[int] = ...) -> None: ...

class DispatchResponse(_message.Message):
    __slots__ = ("portfolio", "interval_end", "requested_net_mw", "allocations", "shortfall_mw")
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_NET_MW_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_MW_FIELD_NUMBER: _ClassVar[int]
    portfolio: str
    interval_end: str
    requested_net_mw: float
    allocations: _containers.RepeatedCompositeFieldContainer[BatteryDispatch]
    shortfall_mw: float
    def __init__(self, portfolio: _Optional[str] = ..., interval_end: _Optional[str] = ..., requested_net_mw: _Optional[float] = ..., allocations: _Optional[_Iterable[_Union[BatteryDispatch, _Mapping]]] = ..., shortfall_mw: _Optional[float] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: ServingStatus
    def __init__(self, status: _Optional[_Union[ServingStatus, str]] = ...) -> None: ...

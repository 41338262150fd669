from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DispatchDetail(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISPATCH_DETAIL_UNSPECIFIED: _ClassVar[DispatchDetail]
    DISPATCH_DETAIL_PLANS: _ClassVar[DispatchDetail]
    DISPATCH_DETAIL_SUMMARY: _ClassVar[DispatchDetail]

class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATUS_UNSPECIFIED: _ClassVar[ServingStatus]
    SERVING_STATUS_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_NOT_SERVING: _ClassVar[ServingStatus]
DISPATCH_DETAIL_UNSPECIFIED: DispatchDetail
DISPATCH_DETAIL_PLANS: DispatchDetail
DISPATCH_DETAIL_SUMMARY: DispatchDetail
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

class Enablement(_message.Message):
    __slots__ = ("product", "mw")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    MW_FIELD_NUMBER: _ClassVar[int]
    product: str
    mw: float
    def __init__(self, product: _Optional[str] = ..., mw: _Optional[float] = ...) -> None: ...

class DispatchRequest(_message.Message):
    __slots__ = ("portfolio", "interval_end", "net_mw", "interval_minutes", "node", "enablements", "detail")
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    NET_MW_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MINUTES_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ENABLEMENTS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    portfolio: str
    interval_end: str
    net_mw: float
    interval_minutes: int
    node: str
    enablements: _containers.RepeatedCompositeFieldContainer[Enablement]
    detail: DispatchDetail
    def __init__(self, portfolio: _Optional[str] = ..., interval_end: _Optional[str] = ..., net_mw: _Optional[float] = ..., interval_minutes: _Optional[int] = ..., node: _Optional[str] = ..., enablements: _Optional[_Iterable[_Union[Enablement, _Mapping]]] = ..., detail: _Optional[_Union[DispatchDetail, str]] = ...) -> None: ...

class ProductResult(_message.Message):
    __slots__ = ("product", "requested_mw", "allocated_mw", "shortfall_mw")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_MW_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_MW_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_MW_FIELD_NUMBER: _ClassVar[int]
    product: str
    requested_mw: float
    allocated_mw: float
    shortfall_mw: float
    def __init__(self, product: _Optional[str] = ..., requested_mw: _Optional[float] = ..., allocated_mw: _Optional[float] = ..., shortfall_mw: _Optional[float] = ...) -> None: ...

class ChildAllocation(_message.Message):
    __slots__ = ("path", "batteries", "energy_mw", "enablements")
    PATH_FIELD_NUMBER: _ClassVar[int]
    BATTERIES_FIELD_NUMBER: _ClassVar[int]
    ENERGY_MW_FIELD_NUMBER: _ClassVar[int]
    ENABLEMENTS_FIELD_NUMBER: _ClassVar[int]
    path: str
    batteries: int
    energy_mw: float
    enablements: _containers.RepeatedCompositeFieldContainer[Enablement]
    def __init__(self, path: _Optional[str] = ..., batteries: _Optional[int] = ..., energy_mw: _Optional[float] = ..., enablements: _Optional[_Iterable[_Union[Enablement, _Mapping]]] = ...) -> None: ...

class DispatchSummary(_message.Message):
    __slots__ = ("node", "energy", "products", "batteries", "dispatched", "offline", "stale", "children")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    BATTERIES_FIELD_NUMBER: _ClassVar[int]
    DISPATCHED_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    node: str
    energy: ProductResult
    products: _containers.RepeatedCompositeFieldContainer[ProductResult]
    batteries: int
    dispatched: int
    offline: int
    stale: int
    children: _containers.RepeatedCompositeFieldContainer[ChildAllocation]
    def __init__(self, node: _Optional[str] = ..., energy: _Optional[_Union[ProductResult, _Mapping]] = ..., products: _Optional[_Iterable[_Union[ProductResult, _Mapping]]] = ..., batteries: _Optional[int] = ..., dispatched: _Optional[int] = ..., offline: _Optional[int] = ..., stale: _Optional[int] = ..., children: _Optional[_Iterable[_Union[ChildAllocation, _Mapping]]] = ...) -> None: ...

class ProductPlan(_message.Message):
    __slots__ = ("product", "mw")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    MW_FIELD_NUMBER: _ClassVar[int]
    product: str
    mw: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, product: _Optional[str] = ..., mw: _Optional[_Iterable[float]] = ...) -> None: ...

class ControlPlans(_message.Message):
    __slots__ = ("battery_ids", "net_mw", "enablements")
    BATTERY_IDS_FIELD_NUMBER: _ClassVar[int]
    NET_MW_FIELD_NUMBER: _ClassVar[int]
    ENABLEMENTS_FIELD_NUMBER: _ClassVar[int]
    battery_ids: _containers.RepeatedScalarFieldContainer[str]
    net_mw: _containers.RepeatedScalarFieldContainer[float]
    enablements: _containers.RepeatedCompositeFieldContainer[ProductPlan]
    def __init__(self, battery_ids: _Optional[_Iterable[str]] = ..., net_mw: _Optional[_Iterable[float]] = ..., enablements: _Optional[_Iterable[_Union[ProductPlan, _Mapping]]] = ...) -> None: ...

class DispatchResponse(_message.Message):
    __slots__ = ("portfolio", "interval_end", "requested_net_mw", "allocations", "shortfall_mw", "node", "interval_minutes", "summary", "plans")
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_NET_MW_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_MW_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MINUTES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PLANS_FIELD_NUMBER: _ClassVar[int]
    portfolio: str
    interval_end: str
    requested_net_mw: float
    allocations: _containers.RepeatedCompositeFieldContainer[BatteryDispatch]
    shortfall_mw: float
    node: str
    interval_minutes: int
    summary: DispatchSummary
    plans: ControlPlans
    def __init__(self, portfolio: _Optional[str] = ..., interval_end: _Optional[str] = ..., requested_net_mw: _Optional[float] = ..., allocations: _Optional[_Iterable[_Union[BatteryDispatch, _Mapping]]] = ..., shortfall_mw: _Optional[float] = ..., node: _Optional[str] = ..., interval_minutes: _Optional[int] = ..., summary: _Optional[_Union[DispatchSummary, _Mapping]] = ..., plans: _Optional[_Union[ControlPlans, _Mapping]] = ...) -> None: ...

class ProductHeadroom(_message.Message):
    __slots__ = ("product", "mw")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    MW_FIELD_NUMBER: _ClassVar[int]
    product: str
    mw: float
    def __init__(self, product: _Optional[str] = ..., mw: _Optional[float] = ...) -> None: ...

class NodeState(_message.Message):
    __slots__ = ("path", "batteries", "online", "offline", "stale", "available_charge_mw", "available_discharge_mw", "energy_above_reserve_mwh", "soc_mwh", "capacity_mwh", "headroom")
    PATH_FIELD_NUMBER: _ClassVar[int]
    BATTERIES_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_CHARGE_MW_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_DISCHARGE_MW_FIELD_NUMBER: _ClassVar[int]
    ENERGY_ABOVE_RESERVE_MWH_FIELD_NUMBER: _ClassVar[int]
    SOC_MWH_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_MWH_FIELD_NUMBER: _ClassVar[int]
    HEADROOM_FIELD_NUMBER: _ClassVar[int]
    path: str
    batteries: int
    online: int
    offline: int
    stale: int
    available_charge_mw: float
    available_discharge_mw: float
    energy_above_reserve_mwh: float
    soc_mwh: float
    capacity_mwh: float
    headroom: _containers.RepeatedCompositeFieldContainer[ProductHeadroom]
    def __init__(self, path: _Optional[str] = ..., batteries: _Optional[int] = ..., online: _Optional[int] = ..., offline: _Optional[int] = ..., stale: _Optional[int] = ..., available_charge_mw: _Optional[float] = ..., available_discharge_mw: _Optional[float] = ..., energy_above_reserve_mwh: _Optional[float] = ..., soc_mwh: _Optional[float] = ..., capacity_mwh: _Optional[float] = ..., headroom: _Optional[_Iterable[_Union[ProductHeadroom, _Mapping]]] = ...) -> None: ...

class GetNodeStateRequest(_message.Message):
    __slots__ = ("node", "as_of", "include_children", "interval_minutes")
    NODE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CHILDREN_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MINUTES_FIELD_NUMBER: _ClassVar[int]
    node: str
    as_of: str
    include_children: bool
    interval_minutes: int
    def __init__(self, node: _Optional[str] = ..., as_of: _Optional[str] = ..., include_children: _Optional[bool] = ..., interval_minutes: _Optional[int] = ...) -> None: ...

class GetNodeStateResponse(_message.Message):
    __slots__ = ("as_of", "interval_minutes", "node", "children")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MINUTES_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    as_of: str
    interval_minutes: int
    node: NodeState
    children: _containers.RepeatedCompositeFieldContainer[NodeState]
    def __init__(self, as_of: _Optional[str] = ..., interval_minutes: _Optional[int] = ..., node: _Optional[_Union[NodeState, _Mapping]] = ..., children: _Optional[_Iterable[_Union[NodeState, _Mapping]]] = ...) -> None: ...

class StreamTelemetryRequest(_message.Message):
    __slots__ = ("node", "batch_size", "max_snapshots")
    NODE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    node: str
    batch_size: int
    max_snapshots: int
    def __init__(self, node: _Optional[str] = ..., batch_size: _Optional[int] = ..., max_snapshots: _Optional[int] = ...) -> None: ...

class StreamTelemetryResponse(_message.Message):
    __slots__ = ("node", "as_of", "snapshot", "offset", "total", "battery_ids", "online", "age_s", "soc_mwh", "backup_reserve_mwh", "max_charge_mw", "max_discharge_mw", "capacity_mwh")
    NODE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    BATTERY_IDS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    AGE_S_FIELD_NUMBER: _ClassVar[int]
    SOC_MWH_FIELD_NUMBER: _ClassVar[int]
    BACKUP_RESERVE_MWH_FIELD_NUMBER: _ClassVar[int]
    MAX_CHARGE_MW_FIELD_NUMBER: _ClassVar[int]
    MAX_DISCHARGE_MW_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_MWH_FIELD_NUMBER: _ClassVar[int]
    node: str
    as_of: str
    snapshot: int
    offset: int
    total: int
    battery_ids: _containers.RepeatedScalarFieldContainer[str]
    online: _containers.RepeatedScalarFieldContainer[bool]
    age_s: _containers.RepeatedScalarFieldContainer[float]
    soc_mwh: _containers.RepeatedScalarFieldContainer[float]
    backup_reserve_mwh: _containers.RepeatedScalarFieldContainer[float]
    max_charge_mw: _containers.RepeatedScalarFieldContainer[float]
    max_discharge_mw: _containers.RepeatedScalarFieldContainer[float]
    capacity_mwh: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, node: _Optional[str] = ..., as_of: _Optional[str] = ..., snapshot: _Optional[int] = ..., offset: _Optional[int] = ..., total: _Optional[int] = ..., battery_ids: _Optional[_Iterable[str]] = ..., online: _Optional[_Iterable[bool]] = ..., age_s: _Optional[_Iterable[float]] = ..., soc_mwh: _Optional[_Iterable[float]] = ..., backup_reserve_mwh: _Optional[_Iterable[float]] = ..., max_charge_mw: _Optional[_Iterable[float]] = ..., max_discharge_mw: _Optional[_Iterable[float]] = ..., capacity_mwh: _Optional[_Iterable[float]] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: ServingStatus
    def __init__(self, status: _Optional[_Union[ServingStatus, str]] = ...) -> None: ...

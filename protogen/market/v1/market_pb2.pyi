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

class PriceBand(_message.Message):
    __slots__ = ("price_aud_per_mwh", "volume_mw")
    PRICE_AUD_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    VOLUME_MW_FIELD_NUMBER: _ClassVar[int]
    price_aud_per_mwh: float
    volume_mw: float
    def __init__(self, price_aud_per_mwh: _Optional[float] = ..., volume_mw: _Optional[float] = ...) -> None: ...

class EnergyBid(_message.Message):
    __slots__ = ("bid_id", "portfolio", "region", "interval_end", "discharge_bands", "charge_bands")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    DISCHARGE_BANDS_FIELD_NUMBER: _ClassVar[int]
    CHARGE_BANDS_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    portfolio: str
    region: str
    interval_end: str
    discharge_bands: _containers.RepeatedCompositeFieldContainer[PriceBand]
    charge_bands: _containers.RepeatedCompositeFieldContainer[PriceBand]
    def __init__(self, bid_id: _Optional[str] = ..., portfolio: _Optional[str] = ..., region: _Optional[str] = ..., interval_end: _Optional[str] = ..., discharge_bands: _Optional[_Iterable[_Union[PriceBand, _Mapping]]] = ..., charge_bands: _Optional[_Iterable[_Union[PriceBand, _Mapping]]] = ...) -> None: ...

class Award(_message.Message):
    __slots__ = ("bid_id", "interval_end", "clearing_price_aud_per_mwh", "discharge_mw", "charge_mw")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    CLEARING_PRICE_AUD_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    DISCHARGE_MW_FIELD_NUMBER: _ClassVar[int]
    CHARGE_MW_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    interval_end: str
    clearing_price_aud_per_mwh: float
    discharge_mw: float
    charge_mw: float
    def __init__(self, bid_id: _Optional[str] = ..., interval_end: _Optional[str] = ..., clearing_price_aud_per_mwh: _Optional[float] = ..., discharge_mw: _Optional[float] = ..., charge_mw: _Optional[float] = ...) -> None: ...

class BidViolation(_message.Message):
    __slots__ = ("field", "band", "rule", "message")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    field: str
    band: int
    rule: str
    message: str
    def __init__(self, field: _Optional[str] = ..., band: _Optional[int] = ..., rule: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class BidViolations(_message.Message):
    __slots__ = ("violations",)
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    violations: _containers.RepeatedCompositeFieldContainer[BidViolation]
    def __init__(self, violations: _Optional[_Iterable[_Union[BidViolation, _Mapping]]] = ...) -> None: ...

class GetMarketDataRequest(_message.Message):
    __slots__ = ("region", "as_of", "lookback_intervals")
    REGION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_INTERVALS_FIELD_NUMBER: _ClassVar[int]
    region: str
    as_of: str
    lookback_intervals: int
    def __init__(self, region: _Optional[str] = ..., as_of: _Optional[str] = ..., lookback_intervals: _Optional[int] = ...) -> None: ...

class GetMarketDataResponse(_message.Message):
    __slots__ = ("region", "as_of", "first_interval_end", "interval_minutes", "prices_aud_per_mwh")
    REGION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    FIRST_INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MINUTES_FIELD_NUMBER: _ClassVar[int]
    PRICES_AUD_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    region: str
    as_of: str
    first_interval_end: str
    interval_minutes: int
    prices_aud_per_mwh: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, region: _Optional[str] = ..., as_of: _Optional[str] = ..., first_interval_end: _Optional[str] = ..., interval_minutes: _Optional[int] = ..., prices_aud_per_mwh: _Optional[_Iterable[float]] = ...) -> None: ...

class SubmitBidsRequest(_message.Message):
    __slots__ = ("bid",)
    BID_FIELD_NUMBER: _ClassVar[int]
    bid: EnergyBid
    def __init__(self, bid: _Optional[_Union[EnergyBid, _Mapping]] = ...) -> None: ...

class SubmitBidsResponse(_message.Message):
    __slots__ = ("bid_id", "accepted", "duplicate", "accepted_at")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    accepted: bool
    duplicate: bool
    accepted_at: str
    def __init__(self, bid_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., accepted_at: _Optional[str] = ...) -> None: ...

class GetAwardsRequest(_message.Message):
    __slots__ = ("bid_id",)
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    def __init__(self, bid_id: _Optional[str] = ...) -> None: ...

class GetAwardsResponse(_message.Message):
    __slots__ = ("award",)
    AWARD_FIELD_NUMBER: _ClassVar[int]
    award: Award
    def __init__(self, award: _Optional[_Union[Award, _Mapping]] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: ServingStatus
    def __init__(self, status: _Optional[_Union[ServingStatus, str]] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Market(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MARKET_UNSPECIFIED: _ClassVar[Market]
    MARKET_NEM: _ClassVar[Market]
    MARKET_ERCOT: _ClassVar[Market]

class MarketRun(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MARKET_RUN_UNSPECIFIED: _ClassVar[MarketRun]
    MARKET_RUN_NEM_DISPATCH: _ClassVar[MarketRun]
    MARKET_RUN_ERCOT_DAY_AHEAD: _ClassVar[MarketRun]
    MARKET_RUN_ERCOT_REAL_TIME: _ClassVar[MarketRun]

class Product(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRODUCT_UNSPECIFIED: _ClassVar[Product]
    PRODUCT_ENERGY: _ClassVar[Product]
    PRODUCT_NEM_RAISE_REG: _ClassVar[Product]
    PRODUCT_NEM_LOWER_REG: _ClassVar[Product]
    PRODUCT_NEM_RAISE_1S: _ClassVar[Product]
    PRODUCT_NEM_RAISE_6S: _ClassVar[Product]
    PRODUCT_NEM_RAISE_60S: _ClassVar[Product]
    PRODUCT_NEM_RAISE_5MIN: _ClassVar[Product]
    PRODUCT_NEM_LOWER_1S: _ClassVar[Product]
    PRODUCT_NEM_LOWER_6S: _ClassVar[Product]
    PRODUCT_NEM_LOWER_60S: _ClassVar[Product]
    PRODUCT_NEM_LOWER_5MIN: _ClassVar[Product]
    PRODUCT_ERCOT_REG_UP: _ClassVar[Product]
    PRODUCT_ERCOT_REG_DOWN: _ClassVar[Product]
    PRODUCT_ERCOT_RRS: _ClassVar[Product]
    PRODUCT_ERCOT_ECRS: _ClassVar[Product]
    PRODUCT_ERCOT_NON_SPIN: _ClassVar[Product]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_SUPPLY: _ClassVar[Side]
    SIDE_DEMAND: _ClassVar[Side]

class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATUS_UNSPECIFIED: _ClassVar[ServingStatus]
    SERVING_STATUS_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_NOT_SERVING: _ClassVar[ServingStatus]
MARKET_UNSPECIFIED: Market
MARKET_NEM: Market
MARKET_ERCOT: Market
MARKET_RUN_UNSPECIFIED: MarketRun
MARKET_RUN_NEM_DISPATCH: MarketRun
MARKET_RUN_ERCOT_DAY_AHEAD: MarketRun
MARKET_RUN_ERCOT_REAL_TIME: MarketRun
PRODUCT_UNSPECIFIED: Product
PRODUCT_ENERGY: Product
PRODUCT_NEM_RAISE_REG: Product
PRODUCT_NEM_LOWER_REG: Product
PRODUCT_NEM_RAISE_1S: Product
PRODUCT_NEM_RAISE_6S: Product
PRODUCT_NEM_RAISE_60S: Product
PRODUCT_NEM_RAISE_5MIN: Product
PRODUCT_NEM_LOWER_1S: Product
PRODUCT_NEM_LOWER_6S: Product
PRODUCT_NEM_LOWER_60S: Product
PRODUCT_NEM_LOWER_5MIN: Product
PRODUCT_ERCOT_REG_UP: Product
PRODUCT_ERCOT_REG_DOWN: Product
PRODUCT_ERCOT_RRS: Product
PRODUCT_ERCOT_ECRS: Product
PRODUCT_ERCOT_NON_SPIN: Product
SIDE_UNSPECIFIED: Side
SIDE_SUPPLY: Side
SIDE_DEMAND: Side
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
    __slots__ = ("bid_id", "portfolio", "region", "interval_end", "discharge_bands", "charge_bands", "strategy_version")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    DISCHARGE_BANDS_FIELD_NUMBER: _ClassVar[int]
    CHARGE_BANDS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_VERSION_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    portfolio: str
    region: str
    interval_end: str
    discharge_bands: _containers.RepeatedCompositeFieldContainer[PriceBand]
    charge_bands: _containers.RepeatedCompositeFieldContainer[PriceBand]
    strategy_version: str
    def __init__(self, bid_id: _Optional[str] = ..., portfolio: _Optional[str] = ..., region: _Optional[str] = ..., interval_end: _Optional[str] = ..., discharge_bands: _Optional[_Iterable[_Union[PriceBand, _Mapping]]] = ..., charge_bands: _Optional[_Iterable[_Union[PriceBand, _Mapping]]] = ..., strategy_version: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("region", "as_of", "lookback_intervals", "portfolio")
    REGION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_INTERVALS_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    region: str
    as_of: str
    lookback_intervals: int
    portfolio: str
    def __init__(self, region: _Optional[str] = ..., as_of: _Optional[str] = ..., lookback_intervals: _Optional[int] = ..., portfolio: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("bid", "bids", "as_of")
    BID_FIELD_NUMBER: _ClassVar[int]
    BIDS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    bid: EnergyBid
    bids: _containers.RepeatedCompositeFieldContainer[MarketBid]
    as_of: str
    def __init__(self, bid: _Optional[_Union[EnergyBid, _Mapping]] = ..., bids: _Optional[_Iterable[_Union[MarketBid, _Mapping]]] = ..., as_of: _Optional[str] = ...) -> None: ...

class SubmitBidsResponse(_message.Message):
    __slots__ = ("bid_id", "accepted", "duplicate", "accepted_at", "acceptances")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCES_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    accepted: bool
    duplicate: bool
    accepted_at: str
    acceptances: _containers.RepeatedCompositeFieldContainer[BidAcceptance]
    def __init__(self, bid_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., accepted_at: _Optional[str] = ..., acceptances: _Optional[_Iterable[_Union[BidAcceptance, _Mapping]]] = ...) -> None: ...

class SubmitBidStreamRequest(_message.Message):
    __slots__ = ("bid", "as_of", "sequence")
    BID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    bid: MarketBid
    as_of: str
    sequence: int
    def __init__(self, bid: _Optional[_Union[MarketBid, _Mapping]] = ..., as_of: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class SubmitBidStreamResponse(_message.Message):
    __slots__ = ("answers",)
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[BidAnswer]
    def __init__(self, answers: _Optional[_Iterable[_Union[BidAnswer, _Mapping]]] = ...) -> None: ...

class BidAnswer(_message.Message):
    __slots__ = ("sequence", "bid_id", "acceptance", "rejection")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    bid_id: str
    acceptance: BidAcceptance
    rejection: BidRejection
    def __init__(self, sequence: _Optional[int] = ..., bid_id: _Optional[str] = ..., acceptance: _Optional[_Union[BidAcceptance, _Mapping]] = ..., rejection: _Optional[_Union[BidRejection, _Mapping]] = ...) -> None: ...

class BidRejection(_message.Message):
    __slots__ = ("code", "message", "violations", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    violations: _containers.RepeatedCompositeFieldContainer[BidViolation]
    reason: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[BidViolation, _Mapping]]] = ..., reason: _Optional[str] = ...) -> None: ...

class GetAwardsRequest(_message.Message):
    __slots__ = ("bid_id",)
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    def __init__(self, bid_id: _Optional[str] = ...) -> None: ...

class GetAwardsResponse(_message.Message):
    __slots__ = ("award", "market_award")
    AWARD_FIELD_NUMBER: _ClassVar[int]
    MARKET_AWARD_FIELD_NUMBER: _ClassVar[int]
    award: Award
    market_award: MarketAward
    def __init__(self, award: _Optional[_Union[Award, _Mapping]] = ..., market_award: _Optional[_Union[MarketAward, _Mapping]] = ...) -> None: ...

class GetBidRequest(_message.Message):
    __slots__ = ("bid_id",)
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    def __init__(self, bid_id: _Optional[str] = ...) -> None: ...

class GetBidResponse(_message.Message):
    __slots__ = ("acceptance",)
    ACCEPTANCE_FIELD_NUMBER: _ClassVar[int]
    acceptance: BidAcceptance
    def __init__(self, acceptance: _Optional[_Union[BidAcceptance, _Mapping]] = ...) -> None: ...

class Band(_message.Message):
    __slots__ = ("price_per_mwh", "quantity_mw")
    PRICE_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_MW_FIELD_NUMBER: _ClassVar[int]
    price_per_mwh: float
    quantity_mw: float
    def __init__(self, price_per_mwh: _Optional[float] = ..., quantity_mw: _Optional[float] = ...) -> None: ...

class Trapezium(_message.Message):
    __slots__ = ("enablement_min_mw", "low_breakpoint_mw", "high_breakpoint_mw", "enablement_max_mw")
    ENABLEMENT_MIN_MW_FIELD_NUMBER: _ClassVar[int]
    LOW_BREAKPOINT_MW_FIELD_NUMBER: _ClassVar[int]
    HIGH_BREAKPOINT_MW_FIELD_NUMBER: _ClassVar[int]
    ENABLEMENT_MAX_MW_FIELD_NUMBER: _ClassVar[int]
    enablement_min_mw: float
    low_breakpoint_mw: float
    high_breakpoint_mw: float
    enablement_max_mw: float
    def __init__(self, enablement_min_mw: _Optional[float] = ..., low_breakpoint_mw: _Optional[float] = ..., high_breakpoint_mw: _Optional[float] = ..., enablement_max_mw: _Optional[float] = ...) -> None: ...

class ProductOffer(_message.Message):
    __slots__ = ("product", "side", "bands", "max_availability_mw", "trapezium")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    BANDS_FIELD_NUMBER: _ClassVar[int]
    MAX_AVAILABILITY_MW_FIELD_NUMBER: _ClassVar[int]
    TRAPEZIUM_FIELD_NUMBER: _ClassVar[int]
    product: Product
    side: Side
    bands: _containers.RepeatedCompositeFieldContainer[Band]
    max_availability_mw: float
    trapezium: Trapezium
    def __init__(self, product: _Optional[_Union[Product, str]] = ..., side: _Optional[_Union[Side, str]] = ..., bands: _Optional[_Iterable[_Union[Band, _Mapping]]] = ..., max_availability_mw: _Optional[float] = ..., trapezium: _Optional[_Union[Trapezium, _Mapping]] = ...) -> None: ...

class Rebid(_message.Message):
    __slots__ = ("reason", "event_time", "category")
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    reason: str
    event_time: str
    category: str
    def __init__(self, reason: _Optional[str] = ..., event_time: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class MarketBid(_message.Message):
    __slots__ = ("bid_id", "revision", "portfolio", "market", "run", "location", "interval_end", "offers", "rebid", "strategy_version")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    MARKET_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    REBID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_VERSION_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    revision: int
    portfolio: str
    market: Market
    run: MarketRun
    location: str
    interval_end: str
    offers: _containers.RepeatedCompositeFieldContainer[ProductOffer]
    rebid: Rebid
    strategy_version: str
    def __init__(self, bid_id: _Optional[str] = ..., revision: _Optional[int] = ..., portfolio: _Optional[str] = ..., market: _Optional[_Union[Market, str]] = ..., run: _Optional[_Union[MarketRun, str]] = ..., location: _Optional[str] = ..., interval_end: _Optional[str] = ..., offers: _Optional[_Iterable[_Union[ProductOffer, _Mapping]]] = ..., rebid: _Optional[_Union[Rebid, _Mapping]] = ..., strategy_version: _Optional[str] = ...) -> None: ...

class BidAcceptance(_message.Message):
    __slots__ = ("bid_id", "accepted", "duplicate", "accepted_at", "market_time", "gate_closure", "revision", "supersedes_bid_id")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    MARKET_TIME_FIELD_NUMBER: _ClassVar[int]
    GATE_CLOSURE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDES_BID_ID_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    accepted: bool
    duplicate: bool
    accepted_at: str
    market_time: str
    gate_closure: str
    revision: int
    supersedes_bid_id: str
    def __init__(self, bid_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., accepted_at: _Optional[str] = ..., market_time: _Optional[str] = ..., gate_closure: _Optional[str] = ..., revision: _Optional[int] = ..., supersedes_bid_id: _Optional[str] = ...) -> None: ...

class ProductAward(_message.Message):
    __slots__ = ("product", "side", "quantity_mw", "clearing_price_per_mwh")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_MW_FIELD_NUMBER: _ClassVar[int]
    CLEARING_PRICE_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    product: Product
    side: Side
    quantity_mw: float
    clearing_price_per_mwh: float
    def __init__(self, product: _Optional[_Union[Product, str]] = ..., side: _Optional[_Union[Side, str]] = ..., quantity_mw: _Optional[float] = ..., clearing_price_per_mwh: _Optional[float] = ...) -> None: ...

class SettlementLine(_message.Message):
    __slots__ = ("product", "side", "quantity_mw", "clearing_price_per_mwh", "amount")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_MW_FIELD_NUMBER: _ClassVar[int]
    CLEARING_PRICE_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    side: Side
    quantity_mw: float
    clearing_price_per_mwh: float
    amount: float
    def __init__(self, product: _Optional[_Union[Product, str]] = ..., side: _Optional[_Union[Side, str]] = ..., quantity_mw: _Optional[float] = ..., clearing_price_per_mwh: _Optional[float] = ..., amount: _Optional[float] = ...) -> None: ...

class IntervalSettlement(_message.Message):
    __slots__ = ("currency", "interval_hours", "lines", "total_amount")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_HOURS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    currency: str
    interval_hours: float
    lines: _containers.RepeatedCompositeFieldContainer[SettlementLine]
    total_amount: float
    def __init__(self, currency: _Optional[str] = ..., interval_hours: _Optional[float] = ..., lines: _Optional[_Iterable[_Union[SettlementLine, _Mapping]]] = ..., total_amount: _Optional[float] = ...) -> None: ...

class MarketAward(_message.Message):
    __slots__ = ("bid_id", "revision", "portfolio", "market", "run", "location", "interval_end", "products", "settlement")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    MARKET_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    revision: int
    portfolio: str
    market: Market
    run: MarketRun
    location: str
    interval_end: str
    products: _containers.RepeatedCompositeFieldContainer[ProductAward]
    settlement: IntervalSettlement
    def __init__(self, bid_id: _Optional[str] = ..., revision: _Optional[int] = ..., portfolio: _Optional[str] = ..., market: _Optional[_Union[Market, str]] = ..., run: _Optional[_Union[MarketRun, str]] = ..., location: _Optional[str] = ..., interval_end: _Optional[str] = ..., products: _Optional[_Iterable[_Union[ProductAward, _Mapping]]] = ..., settlement: _Optional[_Union[IntervalSettlement, _Mapping]] = ...) -> None: ...

class StreamMarketDataRequest(_message.Message):
    __slots__ = ("location", "run", "products", "after_interval_end", "max_intervals", "portfolio")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    AFTER_INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    MAX_INTERVALS_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    location: str
    run: MarketRun
    products: _containers.RepeatedScalarFieldContainer[Product]
    after_interval_end: str
    max_intervals: int
    portfolio: str
    def __init__(self, location: _Optional[str] = ..., run: _Optional[_Union[MarketRun, str]] = ..., products: _Optional[_Iterable[_Union[Product, str]]] = ..., after_interval_end: _Optional[str] = ..., max_intervals: _Optional[int] = ..., portfolio: _Optional[str] = ...) -> None: ...

class ProductPrice(_message.Message):
    __slots__ = ("product", "price_per_mwh")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    product: Product
    price_per_mwh: float
    def __init__(self, product: _Optional[_Union[Product, str]] = ..., price_per_mwh: _Optional[float] = ...) -> None: ...

class IntervalPrices(_message.Message):
    __slots__ = ("location", "run", "interval_end", "prices", "currency")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    location: str
    run: MarketRun
    interval_end: str
    prices: _containers.RepeatedCompositeFieldContainer[ProductPrice]
    currency: str
    def __init__(self, location: _Optional[str] = ..., run: _Optional[_Union[MarketRun, str]] = ..., interval_end: _Optional[str] = ..., prices: _Optional[_Iterable[_Union[ProductPrice, _Mapping]]] = ..., currency: _Optional[str] = ...) -> None: ...

class GetMarketClockRequest(_message.Message):
    __slots__ = ("location", "portfolio")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_FIELD_NUMBER: _ClassVar[int]
    location: str
    portfolio: str
    def __init__(self, location: _Optional[str] = ..., portfolio: _Optional[str] = ...) -> None: ...

class GetMarketClockResponse(_message.Message):
    __slots__ = ("mode", "market_time")
    MODE_FIELD_NUMBER: _ClassVar[int]
    MARKET_TIME_FIELD_NUMBER: _ClassVar[int]
    mode: str
    market_time: str
    def __init__(self, mode: _Optional[str] = ..., market_time: _Optional[str] = ...) -> None: ...

class AdvanceMarketClockRequest(_message.Message):
    __slots__ = ("to",)
    TO_FIELD_NUMBER: _ClassVar[int]
    to: str
    def __init__(self, to: _Optional[str] = ...) -> None: ...

class AdvanceMarketClockResponse(_message.Message):
    __slots__ = ("market_time",)
    MARKET_TIME_FIELD_NUMBER: _ClassVar[int]
    market_time: str
    def __init__(self, market_time: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: ServingStatus
    def __init__(self, status: _Optional[_Union[ServingStatus, str]] = ...) -> None: ...

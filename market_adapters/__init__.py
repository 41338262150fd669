"""Markets, our side: one `MarketAdapter` per market (`nem_adapter.NemAdapter`,
`ercot_adapter.ErcotAdapter`) with its rules, bid format, validation (`rule_checks`, `nem`,
`violations`), price-taker clearing rules (`clearing`), the `autobidder.market.v1` wire codecs
and the market API client (`exchange_client`). See docs/markets.md.

Where are a bid's price bands built? From the optimizer's curves (`optimization.bids`) into the
market's format by `NemAdapter.bid_from_curves` (`nem_adapter`). May import: the core and
`protogen`. Public names: `__all__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobidder import load_export

if TYPE_CHECKING:
    from market_adapters.adapter import MarketAdapter as MarketAdapter
    from market_adapters.bids import (
        IntervalPrices as IntervalPrices,
        Market as Market,
        MarketAward as MarketAward,
        MarketBid as MarketBid,
        MarketRun as MarketRun,
        Product as Product,
        UnitLimits as UnitLimits,
        award_from_dict as award_from_dict,
        award_to_dict as award_to_dict,
        bid_from_dict as bid_from_dict,
        bid_id_for as bid_id_for,
        canonical_json as canonical_json,
        expected_bid_id as expected_bid_id,
    )
    from market_adapters.clearing import (
        MissingPriceError as MissingPriceError,
        clear_energy_bid as clear_energy_bid,
    )
    from market_adapters.ercot_adapter import ErcotAdapter as ErcotAdapter
    from market_adapters.exchange_client import (
        BidConflictError as BidConflictError,
        BidRejectedError as BidRejectedError,
        ExchangeAccessError as ExchangeAccessError,
        ExchangeClient as ExchangeClient,
        ExchangeRequestError as ExchangeRequestError,
        UnknownBidError as UnknownBidError,
    )
    from market_adapters.market_codec import (
        ERROR_REASON_METADATA_KEY as ERROR_REASON_METADATA_KEY,
        SUPERSEDED_BY_METADATA_KEY as SUPERSEDED_BY_METADATA_KEY,
        decode_instant as decode_instant,
        interval_prices_to_proto as interval_prices_to_proto,
        market_award_to_proto as market_award_to_proto,
        market_bid_from_proto as market_bid_from_proto,
        product_of as product_of,
        run_of as run_of,
    )
    from market_adapters.nem import (
        MARKET_PRICE_FLOOR_AUD_PER_MWH as MARKET_PRICE_FLOOR_AUD_PER_MWH,
        NEM_PRICE_CAPS as NEM_PRICE_CAPS,
        PriceCapTable as PriceCapTable,
        PriceCapUnknownError as PriceCapUnknownError,
        energy_bid_violations as energy_bid_violations,
        in_nem_format as in_nem_format,
        price_cap_aud_per_mwh as price_cap_aud_per_mwh,
        validate_energy_bid as validate_energy_bid,
    )
    from market_adapters.nem_adapter import (
        NemAdapter as NemAdapter,
        canonical_bid_json as canonical_bid_json,
        legacy_revision as legacy_revision,
        market_bid_of as market_bid_of,
    )
    from market_adapters.nem_codec import (
        VIOLATIONS_METADATA_KEY as VIOLATIONS_METADATA_KEY,
        award_to_proto as award_to_proto,
        energy_bid_from_proto as energy_bid_from_proto,
        format_instant as format_instant,
        market_snapshot_to_proto as market_snapshot_to_proto,
        violations_to_proto as violations_to_proto,
    )
    from market_adapters.nem_cooptimise import (
        CooptimisationError as CooptimisationError,
        clear_nem_bid_cooptimised as clear_nem_bid_cooptimised,
        cooptimised_awards as cooptimised_awards,
    )
    from market_adapters.nem_format import (
        convexity_violations as convexity_violations,
        is_convex as is_convex,
    )
    from market_adapters.nem_reserves import (
        battery_reserve_offers as battery_reserve_offers,
        lodged_reserve_offers as lodged_reserve_offers,
        nem_product as nem_product,
        product_name as product_name,
        product_offers as product_offers,
        reserve_awards as reserve_awards,
    )
    from market_adapters.rule_checks import (
        rebid_event_violations as rebid_event_violations,
        rebid_violations as rebid_violations,
        time_usable as time_usable,
    )
    from market_adapters.violations import (
        BidValidationError as BidValidationError,
        BidViolation as BidViolation,
        Rule as Rule,
        clip as clip,
        summarize as summarize,
    )

__all__ = [
    "ERROR_REASON_METADATA_KEY",
    "MARKET_PRICE_FLOOR_AUD_PER_MWH",
    "NEM_PRICE_CAPS",
    "SUPERSEDED_BY_METADATA_KEY",
    "VIOLATIONS_METADATA_KEY",
    "BidConflictError",
    "BidRejectedError",
    "BidValidationError",
    "BidViolation",
    "CooptimisationError",
    "ErcotAdapter",
    "ExchangeAccessError",
    "ExchangeClient",
    "ExchangeRequestError",
    "IntervalPrices",
    "Market",
    "MarketAdapter",
    "MarketAward",
    "MarketBid",
    "MarketRun",
    "MissingPriceError",
    "NemAdapter",
    "PriceCapTable",
    "PriceCapUnknownError",
    "Product",
    "Rule",
    "UnitLimits",
    "UnknownBidError",
    "award_from_dict",
    "award_to_dict",
    "award_to_proto",
    "battery_reserve_offers",
    "bid_from_dict",
    "bid_id_for",
    "canonical_bid_json",
    "canonical_json",
    "clear_energy_bid",
    "clear_nem_bid_cooptimised",
    "clip",
    "convexity_violations",
    "cooptimised_awards",
    "decode_instant",
    "energy_bid_from_proto",
    "energy_bid_violations",
    "expected_bid_id",
    "format_instant",
    "in_nem_format",
    "interval_prices_to_proto",
    "is_convex",
    "legacy_revision",
    "lodged_reserve_offers",
    "market_award_to_proto",
    "market_bid_from_proto",
    "market_bid_of",
    "market_snapshot_to_proto",
    "nem_product",
    "price_cap_aud_per_mwh",
    "product_name",
    "product_of",
    "product_offers",
    "rebid_event_violations",
    "rebid_violations",
    "reserve_awards",
    "run_of",
    "summarize",
    "time_usable",
    "validate_energy_bid",
    "violations_to_proto",
]

_EXPORTS = {
    "market_adapters.adapter": ("MarketAdapter",),
    "market_adapters.bids": (
        "IntervalPrices",
        "Market",
        "MarketAward",
        "MarketBid",
        "MarketRun",
        "Product",
        "UnitLimits",
        "award_from_dict",
        "award_to_dict",
        "bid_from_dict",
        "bid_id_for",
        "canonical_json",
        "expected_bid_id",
    ),
    "market_adapters.clearing": (
        "MissingPriceError",
        "clear_energy_bid",
    ),
    "market_adapters.ercot_adapter": ("ErcotAdapter",),
    "market_adapters.exchange_client": (
        "BidConflictError",
        "BidRejectedError",
        "ExchangeAccessError",
        "ExchangeClient",
        "ExchangeRequestError",
        "UnknownBidError",
    ),
    "market_adapters.market_codec": (
        "ERROR_REASON_METADATA_KEY",
        "SUPERSEDED_BY_METADATA_KEY",
        "decode_instant",
        "interval_prices_to_proto",
        "market_award_to_proto",
        "market_bid_from_proto",
        "product_of",
        "run_of",
    ),
    "market_adapters.nem": (
        "MARKET_PRICE_FLOOR_AUD_PER_MWH",
        "NEM_PRICE_CAPS",
        "PriceCapTable",
        "PriceCapUnknownError",
        "energy_bid_violations",
        "in_nem_format",
        "price_cap_aud_per_mwh",
        "validate_energy_bid",
    ),
    "market_adapters.nem_adapter": (
        "NemAdapter",
        "canonical_bid_json",
        "legacy_revision",
        "market_bid_of",
    ),
    "market_adapters.nem_cooptimise": (
        "CooptimisationError",
        "clear_nem_bid_cooptimised",
        "cooptimised_awards",
    ),
    "market_adapters.nem_reserves": (
        "battery_reserve_offers",
        "lodged_reserve_offers",
        "nem_product",
        "product_name",
        "product_offers",
        "reserve_awards",
    ),
    "market_adapters.nem_format": (
        "convexity_violations",
        "is_convex",
    ),
    "market_adapters.nem_codec": (
        "VIOLATIONS_METADATA_KEY",
        "award_to_proto",
        "energy_bid_from_proto",
        "format_instant",
        "market_snapshot_to_proto",
        "violations_to_proto",
    ),
    "market_adapters.rule_checks": (
        "rebid_event_violations",
        "rebid_violations",
        "time_usable",
    ),
    "market_adapters.violations": (
        "BidValidationError",
        "BidViolation",
        "Rule",
        "clip",
        "summarize",
    ),
}


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (keeps `import market_adapters` cheap)."""
    return load_export(__name__, _EXPORTS, name)

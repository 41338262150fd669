"""Drive nempy (the open-source NEM dispatch engine, pinned 3.0.3) with the project's NEM bids.

One region, one interval. The battery is a bidirectional unit (nempy: the unit twice in
`unit_info`, dispatch types "generator" and "load"); its energy SUPPLY offer is the generator side,
its DEMAND bid the load side, and each FCAS offer goes in with its trapezium on the net-power axis
(contingency services as one offer for both sides, as nempy and AEMO take them; a regulation offer
with a `Side` of DEMAND, if any, as the load side's). A price setter `G` offers 1,000 MW of energy at
the price level asked and every FCAS service at the FCAS price level, so (with 500 MW of demand and
requirements of 50 MW per FCAS service) `G` is marginal and the region's prices are the levels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from market_adapters.bids import MarketBid, Product, Side
from market_adapters.nem_fcas import FCAS_SERVICES

DEMAND_MW = 500.0
SETTER_MW = 1000.0
REQUIREMENT_MW = 50.0
REGULATION = frozenset({Product.NEM_RAISE_REG, Product.NEM_LOWER_REG})


def service_name(product: Product) -> str:
    """nempy's name of a product: `nem_raise_6s` -> `raise_6s`, energy -> `energy`."""
    return "energy" if product == Product.ENERGY else str(product).removeprefix("nem_")


@dataclass(frozen=True)
class Dispatch:
    generator_mw: float  # the battery's discharge
    load_mw: float  # the battery's charge
    fcas_mw: Mapping[str, float]  # enablement by nempy service name (both sides summed)
    energy_price: float
    fcas_prices: Mapping[str, float]

    @property
    def net_mw(self) -> float:
        return self.generator_mw - self.load_mw


def dispatch(bid: MarketBid, energy_price: float, fcas_price: float) -> Dispatch:
    """Dispatch `bid` (the battery, unit `B`) against the price setter at these price levels."""
    from nempy import markets

    rows: list[dict[str, object]] = []
    prices: list[dict[str, object]] = []
    max_avail: list[dict[str, object]] = []
    contingency: list[dict[str, object]] = []
    regulation: list[dict[str, object]] = []
    services: set[str] = set()
    for offer in bid.offers:
        service = service_name(offer.product)
        side = "load" if offer.side == Side.DEMAND else "generator"
        volumes = {str(i + 1): float(b.quantity_mw) for i, b in enumerate(offer.bands)}
        band_prices = {str(i + 1): float(b.price_per_mwh) for i, b in enumerate(offer.bands)}
        rows.append({"unit": "B", "service": service, "dispatch_type": side, **volumes})
        prices.append({"unit": "B", "service": service, "dispatch_type": side, **band_prices})
        if offer.product in FCAS_SERVICES:
            services.add(service)
            trap = offer.trapezium
            assert trap is not None and offer.max_availability_mw is not None
            row = {
                "unit": "B",
                "service": service,
                "dispatch_type": side,
                "max_availability": float(offer.max_availability_mw),
                "enablement_min": float(trap.enablement_min_mw),
                "low_break_point": float(trap.low_breakpoint_mw),
                "high_break_point": float(trap.high_breakpoint_mw),
                "enablement_max": float(trap.enablement_max_mw),
            }
            max_avail.append({k: row[k] for k in ("unit", "service", "dispatch_type", "max_availability")})
            (regulation if offer.product in REGULATION else contingency).append(row)
    setter_bands = {str(i + 1): SETTER_MW if i == 0 else 0.0 for i in range(10)}
    rows.append({"unit": "G", "service": "energy", "dispatch_type": "generator", **setter_bands})
    prices.append(
        {
            "unit": "G",
            "service": "energy",
            "dispatch_type": "generator",
            **{str(i + 1): energy_price + i for i in range(10)},
        }
    )
    for service in sorted(services):
        rows.append({"unit": "G", "service": service, "dispatch_type": "generator", **setter_bands})
        prices.append(
            {
                "unit": "G",
                "service": service,
                "dispatch_type": "generator",
                **{str(i + 1): fcas_price + i for i in range(10)},
            }
        )
        trap = {
            "unit": "G",
            "service": service,
            "dispatch_type": "generator",
            "max_availability": SETTER_MW,
            "enablement_min": 0.0,
            "low_break_point": 0.0,
            "high_break_point": SETTER_MW,
            "enablement_max": SETTER_MW,
        }
        max_avail.append({k: trap[k] for k in ("unit", "service", "dispatch_type", "max_availability")})
        (regulation if service in ("raise_reg", "lower_reg") else contingency).append(trap)

    unit_info = pd.DataFrame(
        {
            "unit": ["B", "B", "G"],
            "region": ["SA1"] * 3,
            "dispatch_type": ["generator", "load", "generator"],
        }
    )
    market = markets.SpotMarket(market_regions=["SA1"], unit_info=unit_info)
    market.set_unit_volume_bids(pd.DataFrame(rows).fillna(0.0))
    market.set_unit_price_bids(pd.DataFrame(prices))
    market.set_demand_constraints(pd.DataFrame({"region": ["SA1"], "demand": [DEMAND_MW]}))
    if services:
        market.set_fcas_max_availability(pd.DataFrame(max_avail))
        market.set_fcas_requirements_constraints(
            pd.DataFrame(
                {
                    "set": [f"{s}_sa1" for s in sorted(services)],
                    "region": ["SA1"] * len(services),
                    "service": sorted(services),
                    "volume": [REQUIREMENT_MW] * len(services),
                }
            )
        )
    if contingency:
        market.set_joint_capacity_constraints(pd.DataFrame(contingency))
    if regulation:
        market.set_energy_and_regulation_capacity_constraints(pd.DataFrame(regulation))
    market.dispatch()
    units = market.get_unit_dispatch()
    mine = units[units["unit"] == "B"]

    def total(service: str, dispatch_type: str | None = None) -> float:
        rows_ = mine[mine["service"] == service]
        if dispatch_type is not None:
            rows_ = rows_[rows_["dispatch_type"] == dispatch_type]
        return float(rows_["dispatch"].abs().sum())

    region_prices = market.get_energy_prices()
    fcas = market.get_fcas_prices() if services else pd.DataFrame(columns=["service", "price"])
    return Dispatch(
        generator_mw=total("energy", "generator"),
        load_mw=total("energy", "load"),
        fcas_mw={s: total(s) for s in services},
        energy_price=float(region_prices["price"].iloc[0]),
        fcas_prices={str(r.service): float(r.price) for r in fcas.itertuples()},
    )


__all__ = ["DEMAND_MW", "REQUIREMENT_MW", "Dispatch", "dispatch", "service_name"]

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from market_adapters.bids import MarketBid, Product, Side
from market_adapters.nem_fcas import FCAS_SERVICES

DEMAND_MW = 500.0
SETTER_MW = 1000.0
REQUIREMENT_MW = 50.0
REGULATION = frozenset({Product.NEM_RAISE_REG, Product.NEM_LOWER_REG})
LOWER_CONTINGENCY = frozenset({"lower_1s", "lower_6s", "lower_60s", "lower_5min"})


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
    """Dispatch `bid` (the battery) against the price setter at these price levels."""
    [result] = dispatch_levels(bid, [(energy_price, fcas_price)])
    return result


def dispatch_levels(bid: MarketBid, levels: Sequence[tuple[float, float]]) -> list[Dispatch]:
    """`dispatch` at each (energy price, FCAS price) level, all in one nempy run: one region per
    level (no interconnectors, so the regions clear independently), each with its own copy of the
    battery and of the price setter. nempy's cost is mostly building its tables, so this is several
    times faster than one run per level."""
    from nempy import markets

    regions = [f"R{k}" for k in range(len(levels))]
    rows: list[dict[str, object]] = []
    prices: list[dict[str, object]] = []
    max_avail: list[dict[str, object]] = []
    contingency: list[dict[str, object]] = []
    regulation: list[dict[str, object]] = []
    services: set[str] = set()
    units: list[tuple[str, str, str]] = []
    setter_bands = {str(i + 1): SETTER_MW if i == 0 else 0.0 for i in range(10)}
    for k, (energy_price, fcas_price) in enumerate(levels):
        battery, setter, region = f"B{k}", f"G{k}", regions[k]
        units += [(battery, region, "generator"), (battery, region, "load"), (setter, region, "generator")]
        for offer in bid.offers:
            service = service_name(offer.product)
            side = "load" if offer.side == Side.DEMAND else "generator"
            key = {"unit": battery, "service": service, "dispatch_type": side}
            rows.append({**key, **{str(i + 1): float(b.quantity_mw) for i, b in enumerate(offer.bands)}})
            prices.append({**key, **{str(i + 1): float(b.price_per_mwh) for i, b in enumerate(offer.bands)}})
            if offer.product in FCAS_SERVICES:
                services.add(service)
                trap = offer.trapezium
                assert trap is not None and offer.max_availability_mw is not None
                row = {
                    **key,
                    "max_availability": float(offer.max_availability_mw),
                    "enablement_min": float(trap.enablement_min_mw),
                    "low_break_point": float(trap.low_breakpoint_mw),
                    "high_break_point": float(trap.high_breakpoint_mw),
                    "enablement_max": float(trap.enablement_max_mw),
                }
                max_avail.append({**key, "max_availability": row["max_availability"]})
                (regulation if offer.product in REGULATION else contingency).append(row)
        key = {"unit": setter, "service": "energy", "dispatch_type": "generator"}
        rows.append({**key, **setter_bands})
        prices.append({**key, **{str(i + 1): energy_price + i for i in range(10)}})
        for service in sorted({service_name(o.product) for o in bid.offers} - {"energy"}):
            key = {"unit": setter, "service": service, "dispatch_type": "generator"}
            rows.append({**key, **setter_bands})
            prices.append({**key, **{str(i + 1): fcas_price + i for i in range(10)}})
            setter_trap: dict[str, object] = {
                **key,
                "max_availability": SETTER_MW,
                "enablement_min": 0.0,
                "low_break_point": 0.0,
                "high_break_point": SETTER_MW,
                "enablement_max": SETTER_MW,
            }
            max_avail.append({**key, "max_availability": SETTER_MW})
            (regulation if service in ("raise_reg", "lower_reg") else contingency).append(setter_trap)

    unit_info = pd.DataFrame(units, columns=["unit", "region", "dispatch_type"])
    market = markets.SpotMarket(market_regions=regions, unit_info=unit_info)
    market.set_unit_volume_bids(pd.DataFrame(rows).fillna(0.0))
    market.set_unit_price_bids(pd.DataFrame(prices))
    market.set_demand_constraints(pd.DataFrame({"region": regions, "demand": [DEMAND_MW] * len(regions)}))
    if services:
        market.set_fcas_max_availability(pd.DataFrame(max_avail))
        pairs = [(r, s) for r in regions for s in sorted(services)]
        market.set_fcas_requirements_constraints(
            pd.DataFrame(
                {
                    "set": [f"{s}_{r}" for r, s in pairs],
                    "region": [r for r, _ in pairs],
                    "service": [s for _, s in pairs],
                    "volume": [REQUIREMENT_MW] * len(pairs),
                }
            )
        )
    if contingency:
        market.set_joint_capacity_constraints(pd.DataFrame(contingency))
    if regulation:
        market.set_energy_and_regulation_capacity_constraints(pd.DataFrame(regulation))
    # nempy 3.0.3 maps a bidirectional unit's LOAD-side lower regulation into the lower slope of
    # its contingency joint-capacity constraints with +1 (the GEN side's with -1), so it lets a
    # charging battery hold lower regulation on its LOAD side and a lower contingency service
    # from the same headroom. AEMO's FCAS model counts both sides' regulation; added here as
    # generic constraints on the unit's totals: net energy - slope x contingency - lower_reg
    # >= enablement_min.
    generic = [
        row
        for row in contingency
        if str(row["unit"]).startswith("B")
        and row["service"] in LOWER_CONTINGENCY
        and any(o.product == Product.NEM_LOWER_REG and o.side == Side.DEMAND for o in bid.offers)
    ]
    if generic:
        names = [f"joint_{r['unit']}_{r['service']}" for r in generic]
        market.set_generic_constraints(
            pd.DataFrame(
                {"set": names, "type": [">="] * len(names), "rhs": [r["enablement_min"] for r in generic]}
            )
        )
        coefficients: list[dict[str, object]] = []
        for name, r in zip(names, generic, strict=True):
            avail = float(r["max_availability"])  # type: ignore[arg-type]
            slope = (float(r["low_break_point"]) - float(r["enablement_min"])) / avail if avail > 0 else 0.0  # type: ignore[arg-type]
            coefficients += [
                {"set": name, "unit": r["unit"], "service": "energy", "coefficient": 1.0},
                {"set": name, "unit": r["unit"], "service": r["service"], "coefficient": -slope},
                {"set": name, "unit": r["unit"], "service": "lower_reg", "coefficient": -1.0},
            ]
        market.link_units_to_generic_constraints(pd.DataFrame(coefficients))
    market.dispatch()
    dispatched = market.get_unit_dispatch()
    energy_prices = market.get_energy_prices().set_index("region")["price"]
    fcas_prices = (
        market.get_fcas_prices() if services else pd.DataFrame(columns=["region", "service", "price"])
    )

    out = []
    for k, region in enumerate(regions):
        mine = dispatched[dispatched["unit"] == f"B{k}"]

        def total(service: str, dispatch_type: str | None = None, mine: pd.DataFrame = mine) -> float:
            rows_ = mine[mine["service"] == service]
            if dispatch_type is not None:
                rows_ = rows_[rows_["dispatch_type"] == dispatch_type]
            return float(rows_["dispatch"].abs().sum())

        here = fcas_prices[fcas_prices["region"] == region]
        out.append(
            Dispatch(
                generator_mw=total("energy", "generator"),
                load_mw=total("energy", "load"),
                fcas_mw={s: total(s) for s in services},
                energy_price=float(energy_prices[region]),
                fcas_prices={str(r.service): float(r.price) for r in here.itertuples()},
            )
        )
    return out


__all__ = ["DEMAND_MW", "REQUIREMENT_MW", "Dispatch", "dispatch", "dispatch_levels", "service_name"]

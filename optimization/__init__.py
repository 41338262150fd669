"""Co-optimization of energy and ancillary services (Pyomo + HiGHS), warm model caches, bid
curves from a schedule (`bids`) and the optimize queue stage (`queue_handler`). See
docs/optimization.md.

May import: the core (`autobidder`). Public names: `__all__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobidder import load_export

if TYPE_CHECKING:
    from optimization.arbitrage import (
        optimize as optimize,
        perfect_foresight_revenue_aud as perfect_foresight_revenue_aud,
        stored_energy_value_by_perturbation as stored_energy_value_by_perturbation,
    )
    from optimization.bids import (
        build_energy_bid as build_energy_bid,
        build_reserve_offers as build_reserve_offers,
    )
    from optimization.cache import ModelCache as ModelCache
    from optimization.problem import (
        ArbitrageProblem as ArbitrageProblem,
        FloatArray as FloatArray,
        OptimizationError as OptimizationError,
        OptimizerSettings as OptimizerSettings,
        RiskMode as RiskMode,
        SolverFailedError as SolverFailedError,
        aggregate_portfolio as aggregate_portfolio,
        check_feasibility as check_feasibility,
        prepare_problem as prepare_problem,
    )
    from optimization.products import (
        NEM_FCAS_PRICE_COLUMNS as NEM_FCAS_PRICE_COLUMNS,
        Direction as Direction,
        products_named as products_named,
    )
    from optimization.queue_handler import handle_optimize_request as handle_optimize_request
    from optimization.results import extract_schedule as extract_schedule
    from optimization.solve import SolverOptions as SolverOptions
    from optimization.strategy_settings import (
        RiskSettingError as RiskSettingError,
        forecast_for_risk as forecast_for_risk,
        optimizer_settings as optimizer_settings,
        value_curve_settings as value_curve_settings,
    )
    from optimization.value_bids import (
        DailyLimit as DailyLimit,
        build_value_curve_bid as build_value_curve_bid,
        convexity_violation as convexity_violation,
        plan_portfolio_curve as plan_portfolio_curve,
        portfolio_curve_plans as portfolio_curve_plans,
        portfolio_storage as portfolio_storage,
        resolve_convexity as resolve_convexity,
        withdraw_convexity_overlap as withdraw_convexity_overlap,
    )
    from optimization.value_curve import (
        CycleBudget as CycleBudget,
        PlanCarry as PlanCarry,
        PriceDistribution as PriceDistribution,
        StorageModel as StorageModel,
        ValueCurve as ValueCurve,
        ValueCurveError as ValueCurveError,
        ValueCurveSettings as ValueCurveSettings,
    )
    from optimization.value_planning import (
        ValueCurvePlans as ValueCurvePlans,
        plan_value_curve as plan_value_curve,
    )

__all__ = [
    "NEM_FCAS_PRICE_COLUMNS",
    "ArbitrageProblem",
    "CycleBudget",
    "DailyLimit",
    "Direction",
    "FloatArray",
    "ModelCache",
    "OptimizationError",
    "OptimizerSettings",
    "PlanCarry",
    "PriceDistribution",
    "RiskMode",
    "RiskSettingError",
    "SolverFailedError",
    "SolverOptions",
    "StorageModel",
    "ValueCurve",
    "ValueCurveError",
    "ValueCurvePlans",
    "ValueCurveSettings",
    "aggregate_portfolio",
    "build_energy_bid",
    "build_reserve_offers",
    "build_value_curve_bid",
    "check_feasibility",
    "convexity_violation",
    "extract_schedule",
    "forecast_for_risk",
    "handle_optimize_request",
    "optimize",
    "optimizer_settings",
    "perfect_foresight_revenue_aud",
    "plan_portfolio_curve",
    "plan_value_curve",
    "portfolio_curve_plans",
    "portfolio_storage",
    "prepare_problem",
    "products_named",
    "resolve_convexity",
    "stored_energy_value_by_perturbation",
    "value_curve_settings",
    "withdraw_convexity_overlap",
]

_EXPORTS = {
    "optimization.arbitrage": (
        "optimize",
        "perfect_foresight_revenue_aud",
        "stored_energy_value_by_perturbation",
    ),
    "optimization.bids": ("build_energy_bid", "build_reserve_offers"),
    "optimization.cache": ("ModelCache",),
    "optimization.problem": (
        "ArbitrageProblem",
        "FloatArray",
        "OptimizationError",
        "OptimizerSettings",
        "RiskMode",
        "SolverFailedError",
        "aggregate_portfolio",
        "check_feasibility",
        "prepare_problem",
    ),
    "optimization.products": ("NEM_FCAS_PRICE_COLUMNS", "Direction", "products_named"),
    "optimization.queue_handler": ("handle_optimize_request",),
    "optimization.results": ("extract_schedule",),
    "optimization.solve": ("SolverOptions",),
    "optimization.strategy_settings": (
        "RiskSettingError",
        "forecast_for_risk",
        "optimizer_settings",
        "value_curve_settings",
    ),
    "optimization.value_bids": (
        "DailyLimit",
        "build_value_curve_bid",
        "convexity_violation",
        "plan_portfolio_curve",
        "portfolio_curve_plans",
        "portfolio_storage",
        "resolve_convexity",
        "withdraw_convexity_overlap",
    ),
    "optimization.value_curve": (
        "CycleBudget",
        "PlanCarry",
        "PriceDistribution",
        "StorageModel",
        "ValueCurve",
        "ValueCurveError",
        "ValueCurveSettings",
    ),
    "optimization.value_planning": ("ValueCurvePlans", "plan_value_curve"),
}


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (keeps `import optimization` cheap)."""
    return load_export(__name__, _EXPORTS, name)

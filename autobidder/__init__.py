"""Autobidder's domain core: value types with units, clocks, configuration, the fact store,
queues, settlement and (in `autobidder.strategy`) versioned bid strategies.

May import: the standard library, third-party libraries and `protogen` only; nothing above it
(stage packages, `workflows`, `backtest`, `worker`). Other packages import it only through the
names in `__all__` (loaded on first use, so importing the package is cheap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobidder.exports import load_export

if TYPE_CHECKING:
    from autobidder.clock import (
        EARLIEST_WIRE_INSTANT as EARLIEST_WIRE_INSTANT,
        LATEST_WIRE_INSTANT as LATEST_WIRE_INSTANT,
        NEM_INTERVAL as NEM_INTERVAL,
        NEM_TZ as NEM_TZ,
        is_on_grid as is_on_grid,
        parse_instant as parse_instant,
        parse_wire_instant as parse_wire_instant,
        require_aware as require_aware,
        to_nem_time as to_nem_time,
        to_utc as to_utc,
    )
    from autobidder.config import (
        ConfigError as ConfigError,
        Settings as Settings,
        dump_settings as dump_settings,
        load_settings as load_settings,
        read_settings as read_settings,
    )
    from autobidder.domain import (
        Award as Award,
        BatteryDispatch as BatteryDispatch,
        BatterySpec as BatterySpec,
        BatteryTelemetry as BatteryTelemetry,
        CycleFallback as CycleFallback,
        Dispatch as Dispatch,
        EnergyBid as EnergyBid,
        FactKind as FactKind,
        Forecast as Forecast,
        MarketSnapshot as MarketSnapshot,
        PriceBand as PriceBand,
        PriceSeries as PriceSeries,
        QuantileSeries as QuantileSeries,
        Region as Region,
        ReserveEnablement as ReserveEnablement,
        Schedule as Schedule,
        SolveStats as SolveStats,
        TelemetrySnapshot as TelemetrySnapshot,
    )
    from autobidder.exit_codes import (
        EXIT_CODES_HELP as EXIT_CODES_HELP,
        EXIT_FAILED as EXIT_FAILED,
        EXIT_NOT_FOUND as EXIT_NOT_FOUND,
        EXIT_OK as EXIT_OK,
        EXIT_USAGE as EXIT_USAGE,
        NotFound as NotFound,
        exit_code_for as exit_code_for,
    )
    from autobidder.exports import load_export as load_export
    from autobidder.facts import (
        FactStore as FactStore,
        Provenance as Provenance,
        facts_table as facts_table,
        make_engine as make_engine,
    )
    from autobidder.grpc_client import GrpcClient as GrpcClient
    from autobidder.prices import (
        MissingColumnError as MissingColumnError,
        PriceColumns as PriceColumns,
        PriceDataError as PriceDataError,
        load_prices as load_prices,
        read_price_columns as read_price_columns,
        slice_prices as slice_prices,
    )
    from autobidder.queue_worker import Handler as Handler, QueueWorker as QueueWorker
    from autobidder.queues import (
        QueueMessage as QueueMessage,
        SqsQueues as SqsQueues,
        local_endpoint as local_endpoint,
    )
    from autobidder.settlement import settle as settle
    from autobidder.validation import (
        TomlFileError as TomlFileError,
        field_path as field_path,
        non_finite as non_finite,
        parse_toml as parse_toml,
        read_toml_file as read_toml_file,
        unknown_field_rule as unknown_field_rule,
    )

__version__ = "0.1.0"

__all__ = [
    "EARLIEST_WIRE_INSTANT",
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "LATEST_WIRE_INSTANT",
    "NEM_INTERVAL",
    "NEM_TZ",
    "Award",
    "BatteryDispatch",
    "BatterySpec",
    "BatteryTelemetry",
    "ConfigError",
    "CycleFallback",
    "Dispatch",
    "EnergyBid",
    "FactKind",
    "FactStore",
    "Forecast",
    "GrpcClient",
    "Handler",
    "MarketSnapshot",
    "MissingColumnError",
    "NotFound",
    "PriceBand",
    "PriceColumns",
    "PriceDataError",
    "PriceSeries",
    "Provenance",
    "QuantileSeries",
    "QueueMessage",
    "QueueWorker",
    "Region",
    "ReserveEnablement",
    "Schedule",
    "Settings",
    "SolveStats",
    "SqsQueues",
    "TelemetrySnapshot",
    "TomlFileError",
    "__version__",
    "dump_settings",
    "exit_code_for",
    "facts_table",
    "field_path",
    "is_on_grid",
    "load_export",
    "load_prices",
    "load_settings",
    "local_endpoint",
    "make_engine",
    "non_finite",
    "parse_instant",
    "parse_toml",
    "parse_wire_instant",
    "read_price_columns",
    "read_settings",
    "read_toml_file",
    "require_aware",
    "settle",
    "slice_prices",
    "to_nem_time",
    "to_utc",
    "unknown_field_rule",
]

_EXPORTS = {
    "autobidder.exit_codes": (
        "EXIT_CODES_HELP",
        "EXIT_FAILED",
        "EXIT_NOT_FOUND",
        "EXIT_OK",
        "EXIT_USAGE",
        "NotFound",
        "exit_code_for",
    ),
    "autobidder.exports": ("load_export",),
    "autobidder.clock": (
        "EARLIEST_WIRE_INSTANT",
        "LATEST_WIRE_INSTANT",
        "NEM_INTERVAL",
        "NEM_TZ",
        "is_on_grid",
        "parse_instant",
        "parse_wire_instant",
        "require_aware",
        "to_nem_time",
        "to_utc",
    ),
    "autobidder.config": (
        "ConfigError",
        "Settings",
        "dump_settings",
        "load_settings",
        "read_settings",
    ),
    "autobidder.domain": (
        "Award",
        "BatteryDispatch",
        "BatterySpec",
        "BatteryTelemetry",
        "CycleFallback",
        "Dispatch",
        "EnergyBid",
        "FactKind",
        "Forecast",
        "MarketSnapshot",
        "PriceBand",
        "PriceSeries",
        "QuantileSeries",
        "Region",
        "ReserveEnablement",
        "Schedule",
        "SolveStats",
        "TelemetrySnapshot",
    ),
    "autobidder.facts": (
        "FactStore",
        "Provenance",
        "facts_table",
        "make_engine",
    ),
    "autobidder.grpc_client": ("GrpcClient",),
    "autobidder.prices": (
        "MissingColumnError",
        "PriceColumns",
        "read_price_columns",
        "PriceDataError",
        "load_prices",
        "slice_prices",
    ),
    "autobidder.queue_worker": (
        "Handler",
        "QueueWorker",
    ),
    "autobidder.queues": (
        "QueueMessage",
        "SqsQueues",
        "local_endpoint",
    ),
    "autobidder.settlement": ("settle",),
    "autobidder.validation": (
        "TomlFileError",
        "field_path",
        "non_finite",
        "parse_toml",
        "read_toml_file",
        "unknown_field_rule",
    ),
}


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (keeps `import autobidder` cheap)."""
    return load_export(__name__, _EXPORTS, name)

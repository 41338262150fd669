"""Bid strategies: one TOML file per portfolio, validated into a frozen `Strategy`.

A strategy is what a trader decides and the code must not: which market, region and fleet node
to trade, which products, which forecaster (`name@version`), how much risk to take, what a cycle
of the battery costs, how many cycles a day it may do, how much energy to hold back, how to shape
the bid bands, and the safety limits that stop a bad bid leaving the building. See
docs/strategies.md for every field and strategies/sa1-vpp.toml for an example.

Validation reports EVERY broken rule at once, each as a `StrategyIssue` naming the field (dotted
path as in the file), the value found and the rule, so a file is fixed in one round trip::

    risk.quantile = 1.5: must be less than 1
    safety.max_mw: unknown field; did you mean 'max_mw_per_bid'?

Two strategies with the same content have the same `content_hash` whatever their TOML layout or
comments, which is how the store (autobidder/strategy/store.py) tells a real change from a
reformatted file.

Long because every section's fields, rules and defaults live side by side with the one reader
that reports them all at once; splitting sections from the reader would scatter each rule from
its message.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autobidder import (
    NotFound,
    Region,
    TomlFileError,
    field_path,
    non_finite,
    parse_toml,
    read_toml_file,
    unknown_field_rule,
)

SCHEMA_VERSION = 1

# The products a NEM strategy may name: energy plus the ten FCAS markets (names as in
# optimization/products.py). The bidding cycle always bids energy; FCAS rides on it.
NEM_PRODUCTS: tuple[str, ...] = (
    "energy",
    "raise_reg",
    "lower_reg",
    "raise_1s",
    "raise_6s",
    "raise_60s",
    "raise_5min",
    "lower_1s",
    "lower_6s",
    "lower_60s",
    "lower_5min",
)

PORTFOLIO_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
NODE_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"
MODEL_PATTERN = r"^[a-z0-9][a-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9_.-]*$"
_PATTERN_RULES = {
    PORTFOLIO_PATTERN: "must be 1 to 63 lowercase letters, digits, '-' or '_', starting with a letter "
    "or digit",
    NODE_PATTERN: 'must be a dotted path of lowercase names, for example "nem.sa1.vpp"',
    MODEL_PATTERN: 'must be name@version, for example "seasonal_naive@1"',
}


class StrategyRuleError(ValueError):
    """A cross-field rule broken inside a section; carries the exact field so the report names it."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        super().__init__(rule)
        self.field = field
        self.value = value
        self.rule = rule


@dataclass(frozen=True)
class StrategyIssue:
    """One broken rule: `field` is the dotted path as written in the TOML file."""

    field: str
    value: object
    rule: str

    def describe(self) -> str:
        if self.value is _MISSING:
            return f"{self.field}: {self.rule}"
        return f"{self.field} = {_show(self.value)}: {self.rule}"

    def as_dict(self) -> dict[str, Any]:
        value = None if self.value is _MISSING else self.value
        if not isinstance(value, str | int | float | bool | type(None)):
            value = repr(value)
        return {"field": self.field, "value": value, "rule": self.rule}


class StrategyError(ValueError):
    """A strategy file cannot be read or is invalid; `issues` lists every broken rule."""

    def __init__(self, source: str, issues: list[StrategyIssue] | tuple[StrategyIssue, ...]) -> None:
        self.source = source
        self.issues = tuple(issues)
        lines = "\n".join(f"  {issue.describe()}" for issue in self.issues)
        super().__init__(f"{source}: invalid strategy ({len(self.issues)} problem(s)):\n{lines}")


class StrategyFileNotFoundError(StrategyError, NotFound):
    """The strategy file does not exist."""


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


_MISSING: Any = _Missing()


def _show(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


class _Section(BaseModel):
    # Strict: "10" in a TOML file is a string, and a limit written as a string is a typo to report,
    # not to coerce. Floats still accept integers (TOML `2` for 2.0).
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


Probability = Annotated[float, Field(gt=0.0, lt=1.0)]


class MarketSection(_Section):
    """Where the portfolio trades."""

    name: Literal["NEM"]
    region: Annotated[Region, Field(strict=False)]
    # Not strict: TOML arrays arrive as lists.
    products: Annotated[tuple[str, ...], Field(strict=False)] = ("energy",)

    @field_validator("products")
    @classmethod
    def _known_products(cls, products: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for i, product in enumerate(products):
            if product not in NEM_PRODUCTS:
                hint = difflib.get_close_matches(product, NEM_PRODUCTS, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                raise StrategyRuleError(
                    f"[{i}]", product, f"not a NEM product (known: {', '.join(NEM_PRODUCTS)}){suggestion}"
                )
            if product in seen:
                raise StrategyRuleError(f"[{i}]", product, "listed twice")
            seen.add(product)
        if "energy" not in seen:
            raise StrategyRuleError("", list(products), "must include 'energy' (every cycle bids energy)")
        return products


class FleetSection(_Section):
    """The fleet node (dotted path in the battery hierarchy) whose batteries this strategy trades."""

    node: str = Field(pattern=NODE_PATTERN)


class ForecasterSection(_Section):
    """The price forecaster, `name@version` as registered (`autobidder forecast list`).

    `history_days`: days of published prices each cycle fetches for it (a backtest gives it the
    same); unset, the cycle's own lookback (7 days). `analog_ensemble` compares today with the
    last 42 days, so it needs 43.
    """

    model: str = Field(pattern=MODEL_PATTERN)
    horizon_hours: int = Field(24, ge=1, le=168)
    history_days: int | None = Field(None, ge=1, le=365)

    def lookback_intervals(self, cycle_lookback_intervals: int, interval_minutes: int) -> int:
        """How many published prices a cycle fetches for this forecaster: `history_days` of
        them where that is more than the cycle's own lookback, else the cycle's."""
        if self.history_days is None:
            return cycle_lookback_intervals
        return max(cycle_lookback_intervals, self.history_days * (24 * 60 // interval_minutes))

    @property
    def name(self) -> str:
        return self.model.split("@", 1)[0]

    @property
    def version(self) -> str:
        return self.model.split("@", 1)[1]


class RiskSection(_Section):
    """Optimize against one price quantile of the forecast, OR maximise CVaR at a level.

    `quantile = 0.5` (the default) is the median forecast; lower quantiles plan with cheaper
    prices. `cvar_level = 0.9` optimizes the mean of the worst 10 % of the forecast's scenarios.
    """

    quantile: Probability | None = None
    cvar_level: Probability | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        # Before the fields: "both set" is reported even when one of the values is also bad.
        if isinstance(data, dict) and data.get("quantile") is not None and data.get("cvar_level") is not None:
            raise StrategyRuleError(
                "cvar_level", data["cvar_level"], "set either risk.quantile or risk.cvar_level, not both"
            )
        return data

    @model_validator(mode="after")
    def _median_by_default(self) -> Self:
        if self.quantile is None and self.cvar_level is None:
            object.__setattr__(self, "quantile", 0.5)
        return self

    @property
    def measure(self) -> Literal["quantile", "cvar"]:
        return "cvar" if self.cvar_level is not None else "quantile"


class OperationSection(_Section):
    """What using the battery costs and how far it may be used."""

    degradation_cost_aud_per_mwh: float = Field(0.0, ge=0.0, le=1000.0)
    daily_cycle_limit: float | None = Field(None, gt=0.0, le=24.0)
    backup_reserve_fraction: float = Field(0.0, ge=0.0, lt=0.95)


# Fields of [bidding] that only the value-curve method reads, and their defaults.
VALUE_CURVE_DEFAULTS: dict[str, float | int] = {
    "cycle_shadow_price_aud_per_mwh": 0.0,
    "price_dispersion": 1.0,
    "soc_points": 41,
    "price_atoms": 12,
    "spike_run_intervals": 1.0,
    "spike_threshold_aud_per_mwh": 300.0,
}


class BiddingSection(_Section):
    """How bids are made.

    `method = "lp_lambda"` (the default) bids the LP schedule: `ladder` offers the scheduled
    volume at the break-even price λ/η plus the rest of the battery's headroom on a ladder of
    higher (discharge) and lower (charge) prices, so price spikes the forecast missed still pay;
    `ladder_headroom_fraction` offers only part of that headroom; `scheduled_only` offers the
    scheduled volume and nothing more.

    `method = "value_curve"` bids the marginal value of stored energy (optimization/value_curve.py):
    every band sells or buys one SoC segment at its value, so there is no schedule and no ladder.
    Its settings: `cycle_shadow_price_aud_per_mwh` (the daily cycle limit priced on every MWh
    discharged, default 0), `price_dispersion` (the forecast's spread around its median the
    planner believes, 0..1, default 1), `soc_points` (SoC grid, default 41), `price_atoms`
    (prices per interval, default 12), `spike_run_intervals` (a forecast spike is planned as a
    run of this many intervals, 1..288, default 1: independent intervals) and
    `spike_threshold_aud_per_mwh` (the price above which, and above twice its interval's median,
    an atom is a spike; default 300).
    """

    method: Literal["lp_lambda", "value_curve"] = "lp_lambda"
    band_policy: Literal["ladder", "scheduled_only"] = "ladder"
    ladder_headroom_fraction: float | None = Field(None, ge=0.0, le=1.0)
    cycle_shadow_price_aud_per_mwh: float | None = Field(None, ge=0.0, le=20000.0)
    price_dispersion: float | None = Field(None, ge=0.0, le=1.0)
    soc_points: int | None = Field(None, ge=2, le=1001)
    price_atoms: int | None = Field(None, ge=1, le=200)
    spike_run_intervals: float | None = Field(None, ge=1.0, le=288.0)
    spike_threshold_aud_per_mwh: float | None = Field(None, ge=-1000.0, le=20000.0)

    @model_validator(mode="before")
    @classmethod
    def _fraction_needs_ladder(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        policy = data.get("band_policy", "ladder")
        method = data.get("method", "lp_lambda")
        if policy != "ladder" and data.get("ladder_headroom_fraction") is not None:
            raise StrategyRuleError(
                "ladder_headroom_fraction",
                data["ladder_headroom_fraction"],
                f'only applies when band_policy = "ladder" (band_policy is {_show(policy)})',
            )
        if method == "value_curve":
            # The defaults (a full ladder) are what a value-curve bid amounts to; anything else
            # asks for something it does not do.
            defaults = {"band_policy": "ladder", "ladder_headroom_fraction": 1.0}
            for name, default in defaults.items():
                if data.get(name) is not None and data[name] != default:
                    raise StrategyRuleError(
                        name,
                        data[name],
                        'only applies when method = "lp_lambda" (the value curve bids every band at '
                        "its SoC segment's value, with no schedule and no ladder)",
                    )
        elif method == "lp_lambda":
            for name in VALUE_CURVE_DEFAULTS:
                if data.get(name) is not None:
                    raise StrategyRuleError(
                        name, data[name], 'only applies when method = "value_curve" (method is "lp_lambda")'
                    )
        return data

    def value_curve_setting(self, name: str) -> float:
        """A value-curve setting, its default when the file leaves it out."""
        value = getattr(self, name)
        return float(VALUE_CURVE_DEFAULTS[name] if value is None else value)

    @model_validator(mode="after")
    def _full_ladder_by_default(self) -> Self:
        if self.band_policy == "ladder" and self.ladder_headroom_fraction is None:
            object.__setattr__(self, "ladder_headroom_fraction", 1.0)
        return self

    @property
    def headroom_fraction(self) -> float:
        """Share of the spare headroom offered beyond the scheduled volume (0 for scheduled_only)."""
        return self.ladder_headroom_fraction or 0.0


class SafetySection(_Section):
    """Limits applied to every bid after it is built, whatever the optimizer asked for."""

    max_mw_per_bid: float = Field(gt=0.0)
    max_price_change_aud_per_mwh: float = Field(gt=0.0)
    submit_enabled: bool


class Strategy(BaseModel):
    """A validated strategy (see the module docstring); build it with `parse_strategy`."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    schema_version: Literal[1] = 1
    portfolio: str = Field(pattern=PORTFOLIO_PATTERN)
    description: str = Field("", max_length=500)
    market: MarketSection
    fleet: FleetSection
    forecaster: ForecasterSection
    risk: RiskSection = RiskSection()
    operation: OperationSection = OperationSection()
    bidding: BiddingSection = BiddingSection()
    safety: SafetySection

    @model_validator(mode="after")
    def _value_curve_bids_energy_only(self) -> Self:
        # The value-curve planner has no reserve dimension: rather than drop FCAS products from
        # the bids without a word, a strategy that asks for both is refused.
        fcas = [p for p in self.market.products if p != "energy"]
        if self.bidding.method == "value_curve" and fcas:
            raise StrategyRuleError(
                "bidding.method",
                self.bidding.method,
                f"bids energy only; market.products also names {', '.join(fcas)}: use "
                'method = "lp_lambda" to trade FCAS, or products = ["energy"]',
            )
        return self

    @property
    def region(self) -> Region:
        return self.market.region

    @property
    def content_hash(self) -> str:
        return strategy_content_hash(self)

    def canonical(self) -> dict[str, Any]:
        """The JSON-ready content that the hash covers (every field, defaults included).

        The bidding method's fields join only when a strategy uses them (`method` when it is not
        the original "lp_lambda", the value-curve settings when set), so strategies written
        before they existed keep their content hash."""
        data = self.model_dump(mode="json")
        bidding = data["bidding"]
        if bidding.get("method") == "lp_lambda":
            del bidding["method"]
        for name in VALUE_CURVE_DEFAULTS:
            if bidding.get(name) is None:
                bidding.pop(name, None)
        return data

    def with_bidding(self, **bidding: Any) -> Strategy:
        """The same strategy with its [bidding] section replaced by `bidding` (validated)."""
        data = self.canonical()
        data["bidding"] = dict(bidding)
        return build_strategy(data, source=f"{self.portfolio} with bidding {bidding}")

    def with_forecaster(self, model: str) -> Strategy:
        """The same strategy with another forecaster (`backtest compare --forecaster`); validated."""
        data = self.canonical()
        data["forecaster"]["model"] = model
        return build_strategy(data, source=f"{self.portfolio} with forecaster {model}")


# --- reading and validation ---------------------------------------------------------------------


def _path(loc: tuple[Any, ...]) -> str:
    return field_path(loc)


def _rule_text(err: Any) -> str:
    msg = str(err["msg"])
    kind = err["type"]
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        return msg.replace("Input should be", "must be")
    if kind == "string_pattern_mismatch":
        pattern = err["ctx"]["pattern"]
        return _PATTERN_RULES.get(pattern, f"must match {pattern}")
    for prefix, replacement in (("Input should be", "must be"), ("Value error, ", "")):
        if msg.startswith(prefix):
            msg = replacement + msg[len(prefix) :]
    return msg


def _issues(exc: ValidationError) -> list[StrategyIssue]:
    issues: list[StrategyIssue] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), StrategyRuleError):
            rule_error: StrategyRuleError = err["ctx"]["error"]
            field = rule_error.field
            at = _path(loc)
            joined = at + (field if field.startswith("[") or not field or not at else "." + field)
            issues.append(StrategyIssue(joined, rule_error.value, rule_error.rule))
            continue
        if err["type"] == "extra_forbidden":
            issues.append(StrategyIssue(_path(loc), err["input"], unknown_field_rule(Strategy, loc)))
            continue
        value = _MISSING if err["type"] == "missing" else err.get("input")
        if isinstance(value, dict):
            value = _MISSING
        issues.append(StrategyIssue(_path(loc), value, _rule_text(err)))
    return issues


def _non_finite(data: Any) -> list[StrategyIssue]:
    """TOML can spell `inf` and `nan`; no strategy number may be either."""
    return [StrategyIssue(_path(loc), value, "must be a finite number") for loc, value in non_finite(data)]


def build_strategy(data: dict[str, Any], source: str = "<strategy>") -> Strategy:
    """Validate already-parsed TOML data; raises `StrategyError` listing every issue."""
    non_finite = _non_finite(data)
    try:
        strategy = Strategy.model_validate(data)
    except ValidationError as exc:
        reported = {issue.field for issue in non_finite}
        others = [issue for issue in _issues(exc) if issue.field not in reported]
        raise StrategyError(source, non_finite + others) from None
    if non_finite:
        raise StrategyError(source, non_finite)
    return strategy


def parse_strategy(text: str, source: str = "<strategy>") -> Strategy:
    """Parse and validate strategy TOML text."""
    try:
        data = parse_toml(text)
    except TomlFileError as exc:
        raise StrategyError(source, [StrategyIssue("(file)", _MISSING, str(exc))]) from None
    return build_strategy(data, source)


@dataclass(frozen=True)
class StrategyDocument:
    """A strategy file as read: the validated strategy and the exact text (kept with each version)."""

    strategy: Strategy
    source_text: str
    source: str


def read_strategy_file(path: Path) -> StrategyDocument:
    """Read and validate a strategy file; a missing or unreadable file is a `StrategyError` too."""
    try:
        data, text = read_toml_file(path)
    except TomlFileError as exc:
        kind = StrategyFileNotFoundError if isinstance(exc, NotFound) else StrategyError
        raise kind(str(path), [StrategyIssue("(file)", _MISSING, str(exc))]) from None
    return StrategyDocument(build_strategy(data, str(path)), text, str(path))


# --- identity and differences -------------------------------------------------------------------


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def strategy_content_hash(strategy: Strategy) -> str:
    """SHA-256 of the canonical JSON of every field (defaults included), hex."""
    return hashlib.sha256(canonical_json(strategy.canonical()).encode()).hexdigest()


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """`{"risk": {"quantile": 0.5}}` -> `{"risk.quantile": 0.5}`; lists stay values."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key in sorted(data):
        out.update(flatten(data[key], f"{prefix}.{key}" if prefix else key))
    return out


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.field}: {_show_value(self.old)} -> {_show_value(self.new)}"


def _show_value(value: Any) -> str:
    return "(unset)" if value is None else _show(value)


def diff_strategies(old: Strategy, new: Strategy) -> list[FieldChange]:
    """Every field whose value differs, in dotted-path order."""
    a, b = flatten(old.canonical()), flatten(new.canonical())
    return [
        FieldChange(key, a.get(key), b.get(key))
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]

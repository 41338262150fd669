"""The BiddingCycle workflow: one portfolio, one market interval, bounded by the gate closure.

fetch_data -> forecast -> optimize -> submit_bids -> await_award -> dispatch -> settle

Planning (fetch, forecast, optimize) must finish by the planning deadline (the gate closure less
the submission's reserve, `workflows.deadlines`); otherwise, or when a stage fails, the cycle
walks the fallback ladder (`workflows.fallback`: shifted last good schedule -> conservative bid
-> no bid) and stores the reason as a fact. Once a bid is lodged the cycle follows it through
award, dispatch and settlement without a deadline: those steps retry until they succeed.

Kept free of heavy imports (the sandbox re-imports this module for every run); the activities
do the I/O and hand the pure work to the stage packages. Timeouts and retry policies are
documented in docs/workflows.md; change them there too.

Long because the whole cycle, its fallback ladder and its `workflow.patched` guards must stay
in one deterministic workflow definition that saved histories replay against.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    TimeoutError as ActivityTimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from workflows.deadlines import gate_closure, interval_end_for_fire, market_timing, planning_deadline
    from workflows.fallback import NO_BID, SHIFTED_SCHEDULE
    from workflows.search import INTERVAL, MARKET, PORTFOLIO, REGION, SCHEDULED_START
    from workflows.types import (
        AwaitAwardInput,
        CycleInput,
        CycleResult,
        DispatchInput,
        FallbackInput,
        FallbackResult,
        FetchDataInput,
        FetchDataResult,
        ForecastInput,
        OptimizeInput,
        RecordFallbackInput,
        SettleInput,
        SettleResult,
        SubmitBidsInput,
        SubmitBidsResult,
        cycle_id_for,
    )

# The change that made cycles deadline-aware; histories started before it replay the v1 path.
DEADLINE_PATCH = "deadline-fallback-ladder"
# The change that made planning cheaper for Temporal (issue 20): fetch_data runs as a local
# activity in the cycle's first workflow task, and each planning stage is bounded by its own
# schedule_to_close (the planning deadline) instead of a timer around all three. A cycle's history
# loses a workflow task, an activity task and the deadline timer (a normal cycle: 32 -> 25 events,
# tests/histories/v2-normal.json against v3-normal.json); histories started before it (with
# DEADLINE_PATCH's marker, without this one) replay the path they took.
LEAN_PLAN_PATCH = "lean-planning"

# I/O against the exchange, the fleet and the database: loopback calls take milliseconds, and the
# exchange client gives up after 10 s, so 15 s bounds one attempt; retried with backoff.
# After planning, these run as LOCAL activities: no activity task round trip through the server,
# and consecutive ones share one workflow task, which halves a cycle's Temporal work. Each is
# idempotent, so the re-run after a worker crash (the workflow task is retried) is harmless.
# Before LEAN_PLAN_PATCH fetch_data was a regular activity: a local activity holds the workflow
# task while it retries, which would have delayed the planning-deadline timer by up to the workflow
# task heartbeat (8 s). Since then no timer bounds planning: the local fetch_data's own
# schedule_to_close is the deadline, enforced by the worker that runs it.
IO_TIMEOUT = timedelta(seconds=15)
IO_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=0,  # bounded by the activity's schedule_to_close (the deadline), not a count
    non_retryable_error_types=["BidRejected", "InvalidInput"],
)
# After a bid is lodged: award, dispatch and settle must happen whatever the outage, so they
# retry for up to POST_BID_WINDOW (every one of them is idempotent).
POST_BID_WINDOW = timedelta(minutes=10)
POST_BID_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=0,
    non_retryable_error_types=["InvalidInput", "UnknownBidError"],
)
# A submission that failed may still have reached the exchange: ask for its award a few times.
RECONCILE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=3,
    non_retryable_error_types=["UnknownBidError"],
)
# Queue-backed stages: start_to_close covers the wait in the queue plus compute; the Temporal
# worker's queue bridge heartbeats each waiting attempt, so a lost worker process shows up
# after QUEUE_HEARTBEAT_TIMEOUT instead of at start_to_close.
QUEUE_STAGE_TIMEOUT = timedelta(seconds=60)
QUEUE_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
QUEUE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
    non_retryable_error_types=["StageFailed"],
)
# The lean plan's local fetch_data: one attempt per local activity, retried by the workflow.
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)
# An activity needs some time to run at all; a deadline closer than this counts as passed.
MIN_ACTIVITY_WINDOW = timedelta(milliseconds=500)

# Foundation (v1) settings, kept verbatim for the v1 replay path.
_V1_IO_TIMEOUT = timedelta(seconds=30)
_V1_IO_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=10,
    non_retryable_error_types=["BidRejected", "InvalidInput"],
)
_V1_QUEUE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_attempts=3, non_retryable_error_types=["StageFailed"]
)


def _cause(exc: BaseException) -> str:
    """The innermost message of an activity failure, for a fallback reason a person can read.
    (A failed local activity surfaces as its ApplicationError itself, not wrapped in ActivityError.)"""
    inner: BaseException = exc
    while isinstance(inner, ActivityError) and inner.cause is not None:
        inner = inner.cause
    if isinstance(inner, ApplicationError) and inner.type:
        return f"{inner.type}: {inner.message}"
    return f"{type(inner).__name__}: {inner}"


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, ActivityError) and isinstance(exc.cause, ActivityTimeoutError)


def _retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether `policy` would retry this activity failure (a failed local activity surfaces as
    its ApplicationError itself)."""
    inner = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    if isinstance(inner, ApplicationError):
        return not inner.non_retryable and inner.type not in (policy.non_retryable_error_types or ())
    return True


def _deadline_timeout(exc: BaseException) -> bool:
    """Whether a planning stage failed by reaching its schedule_to_close: the planning deadline
    under LEAN_PLAN_PATCH. (A local activity's timeout is judged by the worker, and the workflow
    task that sees it may have started just before the deadline.)"""
    inner: BaseException | None = exc
    while isinstance(inner, ActivityError):
        inner = inner.cause
    return isinstance(inner, ActivityTimeoutError) and inner.type == TimeoutType.SCHEDULE_TO_CLOSE


@workflow.defn(name="BiddingCycle")
class BiddingCycle:
    def __init__(self) -> None:
        self._fetched: FetchDataResult | None = None
        self._forecast_fact_id = ""
        self._stage = "fetch_data"
        # The strategy version in force, as fetch_data resolved it ("" when none is applied).
        self._strategy_version = ""

    @workflow.run
    async def run(self, inp: CycleInput) -> CycleResult:
        # New cycles record LEAN_PLAN_PATCH's marker only (it implies DEADLINE_PATCH's behaviour).
        if workflow.patched(LEAN_PLAN_PATCH):
            return await self._run(inp, lean=True)
        if not workflow.patched(DEADLINE_PATCH):
            return await self._run_v1(inp)
        return await self._run(inp)

    def _interval_end(self, inp: CycleInput) -> datetime:
        if inp.interval_end:
            return datetime.fromisoformat(inp.interval_end)
        # Started by a Schedule: the interval follows from when it was due, not when it ran.
        timing = market_timing(inp.market)
        fired = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        return interval_end_for_fire(timing, fired)

    def _tag(self, inp: CycleInput, interval_end: datetime) -> None:
        """Add the search attributes the starter could not set (a Schedule cannot know the interval)."""
        present = workflow.info().typed_search_attributes
        updates: list[SearchAttributeUpdate[Any]] = [
            key.value_set(value)
            for key, value in ((PORTFOLIO, inp.portfolio), (MARKET, inp.market), (REGION, inp.region))
            if present.get(key) is None
        ]
        if present.get(INTERVAL) is None:
            updates.append(INTERVAL.value_set(interval_end))
        if updates:
            workflow.upsert_search_attributes(updates)

    async def _plan(
        self, inp: CycleInput, cycle_id: str, interval_end_iso: str, plan_by: datetime, *, lean: bool = False
    ) -> str:
        """fetch_data -> forecast -> optimize. `lean` (LEAN_PLAN_PATCH): fetch_data is local and
        each stage's schedule_to_close ends at `plan_by` (ActivityTimeoutError once it has passed);
        otherwise the caller's timer bounds all three and each stage gets at least
        MIN_ACTIVITY_WINDOW."""
        interval_start = datetime.fromisoformat(interval_end_iso) - timedelta(minutes=inp.interval_minutes)

        def window() -> timedelta:
            left = plan_by - workflow.now()
            if not lean:
                return max(left, MIN_ACTIVITY_WINDOW)
            if left <= timedelta(0):
                raise ActivityTimeoutError(
                    "planning deadline passed", type=TimeoutType.SCHEDULE_TO_CLOSE, last_heartbeat_details=[]
                )
            return left

        self._stage = "fetch_data"
        fetch_input = FetchDataInput(
            cycle_id,
            inp.portfolio,
            inp.region,
            interval_start.isoformat(),
            inp.lookback_intervals,
            strategy_version=inp.strategy_version,
            interval_minutes=inp.interval_minutes,
        )
        if lean:
            self._fetched = await self._fetch_locally(fetch_input, window)
        else:
            self._fetched = await workflow.execute_activity(
                "fetch_data",
                fetch_input,
                result_type=FetchDataResult,
                start_to_close_timeout=IO_TIMEOUT,
                schedule_to_close_timeout=window(),
                retry_policy=IO_RETRY,
            )
        # The strategy read this cycle governs it from here on (a pinned version in the input wins;
        # histories from before strategies carry none of these fields).
        fetched = self._fetched
        self._strategy_version = fetched.strategy_version or inp.strategy_version
        self._stage = "forecast"
        self._forecast_fact_id = await workflow.execute_activity(
            "forecast",
            ForecastInput(
                cycle_id,
                fetched.market_fact_id,
                interval_end_iso,
                fetched.horizon_intervals or inp.horizon_intervals,
                model=inp.forecast_model or fetched.forecast_model,
            ),
            result_type=str,
            start_to_close_timeout=QUEUE_STAGE_TIMEOUT,
            schedule_to_close_timeout=window(),
            heartbeat_timeout=QUEUE_HEARTBEAT_TIMEOUT,
            retry_policy=QUEUE_RETRY,
        )
        self._stage = "optimize"
        schedule_fact_id: str = await workflow.execute_activity(
            "optimize",
            OptimizeInput(
                cycle_id,
                self._forecast_fact_id,
                fetched.telemetry_fact_id,
                strategy_version=self._strategy_version,
            ),
            result_type=str,
            start_to_close_timeout=QUEUE_STAGE_TIMEOUT,
            schedule_to_close_timeout=window(),
            heartbeat_timeout=QUEUE_HEARTBEAT_TIMEOUT,
            retry_policy=QUEUE_RETRY,
        )
        return schedule_fact_id

    async def _fetch_locally(
        self, fetch_input: FetchDataInput, window: Callable[[], timedelta]
    ) -> FetchDataResult:
        """fetch_data as a local activity in the cycle's first workflow task, retried here (IO_RETRY's
        backoff, as a workflow timer: none on the happy path) while the planning window lasts.

        One attempt per local activity, bounded by what is left of the window: sdk-core (temporalio
        1.35) retries a local activity past its schedule_to_close when its maximum_attempts is 0, so
        the SDK's retry could not end at the deadline. `window()` raises ActivityTimeoutError once
        the deadline has passed; an attempt cut off by it is reported the same way."""
        backoff = IO_RETRY.initial_interval
        while True:
            left = window()
            try:
                result: FetchDataResult = await workflow.execute_local_activity(
                    "fetch_data",
                    fetch_input,
                    result_type=FetchDataResult,
                    start_to_close_timeout=min(IO_TIMEOUT, left),
                    retry_policy=ONE_ATTEMPT,
                )
                return result
            except (ActivityError, ApplicationError) as exc:
                if left < IO_TIMEOUT and _timed_out(exc):
                    raise ActivityTimeoutError(
                        "planning deadline passed during fetch_data",
                        type=TimeoutType.SCHEDULE_TO_CLOSE,
                        last_heartbeat_details=[],
                    ) from exc
                if not _retryable(exc, IO_RETRY) or window() <= backoff:
                    raise
            await workflow.sleep(backoff)
            backoff = min(backoff * IO_RETRY.backoff_coefficient, IO_RETRY.maximum_interval or backoff)

    def _planning_failure(self, exc: BaseException, plan_by: datetime, *, lean: bool) -> str:
        if workflow.now() >= plan_by or (lean and _deadline_timeout(exc)):
            return f"{self._stage} not finished by the planning deadline {plan_by.isoformat()}"
        return f"{self._stage} failed: {_cause(exc)}"

    async def _record(
        self, cycle_id: str, inp: CycleInput, interval_end_iso: str, rung: str, reason: str
    ) -> str:
        # The reason must never be lost: retried for as long as a post-bid step would be.
        fact_id: str = await workflow.execute_local_activity(
            "record_fallback",
            RecordFallbackInput(cycle_id, inp.portfolio, interval_end_iso, rung, reason),
            result_type=str,
            start_to_close_timeout=IO_TIMEOUT,
            schedule_to_close_timeout=POST_BID_WINDOW,
            retry_policy=POST_BID_RETRY,
        )
        return fact_id

    async def _run(self, inp: CycleInput, *, lean: bool = False) -> CycleResult:
        timing = market_timing(inp.market)
        interval_end = self._interval_end(inp)
        interval_end_iso = interval_end.isoformat()
        cycle_id = cycle_id_for(inp.portfolio, interval_end_iso)
        self._tag(inp, interval_end)
        started = workflow.now()
        closes_at = (
            datetime.fromisoformat(inp.gate_closure)
            if inp.gate_closure
            else gate_closure(timing, interval_end)
        )
        plan_by = planning_deadline(started, closes_at)

        schedule_fact_id, reason = "", ""
        try:
            if lean:
                schedule_fact_id = await self._plan(inp, cycle_id, interval_end_iso, plan_by, lean=True)
            else:
                schedule_fact_id = await asyncio.wait_for(
                    self._plan(inp, cycle_id, interval_end_iso, plan_by),
                    timeout=max((plan_by - started).total_seconds(), 0.0),
                )
        except (TimeoutError, ActivityError) as exc:
            # At the deadline the running stage is cancelled (or hits its schedule_to_close),
            # which surfaces as an ActivityError as often as a TimeoutError.
            reason = self._planning_failure(exc, plan_by, lean=lean)
        except FailureError as exc:
            if not lean:
                raise
            # The local fetch_data's failure or timeout, or the deadline passed between stages.
            reason = self._planning_failure(exc, plan_by, lean=True)

        rung, fallback_fact_id, reason_recorded = "", "", ""
        telemetry_fact_id = self._fetched.telemetry_fact_id if self._fetched else ""
        if reason:
            workflow.logger.warning("cycle %s falls back: %s", cycle_id, reason)
            rung = NO_BID
            if closes_at - workflow.now() >= MIN_ACTIVITY_WINDOW:
                try:
                    fallen: FallbackResult = await workflow.execute_local_activity(
                        "fallback",
                        FallbackInput(
                            cycle_id,
                            inp.portfolio,
                            inp.region,
                            interval_end_iso,
                            inp.interval_minutes,
                            reason,
                            telemetry_fact_id,
                            SHIFTED_SCHEDULE,
                        ),
                        result_type=FallbackResult,
                        start_to_close_timeout=IO_TIMEOUT,
                        schedule_to_close_timeout=closes_at - workflow.now(),
                        retry_policy=IO_RETRY,
                    )
                    rung, fallback_fact_id = fallen.rung, fallen.fallback_fact_id
                    # The ladder itself ended in no_bid: its fact already holds the reason.
                    reason_recorded = reason if rung == NO_BID else ""
                    schedule_fact_id, telemetry_fact_id = fallen.schedule_fact_id, fallen.telemetry_fact_id
                except (ActivityError, ApplicationError) as exc:
                    reason = f"{reason}; fallback failed: {_cause(exc)}"
            else:
                reason = f"{reason}; gate closed at {closes_at.isoformat()}"

        submitted: SubmitBidsResult | None = None
        if rung != NO_BID:
            submitted, failure = await self._submit(
                inp, cycle_id, interval_end_iso, schedule_fact_id, telemetry_fact_id, rung, closes_at
            )
            if submitted is None:
                reason = f"{reason + '; ' if reason else ''}{failure}"
                rung = NO_BID
            elif submitted.paused:
                reason = f"{reason + '; ' if reason else ''}{submitted.reason}"
                rung = NO_BID
        if rung == NO_BID:
            if not (fallback_fact_id and submitted is None and reason_recorded == reason):
                fallback_fact_id = await self._record(cycle_id, inp, interval_end_iso, NO_BID, reason)
            return CycleResult(
                cycle_id=cycle_id,
                interval_end=interval_end_iso,
                market_fact_id=self._fetched.market_fact_id if self._fetched else "",
                telemetry_fact_id=telemetry_fact_id,
                forecast_fact_id=self._forecast_fact_id,
                schedule_fact_id=schedule_fact_id,
                # A paused strategy's bid was built and stored, never sent.
                bid_fact_id=submitted.bid_fact_id if submitted is not None else "",
                bid_id="",
                award_fact_id="",
                dispatch_fact_id="",
                settlement_fact_id="",
                revenue_aud=0.0,
                net_energy_mwh=0.0,
                fallback=NO_BID,
                fallback_fact_id=fallback_fact_id,
                strategy_version=submitted.strategy_version if submitted else self._strategy_version,
            )
        assert submitted is not None
        return await self._follow_through(
            inp,
            cycle_id,
            interval_end_iso,
            submitted,
            schedule_fact_id,
            telemetry_fact_id,
            rung,
            fallback_fact_id,
        )

    async def _submit(
        self,
        inp: CycleInput,
        cycle_id: str,
        interval_end_iso: str,
        schedule_fact_id: str,
        telemetry_fact_id: str,
        rung: str,
        closes_at: datetime,
    ) -> tuple[SubmitBidsResult | None, str]:
        """Submit before the gate closes; on failure, find out whether the bid got through anyway."""
        window = closes_at - workflow.now()
        if window < MIN_ACTIVITY_WINDOW:
            return None, f"gate closed at {closes_at.isoformat()} before the bid could be submitted"
        request = SubmitBidsInput(
            cycle_id,
            inp.portfolio,
            inp.region,
            interval_end_iso,
            schedule_fact_id,
            telemetry_fact_id,
            bid_kind=rung or "optimal",
            # fetch_data's resolution; a pin when fetch_data never ran (a bad pin bids nothing).
            strategy_version=self._strategy_version or inp.strategy_version,
            interval_minutes=inp.interval_minutes,
        )
        try:
            submitted: SubmitBidsResult = await workflow.execute_local_activity(
                "submit_bids",
                request,
                result_type=SubmitBidsResult,
                start_to_close_timeout=IO_TIMEOUT,
                schedule_to_close_timeout=window,
                retry_policy=IO_RETRY,
            )
            return submitted, ""
        except (ActivityError, ApplicationError) as exc:
            failure = f"submit_bids failed: {_cause(exc)}"
        try:
            # A timed-out call may have been stored by the exchange; if so it is our bid.
            found: SubmitBidsResult = await workflow.execute_local_activity(
                "find_bid",
                request,
                result_type=SubmitBidsResult,
                start_to_close_timeout=IO_TIMEOUT,
                retry_policy=RECONCILE_RETRY,
            )
            workflow.logger.warning(
                "cycle %s: bid %s was lodged despite: %s", cycle_id, found.bid_id, failure
            )
            return found, ""
        except (ActivityError, ApplicationError) as exc:
            return None, f"{failure}; not at the exchange ({_cause(exc)})"

    async def _follow_through(
        self,
        inp: CycleInput,
        cycle_id: str,
        interval_end_iso: str,
        submitted: SubmitBidsResult,
        schedule_fact_id: str,
        telemetry_fact_id: str,
        rung: str,
        fallback_fact_id: str,
    ) -> CycleResult:
        award_fact_id: str = await workflow.execute_local_activity(
            "await_award",
            AwaitAwardInput(cycle_id, submitted.bid_id),
            result_type=str,
            start_to_close_timeout=IO_TIMEOUT,
            schedule_to_close_timeout=POST_BID_WINDOW,
            retry_policy=POST_BID_RETRY,
        )
        dispatch_fact_id: str = await workflow.execute_local_activity(
            "dispatch",
            DispatchInput(cycle_id, inp.portfolio, award_fact_id, inp.interval_minutes),
            result_type=str,
            start_to_close_timeout=IO_TIMEOUT,
            schedule_to_close_timeout=POST_BID_WINDOW,
            retry_policy=POST_BID_RETRY,
        )
        settled: SettleResult = await workflow.execute_local_activity(
            "settle",
            SettleInput(cycle_id, inp.portfolio, award_fact_id, dispatch_fact_id, inp.interval_minutes),
            result_type=SettleResult,
            start_to_close_timeout=IO_TIMEOUT,
            schedule_to_close_timeout=POST_BID_WINDOW,
            retry_policy=POST_BID_RETRY,
        )
        fetched = self._fetched
        return CycleResult(
            cycle_id=cycle_id,
            interval_end=interval_end_iso,
            market_fact_id=fetched.market_fact_id if fetched else "",
            telemetry_fact_id=telemetry_fact_id,
            forecast_fact_id=self._forecast_fact_id,
            schedule_fact_id=schedule_fact_id,
            bid_fact_id=submitted.bid_fact_id,
            bid_id=submitted.bid_id,
            award_fact_id=award_fact_id,
            dispatch_fact_id=dispatch_fact_id,
            settlement_fact_id=settled.settlement_fact_id,
            revenue_aud=settled.revenue_aud,
            net_energy_mwh=settled.net_energy_mwh,
            fallback=rung,
            fallback_fact_id=fallback_fact_id,
            strategy_version=submitted.strategy_version or self._strategy_version,
        )

    async def _run_v1(self, inp: CycleInput) -> CycleResult:
        """The foundation's cycle, unchanged, for histories started before DEADLINE_PATCH.

        Remove (with `workflow.deprecate_patch`) once no v1 cycle can still be open or replayed.
        """
        cycle_id = cycle_id_for(inp.portfolio, inp.interval_end)
        interval_end = datetime.fromisoformat(inp.interval_end)
        interval_start = interval_end - timedelta(minutes=inp.interval_minutes)
        fetched: FetchDataResult = await workflow.execute_activity(
            "fetch_data",
            FetchDataInput(
                cycle_id, inp.portfolio, inp.region, interval_start.isoformat(), inp.lookback_intervals
            ),
            result_type=FetchDataResult,
            start_to_close_timeout=_V1_IO_TIMEOUT,
            retry_policy=_V1_IO_RETRY,
        )
        forecast_fact_id: str = await workflow.execute_activity(
            "forecast",
            ForecastInput(cycle_id, fetched.market_fact_id, inp.interval_end, inp.horizon_intervals),
            result_type=str,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=_V1_QUEUE_RETRY,
        )
        schedule_fact_id: str = await workflow.execute_activity(
            "optimize",
            OptimizeInput(cycle_id, forecast_fact_id, fetched.telemetry_fact_id),
            result_type=str,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=_V1_QUEUE_RETRY,
        )
        submitted: SubmitBidsResult = await workflow.execute_activity(
            "submit_bids",
            SubmitBidsInput(
                cycle_id,
                inp.portfolio,
                inp.region,
                inp.interval_end,
                schedule_fact_id,
                fetched.telemetry_fact_id,
            ),
            result_type=SubmitBidsResult,
            start_to_close_timeout=_V1_IO_TIMEOUT,
            retry_policy=_V1_IO_RETRY,
        )
        award_fact_id: str = await workflow.execute_activity(
            "await_award",
            AwaitAwardInput(cycle_id, submitted.bid_id),
            result_type=str,
            start_to_close_timeout=_V1_IO_TIMEOUT,
            retry_policy=_V1_IO_RETRY,
        )
        dispatch_fact_id: str = await workflow.execute_activity(
            "dispatch",
            DispatchInput(cycle_id, inp.portfolio, award_fact_id, inp.interval_minutes),
            result_type=str,
            start_to_close_timeout=_V1_IO_TIMEOUT,
            retry_policy=_V1_IO_RETRY,
        )
        settled: SettleResult = await workflow.execute_activity(
            "settle",
            SettleInput(cycle_id, inp.portfolio, award_fact_id, dispatch_fact_id, inp.interval_minutes),
            result_type=SettleResult,
            start_to_close_timeout=_V1_IO_TIMEOUT,
            retry_policy=_V1_IO_RETRY,
        )
        return CycleResult(
            cycle_id=cycle_id,
            interval_end=inp.interval_end,
            market_fact_id=fetched.market_fact_id,
            telemetry_fact_id=fetched.telemetry_fact_id,
            forecast_fact_id=forecast_fact_id,
            schedule_fact_id=schedule_fact_id,
            bid_fact_id=submitted.bid_fact_id,
            bid_id=submitted.bid_id,
            award_fact_id=award_fact_id,
            dispatch_fact_id=dispatch_fact_id,
            settlement_fact_id=settled.settlement_fact_id,
            revenue_aud=settled.revenue_aud,
            net_energy_mwh=settled.net_energy_mwh,
        )

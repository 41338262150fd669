"""The BiddingCycle workflow: one portfolio, one market interval.

fetch_data -> forecast -> optimize -> submit_bids -> await_award -> dispatch -> settle

Kept free of heavy imports (the sandbox re-imports this module for every run); the activities
do the I/O and hand the pure work to the stage packages.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.types import (
        AwaitAwardInput,
        CycleInput,
        CycleResult,
        DispatchInput,
        FetchDataInput,
        FetchDataResult,
        ForecastInput,
        OptimizeInput,
        SettleInput,
        SettleResult,
        SubmitBidsInput,
        SubmitBidsResult,
        cycle_id_for,
    )

# I/O against the exchange, the fleet and the database: short, retried with backoff.
IO_TIMEOUT = timedelta(seconds=30)
IO_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=10,
    non_retryable_error_types=["BidRejected", "InvalidInput"],
)
# Queue-backed stages: start_to_close covers the wait in the queue plus compute.
QUEUE_STAGE_TIMEOUT = timedelta(seconds=60)
QUEUE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_attempts=3, non_retryable_error_types=["StageFailed"]
)


@workflow.defn(name="BiddingCycle")
class BiddingCycle:
    @workflow.run
    async def run(self, inp: CycleInput) -> CycleResult:
        cycle_id = cycle_id_for(inp.portfolio, inp.interval_end)
        interval_end = datetime.fromisoformat(inp.interval_end)
        interval_start = interval_end - timedelta(minutes=inp.interval_minutes)

        fetched: FetchDataResult = await workflow.execute_activity(
            "fetch_data",
            FetchDataInput(
                cycle_id, inp.portfolio, inp.region, interval_start.isoformat(), inp.lookback_intervals
            ),
            result_type=FetchDataResult,
            start_to_close_timeout=IO_TIMEOUT,
            retry_policy=IO_RETRY,
        )
        forecast_fact_id: str = await workflow.execute_activity(
            "forecast",
            ForecastInput(cycle_id, fetched.market_fact_id, inp.interval_end, inp.horizon_intervals),
            result_type=str,
            start_to_close_timeout=QUEUE_STAGE_TIMEOUT,
            retry_policy=QUEUE_RETRY,
        )
        schedule_fact_id: str = await workflow.execute_activity(
            "optimize",
            OptimizeInput(cycle_id, forecast_fact_id, fetched.telemetry_fact_id),
            result_type=str,
            start_to_close_timeout=QUEUE_STAGE_TIMEOUT,
            retry_policy=QUEUE_RETRY,
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
            start_to_close_timeout=IO_TIMEOUT,
            retry_policy=IO_RETRY,
        )
        award_fact_id: str = await workflow.execute_activity(
            "await_award",
            AwaitAwardInput(cycle_id, submitted.bid_id),
            result_type=str,
            start_to_close_timeout=IO_TIMEOUT,
            retry_policy=IO_RETRY,
        )
        dispatch_fact_id: str = await workflow.execute_activity(
            "dispatch",
            DispatchInput(cycle_id, inp.portfolio, award_fact_id, inp.interval_minutes),
            result_type=str,
            start_to_close_timeout=IO_TIMEOUT,
            retry_policy=IO_RETRY,
        )
        settled: SettleResult = await workflow.execute_activity(
            "settle",
            SettleInput(cycle_id, inp.portfolio, award_fact_id, dispatch_fact_id, inp.interval_minutes),
            result_type=SettleResult,
            start_to_close_timeout=IO_TIMEOUT,
            retry_policy=IO_RETRY,
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

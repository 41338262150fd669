"""Live mode on a real Temporal dev server: a Schedule per portfolio on the market clock, whose
runs derive their interval, carry the search attributes and memo, and can be found by them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

from temporalio.client import Client, ScheduleIntervalSpec
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.histories.generate import _stub_activities
from worker.stack import bin_path
from workflows.bidding_cycle import BiddingCycle
from workflows.deadlines import NEM, interval_end_for_fire
from workflows.schedules import ensure_cycle_schedule
from workflows.search import ALL_KEYS, INTERVAL, PORTFOLIO
from workflows.types import CycleInput, CycleResult


def test_a_schedule_starts_cycles_that_find_their_own_interval() -> None:
    async def scenario() -> None:
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=bin_path("temporal"), search_attributes=list(ALL_KEYS)
        ) as env:
            client: Client = env.client
            task_queue = f"sched-{uuid.uuid4().hex[:8]}"
            portfolio = f"p{uuid.uuid4().hex[:6]}"
            inp = CycleInput(portfolio=portfolio, region="SA1", strategy_version="s-3")
            schedule_id = await ensure_cycle_schedule(client, inp, task_queue)
            assert await ensure_cycle_schedule(client, inp, task_queue) == schedule_id  # update is idempotent
            handle = client.get_schedule_handle(schedule_id)
            described = await handle.describe()
            assert described.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(minutes=5))]
            async with Worker(
                client, task_queue=task_queue, workflows=[BiddingCycle], activities=_stub_activities({})
            ):
                await handle.trigger()
                run_id = None
                for _ in range(100):
                    async for wf in client.list_workflows(f'portfolio="{portfolio}"'):
                        run_id = wf.id
                    if run_id:
                        break
                    await asyncio.sleep(0.2)
                assert run_id is not None and run_id.startswith(f"bid-cycle/{portfolio}")
                wf_handle = client.get_workflow_handle(run_id, result_type=CycleResult)
                result = await wf_handle.result()
                desc = await wf_handle.describe()
            await handle.delete()
            expected_end = interval_end_for_fire(NEM, desc.start_time)
            assert abs((datetime.fromisoformat(result.interval_end) - expected_end).total_seconds()) <= 300
            assert result.cycle_id == f"bid-cycle/{portfolio}/{result.interval_end}"
            assert desc.typed_search_attributes.get(PORTFOLIO) == portfolio
            assert desc.typed_search_attributes.get(INTERVAL) == datetime.fromisoformat(result.interval_end)
            memo = await desc.memo()
            assert memo["strategy_version"] == "s-3" and memo["forecast_model"] == "default"

    asyncio.run(scenario())


def test_the_launcher_registers_every_search_attribute_the_workflow_uses() -> None:
    from worker.stack import SEARCH_ATTRIBUTE_FLAGS

    kinds = {"KEYWORD": "Keyword", "DATETIME": "Datetime"}
    expected = {f"{key.name}={kinds[key.indexed_value_type.name.rsplit('_', 1)[-1]]}" for key in ALL_KEYS}
    assert set(SEARCH_ATTRIBUTE_FLAGS) == expected

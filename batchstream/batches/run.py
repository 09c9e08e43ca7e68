"""A run's `--via batches` part: the client, the journal and the engine, wired to the run's results file,
budget, progress and stop."""

from __future__ import annotations

import asyncio
import os
from contextlib import ExitStack
from typing import TYPE_CHECKING

from ..inputs import Request
from ..plan import Plan, to_run
from ..results import load_checkpoint
from ..stops import StopReason, outage_error
from .client import BatchClient
from .engine import BatchEngine, BatchesUnavailable
from .journal import Journal, journal_path
from .priming import Priming

if TYPE_CHECKING:
    from ..runner import _Run


async def run_batches(run: _Run, plan: Plan, stack: ExitStack) -> list[Request]:
    """Submit, wait for and record the items `plan` leaves to do; the items a --batch-deadline handed back
    to be streamed."""
    config = run.config
    assert run.writer is not None
    run.pricer.prepare(plan.models)
    path = journal_path(run.output)
    if config.restart and path.exists():
        os.replace(path, path.with_name(path.name + ".bak"))
        run.host.log(f"--restart: the previous batch journal moved to {path.name}.bak")
    base_url, api_key = run.endpoint(stack)
    client = BatchClient(api_key=api_key, base_url=base_url, api_version=config.defaults.api_version)
    run.secret = client.api_key
    journal = Journal(path)
    writer = run.writer
    priming = None
    if run.cache_plan:
        priming = Priming(run.cache_plan, journal, lambda item_id: _recorded(run, item_id))
    engine = BatchEngine(
        config,
        to_run(config, plan),
        client,
        journal,
        pricer=run.pricer,
        budget=run.budget,
        progress=run.progress,
        record=run.record,
        sync=writer.sync,
        log=run.host.log,
        priming=priming,
    )
    try:
        outcome = await run.watched(engine.run())
    except BatchesUnavailable as outage:  # what was recorded stays; the batches waited for stay journalled
        error = outage_error(outage.since, outage.max_outage_s, outage.failure.describe(), run.output)
        run.stop(error, StopReason.OUTAGE)
        return []
    finally:
        journal.close()
        await asyncio.shield(client.aclose())
    if outcome is None:  # stopped: the batches keep running, and the journal says which
        return []
    if outcome.budget_stop is not None:
        run.stopped = StopReason.BUDGET
        run.host.log(outcome.budget_stop)
    elif outcome.canceled:  # not finished, as after Ctrl-C: a run that exits 0 has done every item
        run.stopped = StopReason.INTERRUPTED
    elif not engine.todo and not outcome.to_stream:
        journal.remove()
    return outcome.to_stream


def _recorded(run: _Run, item_id: str) -> bool:
    """Whether the results file holds `item_id`: read only for a warm-up a crashed run left waiting."""
    return load_checkpoint(run.output).get(item_id) is not None

"""batchstream: bounded, resumable, streaming batches against the Anthropic Messages API.

from pathlib import Path
from batchstream import RunConfig, run_batch

report = run_batch(RunConfig(input=Path("prompts.jsonl"), simulate=True))
"""

from .config import BatchOptions, Limits, Output, RetryPolicy, RunConfig
from .errors import BatchstreamError, ExitCode, InputError, UsageError
from .inputs import Defaults, Request, iter_requests
from .runner import Host, RunReport, StopReason, arun_batch, run_batch

__all__ = [
    "BatchOptions",
    "BatchstreamError",
    "Defaults",
    "ExitCode",
    "Host",
    "InputError",
    "Limits",
    "Output",
    "Request",
    "RetryPolicy",
    "RunConfig",
    "RunReport",
    "StopReason",
    "UsageError",
    "arun_batch",
    "iter_requests",
    "run_batch",
]

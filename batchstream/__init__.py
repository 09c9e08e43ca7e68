"""batchstream: bounded, resumable, streaming batches against the Anthropic Messages API.

from batchstream import RunConfig, run_batch
report = run_batch(RunConfig(input=Path("prompts.jsonl"), simulate=True))
"""

from .errors import BatchstreamError, ExitCode
from .inputs import Defaults, InputError, Request, iter_requests
from .retry import Backoff
from .runner import RunConfig, RunReport, run_batch

__all__ = [
    "Backoff",
    "BatchstreamError",
    "Defaults",
    "ExitCode",
    "InputError",
    "Request",
    "RunConfig",
    "RunReport",
    "iter_requests",
    "run_batch",
]

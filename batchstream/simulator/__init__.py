"""A local stand-in for the Anthropic Messages API, spoken over a real socket so the real SDK can talk to it.

Replies are deterministic per request body, and faults (error statuses, broken streams, stalls) can be
injected by configuration or by `[[sim ...]]` directives in a prompt.
"""

from .config import FAULT_KINDS, SimulatorConfig
from .replies import expected_reply, request_key
from .runner import SimulatorThread, serve

__all__ = ["FAULT_KINDS", "SimulatorConfig", "SimulatorThread", "expected_reply", "request_key", "serve"]

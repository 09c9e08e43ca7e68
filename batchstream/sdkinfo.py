"""Facts batchstream takes from the installed `anthropic` SDK rather than from a copy of its own.

Importing the SDK costs over a second, which `validate` and `--help` should not pay for two constants. So
each is first read from the SDK's source file without running it (the file is a plain assignment of a
literal), and only if that fails (the SDK moved or computes it) from the imported SDK. A test holds the
two ways to the same answer.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path
from typing import Any

# Where the SDK keeps them (anthropic/_constants.py and anthropic/_data/deprecated_models.py in 2.x).
_API_VERSION = (("_constants.py",), "ANTHROPIC_API_VERSION")
_DEPRECATED_MODELS = (("_data", "deprecated_models.py"), "DEPRECATED_MODELS")


@functools.cache
def sdk_api_version() -> str:
    """The `anthropic-version` header the installed SDK sends when nobody overrides it."""
    value = _read_literal(*_API_VERSION)
    if isinstance(value, str):
        return value
    from anthropic._constants import ANTHROPIC_API_VERSION

    return ANTHROPIC_API_VERSION


@functools.cache
def deprecated_models() -> dict[str, str]:
    """The SDK's table of deprecated models: model id to its end-of-life date, as the SDK words it."""
    value = _read_literal(*_DEPRECATED_MODELS)
    if isinstance(value, dict):
        return {str(model): str(date) for model, date in value.items()}
    try:
        from anthropic.resources.messages.messages import DEPRECATED_MODELS
    except ImportError:  # an SDK without the table: nothing is known to be deprecated
        return {}
    return dict(DEPRECATED_MODELS)


def peek_sdk_api_version() -> str | None:
    """`sdk_api_version()` if the source file can tell it without importing the SDK, else None."""
    value = _read_literal(*_API_VERSION)
    return value if isinstance(value, str) else None


def _read_literal(parts: tuple[str, ...], name: str) -> Any:
    """The literal assigned to `name` at the top of one of the SDK's files, or None if it is not one."""
    try:
        spec = importlib.util.find_spec("anthropic")  # finds the package without importing it
        locations = spec.submodule_search_locations if spec is not None else None
        if not locations:
            return None
        tree = ast.parse(Path(locations[0], *parts).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, ImportError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            try:
                return ast.literal_eval(value)
            except ValueError:
                return None
    return None

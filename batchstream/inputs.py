"""Turn a JSONL file of prompts into Messages API requests, checking every line before money is spent.

The whole file is validated in one streaming pass and every problem is reported together, so a user fixes
a 50,000-line file in one edit instead of one crash per run. Memory stays flat: only the ids seen so far are
kept, because duplicate ids would make the results file (the checkpoint) ambiguous.

Each request also carries a hash of its line's exact bytes and of the defaults (`line_hash`), which its
result records. A resumed run reads a line whose hash its recorded result holds as `Unchanged`: it was
valid and made that very request when it ran, so it is neither validated nor hashed as a request again
(most of a resume's start-up over a big file went there).
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import os
import re
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, overload

import orjson

from .apifields import (
    LEGACY_API_VERSION,
    MESSAGES_FIELDS,
    NO_SAMPLING_MODEL,
    SAMPLING_FIELDS,
    SAMPLING_REMOVED_IN,
)
from .errors import InputError
from .sdkinfo import deprecated_models, sdk_api_version

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 1024

# Keys of a line that belong to batchstream, not to the request body.
_LINE_KEYS = frozenset({"id", "custom_id", "prompt", "params", "meta", "betas"})
_TOP_KEYS = MESSAGES_FIELDS | _LINE_KEYS
# The Message Batches API's rule, so a file in its request format can also be submitted there unchanged.
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_SHOW_LIMIT = 40
# The ids of cache warm-up lines in a results file (warmup.py) start so; no input line's may.
WARMUP_ID_PREFIX = "~warmup:"
# Part of every line hash: bump it when a line that passed before could now be read differently or be
# refused, so that results recorded by older versions are checked in full once more.
# 2: the API version joined the defaults, and lines with sampling parameters may now be refused.
_LINE_HASH_VERSION = 2

_Issue = tuple[str | None, str]
# The line hash recorded for an id, or None when the id has no result.
RecordedLineHash = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Defaults:
    """CLI options that fill what a line leaves out (a line's own value always wins), and the API version
    every request is sent with, which decides what a line may hold.

    `api_version` None means the version the installed SDK sends (`resolved_api_version`).
    """

    model: str | None = DEFAULT_MODEL
    max_tokens: int | None = DEFAULT_MAX_TOKENS
    system: str | None = None
    temperature: float | None = None
    betas: tuple[str, ...] = ()
    api_version: str | None = None

    @property
    def resolved_api_version(self) -> str:
        return self.api_version or sdk_api_version()

    def line_hasher(self) -> hashlib.blake2b:
        """A blake2b keyed by these defaults, to be copied and fed one line: a line's hash changes with
        any default, as the request it makes may, and with the API version, which may refuse it."""
        fields = [
            _LINE_HASH_VERSION,
            self.model,
            self.max_tokens,
            self.system,
            self.temperature,
            self.betas,
            self.resolved_api_version,
        ]
        return hashlib.blake2b(digest_size=8, key=hashlib.sha256(orjson.dumps(fields)).digest())


def accepts_sampling(api_version: str) -> bool:
    """Whether requests sent with this `anthropic-version` may carry temperature, top_p or top_k at all."""
    return api_version < SAMPLING_REMOVED_IN


def model_accepts_sampling(model: str) -> bool:
    """Whether `model` takes the sampling parameters on an API version that does (see accepts_sampling)."""
    return not NO_SAMPLING_MODEL.fullmatch(model)


def deprecation_warnings(models: Iterable[str]) -> list[str]:
    """One warning for each of `models` that the installed SDK lists as deprecated, saying when it retires."""
    table = deprecated_models()
    return [
        f"model {model!r} is deprecated and will reach end-of-life on {table[model]} (so says the installed "
        "anthropic SDK); move to a current model, see "
        "https://docs.anthropic.com/en/docs/resources/model-deprecations"
        for model in sorted(set(models))
        if model in table
    ]


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    line: int
    params: dict[str, Any]
    betas: tuple[str, ...]
    has_meta: bool
    meta: Any
    request_hash: str
    # Of the input line it was read from; "" for a request built otherwise: no resume takes it as unchanged.
    line_hash: str = ""


class Unchanged(NamedTuple):
    """A line whose bytes and defaults are those its recorded result was made from.

    A named tuple, not a frozen dataclass, as there is one per line of a resumed file: it builds 2x faster.
    """

    id: str
    line: int
    model: str


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        what = self.message if self.field is None else f"{self.field}: {self.message}"
        return f"{where}: {what}"


class _Problems:
    def __init__(self, path: str, cap: int) -> None:
        self.path = path
        self.cap = cap
        self.kept: list[Problem] = []
        self.total = 0

    def add(self, line: int | None, field: str | None, message: str) -> None:
        self.total += 1
        if len(self.kept) < self.cap:
            self.kept.append(Problem(self.path, line, field, message))


@overload
def iter_requests(
    path: str | os.PathLike[str],
    defaults: Defaults,
    *,
    max_problems: int = ...,
    only_lines: Container[int] | None = ...,
    recorded: None = ...,
) -> Iterator[Request]: ...


@overload
def iter_requests(
    path: str | os.PathLike[str],
    defaults: Defaults,
    *,
    max_problems: int = ...,
    only_lines: Container[int] | None = ...,
    recorded: RecordedLineHash,
) -> Iterator[Request | Unchanged]: ...


def iter_requests(
    path: str | os.PathLike[str],
    defaults: Defaults,
    *,
    max_problems: int = 20,
    only_lines: Container[int] | None = None,
    recorded: RecordedLineHash | None = None,
) -> Iterator[Request | Unchanged]:
    """Yield valid requests as they are read, so a run can start before a huge file is fully checked.

    Raises InputError after the last line if any line was bad, or before the first request if the file
    cannot be opened. `only_lines` (line numbers) skips every other line unparsed: a resumed run, whose
    file was checked already, goes straight to the items still to do. With `recorded`, a line whose hash
    is the one recorded for its id comes as `Unchanged`; any other line is read in full.
    """
    name = os.fspath(path)
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed by the `with` below, which must wrap the yields
    except OSError as error:
        raise InputError([Problem(name, None, None, f"cannot read the file: {error.strerror}")], 1) from error
    problems = _Problems(name, max_problems)
    first_line_of: dict[str, int] = {}
    any_lines = False
    hasher = defaults.line_hasher()
    with file:
        for number, raw in enumerate(file, 1):
            if only_lines is not None and number not in only_lines:
                continue
            # Editors on Windows write a byte order mark; it is not the user's mistake.
            # The newline is dropped so a JSON error reads "unexpected end of data", not "control character".
            line = (raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw).rstrip()
            if not line:
                continue
            any_lines = True
            digest = hasher.copy()
            digest.update(line)
            line_hash = digest.hexdigest()
            if recorded is not None:
                unchanged = _unchanged(line, number, line_hash, defaults, recorded, first_line_of)
                if unchanged is not None:
                    yield unchanged
                    continue
            issues: list[_Issue] = []
            request = _read_line(line, number, line_hash, defaults, first_line_of, issues)
            for field, message in issues:
                problems.add(number, field, message)
            if request is not None:
                yield request
    if not any_lines and only_lines is None:
        problems.add(None, None, "the file has no requests")
    if problems.total:
        raise InputError(problems.kept, problems.total)


def _unchanged(
    line: bytes,
    number: int,
    line_hash: str,
    defaults: Defaults,
    recorded: RecordedLineHash,
    first_line_of: dict[str, int],
) -> Unchanged | None:
    """The line as Unchanged if its id's recorded result has this line hash, else None (read it in full).

    Only the id is looked at (and the model, which --max-cost prices): the hash vouches for the rest. Its
    id still counts for the duplicate check; a duplicate is left to the full read, which reports it.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    item_id = obj["custom_id"] if "custom_id" in obj else obj.get("id")
    if type(item_id) is not str or recorded(item_id) != line_hash:
        return None
    if first_line_of.setdefault(item_id, number) != number:
        return None
    body = obj.get("params", obj)
    return Unchanged(item_id, number, body.get("model", defaults.model))


def _read_line(
    raw: bytes,
    number: int,
    line_hash: str,
    defaults: Defaults,
    first_line_of: dict[str, int],
    issues: list[_Issue],
) -> Request | None:
    try:
        text = raw.decode()
    except UnicodeDecodeError as error:
        column = len(raw[: error.start].decode()) + 1
        where = f"at column {column} (byte offset {error.start})"
        issues.append((None, f"invalid UTF-8: byte 0x{raw[error.start]:02x} {where}"))
        return None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        issues.append((None, f"invalid JSON: {error.msg} at column {error.colno}"))
        return None
    if not isinstance(obj, dict):
        issues.append((None, f"expected a JSON object, got {_show(obj)}"))
        return None

    _check_keys(obj, _TOP_KEYS, "", issues)
    request_id = _request_id(obj, issues)
    if request_id is not None:
        first = first_line_of.setdefault(request_id[1], number)
        if first != number:
            issues.append((request_id[0], f"duplicate id {request_id[1]!r} (first on line {first})"))
    params = _params(obj, defaults, issues)
    betas = _betas(obj, defaults, issues)
    if issues or request_id is None or params is None or betas is None:
        return None
    return Request(
        id=request_id[1],
        line=number,
        params=params,
        betas=betas,
        has_meta="meta" in obj,
        meta=obj.get("meta"),
        request_hash=_request_hash(params, betas),
        line_hash=line_hash,
    )


def _request_hash(params: dict[str, Any], betas: tuple[str, ...]) -> str:
    """Keys the results checkpoint: a new prompt, parameter or default reruns the line; key order doesn't."""
    blob = orjson.dumps({"params": params, "betas": sorted(betas)}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:16]


def _check_keys(obj: dict[str, Any], known: frozenset[str], prefix: str, issues: list[_Issue]) -> None:
    for key in obj:
        if key in known:
            continue
        field = prefix + key
        if key == "stream":
            issues.append((field, "batchstream always streams; remove 'stream'"))
        elif prefix and key in _LINE_KEYS:
            issues.append((field, "not part of the request body; put it at the top level, next to 'params'"))
        else:
            close = difflib.get_close_matches(key, known, n=1)
            issues.append((field, f"unknown key; did you mean {close[0]!r}?" if close else "unknown key"))


def _request_id(obj: dict[str, Any], issues: list[_Issue]) -> tuple[str, str] | None:
    """Return (key, id), naming the key so a later duplicate points at the field the user actually wrote."""
    if "id" in obj and "custom_id" in obj:
        issues.append((None, "both 'id' and 'custom_id' given; keep one"))
        return None
    key = "custom_id" if "custom_id" in obj else "id"
    if key not in obj:
        issues.append(("id", "missing (give 'id', or 'custom_id' in the Message Batches form)"))
        return None
    value = obj[key]
    if not isinstance(value, str) or not value:
        issues.append((key, f"expected a non-empty string, got {_show(value)}"))
        return None
    if key == "custom_id" and not _CUSTOM_ID.fullmatch(value):
        issues.append(
            (key, f"{_show(value)} does not match {_CUSTOM_ID.pattern} (a Message Batches API rule)")
        )
        return None
    if value.startswith(WARMUP_ID_PREFIX):
        issues.append((key, f"ids starting with {WARMUP_ID_PREFIX!r} are batchstream's own (cache warm-ups)"))
        return None
    return key, value


def _params(obj: dict[str, Any], defaults: Defaults, issues: list[_Issue]) -> dict[str, Any] | None:
    if "params" in obj:
        return _batches_params(obj, defaults, issues)
    params = {key: value for key, value in obj.items() if key in MESSAGES_FIELDS}
    if "prompt" in obj and "messages" in obj:
        issues.append((None, "both 'prompt' and 'messages' given; keep one"))
    elif "prompt" in obj:
        prompt = obj["prompt"]
        if isinstance(prompt, str) and prompt:
            params["messages"] = [{"role": "user", "content": prompt}]
        else:
            issues.append(("prompt", f"expected a non-empty string, got {_show(prompt)}"))
    elif "messages" not in obj:
        issues.append((None, "no 'prompt' or 'messages'; give one"))
    return _complete(params, "", defaults, issues)


def _batches_params(obj: dict[str, Any], defaults: Defaults, issues: list[_Issue]) -> dict[str, Any] | None:
    body = obj["params"]
    if not isinstance(body, dict):
        issues.append(("params", f"expected a JSON object, got {_show(body)}"))
        return None
    if "prompt" in obj:
        issues.append(("params", "cannot be combined with 'prompt'; put the conversation in params.messages"))
    mixed = sorted(key for key in obj if key in MESSAGES_FIELDS)
    if mixed:
        names = ", ".join(repr(key) for key in mixed)
        them = "it" if len(mixed) == 1 else "them"
        issues.append(("params", f"cannot be combined with top-level {names}; move {them} inside 'params'"))
    _check_keys(body, MESSAGES_FIELDS, "params.", issues)
    if "messages" not in body:
        issues.append(("params.messages", "missing"))
    return _complete(dict(body), "params.", defaults, issues)


def _complete(
    params: dict[str, Any], prefix: str, defaults: Defaults, issues: list[_Issue]
) -> dict[str, Any]:
    """Check the body's own values, then fill the gaps from the defaults (never overriding the line)."""
    if "messages" in params:
        _check_messages(params["messages"], prefix + "messages", issues)
    for key, flag, default in (
        ("model", "--model", defaults.model),
        ("max_tokens", "--max-tokens", defaults.max_tokens),
    ):
        if key not in params and default is None:
            issues.append((prefix + key, f"missing, and no {flag} default"))
    filled = {
        "model": defaults.model,
        "max_tokens": defaults.max_tokens,
        "system": defaults.system,
        "temperature": defaults.temperature,
    }
    request = {**{key: value for key, value in filled.items() if value is not None}, **params}
    refused = _check_api_version(request, params, prefix, defaults.resolved_api_version, issues)
    _check_values(params, prefix, issues, skip=refused)
    return request


def _check_api_version(
    request: dict[str, Any], own: dict[str, Any], prefix: str, version: str, issues: list[_Issue]
) -> set[str]:
    """Report what the API would refuse under `version` in `request` (the line's `own` body with the
    defaults filled in); return the sampling keys refused, whose values need no further check."""
    refused: set[str] = set()
    model = request.get("model")
    for key in SAMPLING_FIELDS:
        if key not in request:
            continue
        given = "" if key in own else " (set by --temperature)"
        if not accepts_sampling(version):
            refused.add(key)
            fix = f"remove it, or run with --api-version {LEGACY_API_VERSION}"
            if not isinstance(model, str):
                fix += " for a model that still accepts it there"
            elif model_accepts_sampling(model):
                fix += f", where {model} still accepts it"
            else:
                fix = f"remove it ({model} refuses it on API version {LEGACY_API_VERSION} too)"
            issues.append(
                (
                    prefix + key,
                    f"not accepted by API version {version}, at any value (the API answers 400 "
                    f'"{key}: Extra inputs are not permitted"){given}; {fix}',
                )
            )
        elif (
            isinstance(model, str)
            and not model_accepts_sampling(model)
            and not (key == "temperature" and request[key] == 1)
        ):
            refused.add(key)
            issues.append(
                (
                    prefix + key,
                    f"not accepted by {model} even on API version {version} (the API answers 400 "
                    f'"`{key}` is deprecated for this model."){given}; remove it',
                )
            )
    if not accepts_sampling(version) and isinstance(request.get("messages"), list):
        _check_blocks_for_version(request["messages"], prefix + "messages", version, issues)
    return refused


def _check_blocks_for_version(messages: list[Any], field: str, version: str, issues: list[_Issue]) -> None:
    """Content shapes that API version 2026-10-21 refuses and 2023-06-01 took."""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            continue
        role = message.get("role")
        for number, block in enumerate(message["content"]):
            if not isinstance(block, dict):
                continue
            at = f"{field}[{index}].content[{number}]"
            if role == "assistant" and block.get("type") == "document":
                issues.append(
                    (
                        at,
                        f"a document block in an assistant message is not accepted by API version "
                        f"{version}; move the document into a user message, or run with --api-version "
                        f"{LEGACY_API_VERSION}",
                    )
                )
            elif role == "user" and block.get("type") == "text" and block.get("citations"):
                issues.append(
                    (
                        f"{at}.citations",
                        f"citations on a text block in a user message are not accepted by API version "
                        f"{version}; remove them, or run with --api-version {LEGACY_API_VERSION}",
                    )
                )


def _check_values(params: dict[str, Any], prefix: str, issues: list[_Issue], skip: set[str]) -> None:
    def bad(key: str, expected: str) -> None:
        issues.append((prefix + key, f"expected {expected}, got {_show(params[key])}"))

    if "model" in params and not (isinstance(params["model"], str) and params["model"]):
        bad("model", "a non-empty string")
    if "max_tokens" in params and not _is_count(params["max_tokens"]):
        bad("max_tokens", "an integer >= 0")
    for key in ("temperature", "top_p"):
        if key in params and key not in skip and not (_is_number(params[key]) and 0 <= params[key] <= 1):
            bad(key, "a number from 0 to 1")
    if "top_k" in params and "top_k" not in skip and not _is_count(params["top_k"]):
        bad("top_k", "an integer >= 0")
    if "system" in params and not isinstance(params["system"], str | list):
        bad("system", "a string or a list of text blocks")
    if "stop_sequences" in params:
        _check_strings(params["stop_sequences"], prefix + "stop_sequences", issues, empty_ok=True)


def _check_messages(messages: Any, field: str, issues: list[_Issue]) -> None:
    if not isinstance(messages, list) or not messages:
        issues.append((field, f"expected a non-empty list of messages, got {_show(messages)}"))
        return
    for index, message in enumerate(messages):
        at = f"{field}[{index}]"
        if not isinstance(message, dict):
            issues.append((at, f"expected a JSON object, got {_show(message)}"))
            continue
        if "role" not in message:
            issues.append((f"{at}.role", "missing"))
        elif message["role"] not in ("user", "assistant"):
            # A "system" turn is the most common mistake by people coming from other chat APIs.
            hint = " (put it in the top-level 'system' instead)" if message["role"] == "system" else ""
            issues.append(
                (f"{at}.role", f"expected 'user' or 'assistant', got {_show(message['role'])}{hint}")
            )
        if "content" not in message:
            issues.append((f"{at}.content", "missing"))
        elif not isinstance(message["content"], str | list):
            content = _show(message["content"])
            issues.append((f"{at}.content", f"expected a string or a list of content blocks, got {content}"))


def _betas(obj: dict[str, Any], defaults: Defaults, issues: list[_Issue]) -> tuple[str, ...] | None:
    if "betas" not in obj:
        return defaults.betas
    betas = obj["betas"]
    return tuple(betas) if _check_strings(betas, "betas", issues, empty_ok=False) else None


def _check_strings(value: Any, field: str, issues: list[_Issue], *, empty_ok: bool) -> bool:
    """Point at the exact bad item, since these lists are often long and typed by hand."""
    if not isinstance(value, list):
        issues.append((field, f"expected a list of strings, got {_show(value)}"))
        return False
    expected = "a string" if empty_ok else "a non-empty string"
    ok = True
    for index, item in enumerate(value):
        if not (isinstance(item, str) and (empty_ok or item)):
            issues.append((f"{field}[{index}]", f"expected {expected}, got {_show(item)}"))
            ok = False
    return ok


def _is_count(value: Any) -> bool:
    # bool is an int subclass, but `"max_tokens": true` is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """Quote scalars but name containers, so a message says 'got -5' or 'got "10"' yet stays one line."""
    if isinstance(value, dict | list) and value:
        return "object" if isinstance(value, dict) else "array"
    text = orjson.dumps(value).decode()
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."

import hashlib
import typing
from pathlib import Path

import orjson
import pytest
from anthropic._data.deprecated_models import DEPRECATED_MODELS
from anthropic.types import Model

from batchstream.inputs import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    LEGACY_API_VERSION,
    Defaults,
    InputError,
    Problem,
    Request,
    Unchanged,
    deprecation_warnings,
    iter_requests,
    model_accepts_sampling,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_inputs"
VALID = '{"id": "ok", "prompt": "Hi"}'
DEFAULTS = Defaults()
# API version 2023-06-01 and a model that still takes temperature, top_p and top_k there.
LEGACY = Defaults(model="claude-sonnet-4-6", api_version=LEGACY_API_VERSION)
CUSTOM_ID_RULE = "^[a-zA-Z0-9_-]{1,64}$ (a Message Batches API rule)"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Problems name the path as given, so a relative name keeps the expected messages short and exact.
    monkeypatch.chdir(tmp_path)


def write(*lines: str | bytes, name: str = "inputs.jsonl") -> str:
    data = b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines)
    Path(name).write_bytes(data)
    return name


def requests(*lines: str, defaults: Defaults = DEFAULTS) -> list[Request]:
    return list(iter_requests(write(*lines), defaults))


def one(line: str, defaults: Defaults = DEFAULTS) -> Request:
    [request] = requests(line, defaults=defaults)
    return request


def problems(*lines: str | bytes, defaults: Defaults = DEFAULTS, **kwargs: int) -> list[str]:
    with pytest.raises(InputError) as caught:
        list(iter_requests(write(*lines), defaults, **kwargs))
    return [str(problem) for problem in caught.value.problems]


def refused_2026(key: str, model: str, prefix: str = "", given: str = "") -> str:
    if model_accepts_sampling(model):
        fix = f"remove it, or run with --api-version 2023-06-01, where {model} still accepts it"
    else:
        fix = f"remove it ({model} refuses it on API version 2023-06-01 too)"
    return (
        f"{prefix}{key}: not accepted by API version 2026-10-21, at any value (the API answers 400 "
        f'"{key}: Extra inputs are not permitted"){given}; {fix}'
    )


def deprecated_for(key: str, model: str, prefix: str = "") -> str:
    return (
        f"{prefix}{key}: not accepted by {model} even on API version 2023-06-01 (the API answers 400 "
        f'"`{key}` is deprecated for this model."); remove it'
    )


def test_constants_match_the_sdk() -> None:
    assert DEFAULT_MODEL in typing.get_args(typing.get_args(Model)[0])
    assert DEFAULT_MODEL not in DEPRECATED_MODELS
    assert DEFAULT_MAX_TOKENS == 1024


# --- the three input forms -------------------------------------------------------------------------------


def test_prompt_form() -> None:
    request = one('{"id": "q1", "prompt": "What is 2 + 2?"}')
    assert request.id == "q1"
    assert request.line == 1
    assert request.params == {
        "model": DEFAULT_MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
    }
    assert request.betas == ()
    assert (request.has_meta, request.meta) == (False, None)


def test_messages_form_passes_api_fields_through_unchanged() -> None:
    line = {
        "id": "q2",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "user", "content": "Weather?"},
        ],
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "model": "claude-opus-5-5",
        "max_tokens": 0,
        "stop_sequences": ["END", ""],
        "metadata": {"user_id": "u-1"},
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "adaptive"},
        "service_tier": "auto",
        "speed": "fast",
        "betas": ["fast-mode-2026-02-01"],
    }
    request = one(orjson.dumps(line).decode())
    expected = {key: value for key, value in line.items() if key not in ("id", "betas")}
    assert request.params == expected
    assert request.betas == ("fast-mode-2026-02-01",)


def test_sampling_parameters_pass_through_on_api_version_2023_06_01_for_an_older_model() -> None:
    line = {"id": "q", "prompt": "Hi", "model": "claude-sonnet-4-6", "temperature": 0, "top_p": 1, "top_k": 5}
    request = one(orjson.dumps(line).decode(), LEGACY)
    assert request.params == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "temperature": 0,
        "top_p": 1,
        "top_k": 5,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_batches_form() -> None:
    request = one(
        '{"custom_id": "batch_1-A", "params": {"messages": [{"role": "user", "content": "Hi"}],'
        ' "max_tokens": 50, "system": "Be kind."}, "meta": null, "betas": ["b1", "b2"]}'
    )
    assert request.id == "batch_1-A"
    assert request.params == {
        "model": DEFAULT_MODEL,
        "max_tokens": 50,
        "system": "Be kind.",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert request.betas == ("b1", "b2")
    assert (request.has_meta, request.meta) == (True, None)


def test_meta_is_kept_and_never_sent() -> None:
    request = one('{"id": "q", "prompt": "Hi", "meta": {"expected": "yes", "n": [1, 2]}}')
    assert (request.has_meta, request.meta) == (True, {"expected": "yes", "n": [1, 2]})
    assert "meta" not in request.params


# --- defaults ----------------------------------------------------------------------------------------------


FULL_DEFAULTS = Defaults(
    model="m-default",
    max_tokens=77,
    system="S",
    temperature=0.3,
    betas=("d1",),
    api_version=LEGACY_API_VERSION,
)


def test_defaults_fill_what_the_line_leaves_out() -> None:
    for line in (
        '{"id": "q", "prompt": "Hi"}',
        '{"custom_id": "q", "params": {"messages": [{"role": "user", "content": "Hi"}]}}',
    ):
        request = one(line, FULL_DEFAULTS)
        assert request.params == {
            "model": "m-default",
            "max_tokens": 77,
            "system": "S",
            "temperature": 0.3,
            "messages": [{"role": "user", "content": "Hi"}],
        }
        assert request.betas == ("d1",)


def test_the_line_wins_over_defaults() -> None:
    request = one(
        '{"id": "q", "prompt": "Hi", "model": "m-line", "max_tokens": 5, "system": [], "temperature": 1,'
        ' "betas": []}',
        FULL_DEFAULTS,
    )
    assert request.params == {
        "model": "m-line",
        "max_tokens": 5,
        "system": [],
        "temperature": 1,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert request.betas == ()


def test_unset_defaults_add_nothing() -> None:
    request = one('{"id": "q", "prompt": "Hi", "model": "m", "max_tokens": 9}', Defaults(None, None))
    assert request.params == {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}]}


# --- request_hash ------------------------------------------------------------------------------------------


def test_request_hash_is_sha256_of_sorted_params_and_betas() -> None:
    request = one('{"id": "q", "prompt": "Hi", "betas": ["b", "a"]}')
    blob = orjson.dumps({"params": request.params, "betas": ["a", "b"]}, option=orjson.OPT_SORT_KEYS)
    assert request.request_hash == hashlib.sha256(blob).hexdigest()[:16]


def test_request_hash_ignores_key_order_id_meta_and_beta_order() -> None:
    a, b = requests(
        '{"id": "a", "prompt": "Hi", "max_tokens": 5, "betas": ["x", "y"], "meta": 1,'
        ' "metadata": {"user_id": "u", "z": 1}}',
        '{"metadata": {"z": 1, "user_id": "u"}, "betas": ["y", "x"], "max_tokens": 5, "prompt": "Hi",'
        ' "id": "b"}',
    )
    assert a.request_hash == b.request_hash


def test_request_hash_changes_with_prompt_parameter_default_and_betas() -> None:
    base = one('{"id": "q", "prompt": "Hi"}').request_hash
    assert one('{"id": "q", "prompt": "Hi!"}').request_hash != base
    assert one('{"id": "q", "prompt": "Hi", "max_tokens": 1023}').request_hash != base
    assert one('{"id": "q", "prompt": "Hi"}', Defaults(model="other")).request_hash != base
    assert one('{"id": "q", "prompt": "Hi"}', Defaults(system="S")).request_hash != base
    assert one('{"id": "q", "prompt": "Hi", "betas": ["b"]}').request_hash != base
    # Spelling out what the default would have filled in is the same request.
    assert one('{"id": "q", "prompt": "Hi", "max_tokens": 1024}').request_hash == base


# --- line_hash and the resume fast path -------------------------------------------------------------------

LINES = (
    '{"id": "a", "prompt": "Hi"}',
    '{"custom_id": "b", "params": {"model": "m", "max_tokens": 5, "messages": '
    + '[{"role": "user", "content": "Hi"}]'
    + "}}",
    '{"id": "c", "prompt": "Hi", "model": "n", "meta": {"x": 1}}',
)


def recorded_from(*lines: str, defaults: Defaults = DEFAULTS) -> dict[str, str]:
    """The line hash each id's result would record after a run over these lines."""
    return {request.id: request.line_hash for request in requests(*lines, defaults=defaults)}


def test_line_hash_is_pinned_since_results_files_record_it() -> None:
    # Changing how it is computed leaves every recorded result without a fast path: bump _LINE_HASH_VERSION
    # on purpose instead, when a line that passed before could now be read differently.
    assert one(VALID).line_hash == "0295732a5e17de7d"


def test_line_hash_is_of_the_line_bytes_and_every_default() -> None:
    base = one(VALID).line_hash
    assert one(VALID + "  ").line_hash == base  # trailing whitespace is not part of the line
    assert one('{"prompt": "Hi", "id": "ok"}').line_hash != base  # the same request, other bytes
    for changed in (
        Defaults(model="other"),
        Defaults(max_tokens=1023),
        Defaults(system="S"),
        Defaults(betas=("b",)),
        Defaults(api_version=LEGACY_API_VERSION),
    ):
        assert one(VALID, changed).line_hash != base, changed
    legacy = one(VALID, LEGACY).line_hash
    assert (
        one(VALID, Defaults(model=LEGACY.model, api_version=LEGACY_API_VERSION, temperature=0.5)).line_hash
        != legacy
    )
    # No version given is the one the SDK sends: the same hash as naming it.
    assert one(VALID, Defaults(api_version=Defaults().resolved_api_version)).line_hash == base


def test_lines_unchanged_since_recorded_are_not_read_again() -> None:
    recorded = recorded_from(*LINES)
    items = list(iter_requests(write(*LINES), DEFAULTS, recorded=recorded.get))
    assert items == [Unchanged("a", 1, DEFAULT_MODEL), Unchanged("b", 2, "m"), Unchanged("c", 3, "n")]


def test_a_changed_or_new_line_or_other_defaults_are_read_in_full() -> None:
    recorded = recorded_from(*LINES)
    changed = (LINES[0].replace("Hi", "Hi!"), LINES[1], LINES[2], '{"id": "d", "prompt": "New"}')
    a, b, c, d = iter_requests(write(*changed), DEFAULTS, recorded=recorded.get)
    assert isinstance(a, Request) and a.line_hash != recorded["a"]
    assert (b, c) == (Unchanged("b", 2, "m"), Unchanged("c", 3, "n"))
    assert isinstance(d, Request) and d.id == "d"
    # Another default may change the request a line makes: every line is read and hashed in full again.
    other = Defaults(max_tokens=7)
    items = list(iter_requests(write(*LINES), other, recorded=recorded.get))
    assert [type(item) for item in items] == [Request] * 3
    assert items == requests(*LINES, defaults=other)


def test_an_unchanged_line_still_counts_for_duplicate_ids() -> None:
    recorded = recorded_from(*LINES)
    with pytest.raises(InputError) as caught:
        list(
            iter_requests(
                write(*LINES, LINES[0], '{"id": "b", "prompt": "B"}'), DEFAULTS, recorded=recorded.get
            )
        )
    assert [str(problem) for problem in caught.value.problems] == [
        "inputs.jsonl:4: id: duplicate id 'a' (first on line 1)",
        "inputs.jsonl:5: id: duplicate id 'b' (first on line 2)",
    ]


# --- problems: exact messages ------------------------------------------------------------------------------

MSG = '[{"role": "user", "content": "Hi"}]'


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{nope", ["invalid JSON: unexpected character, expected a string key at column 2"]),
        ('{"id": "q", "prompt": "Hi"', ["invalid JSON: unexpected end of data at column 27"]),
        ("[1, 2]", ["expected a JSON object, got array"]),
        ('"just text"', ['expected a JSON object, got "just text"']),
        ('{"prompt": "Hi"}', ["id: missing (give 'id', or 'custom_id' in the Message Batches form)"]),
        ('{"id": "", "prompt": "Hi"}', ['id: expected a non-empty string, got ""']),
        ('{"id": 7, "prompt": "Hi"}', ["id: expected a non-empty string, got 7"]),
        ('{"id": "a", "custom_id": "a", "prompt": "Hi"}', ["both 'id' and 'custom_id' given; keep one"]),
        (
            '{"custom_id": "no spaces allowed", "prompt": "Hi"}',
            [f'custom_id: "no spaces allowed" does not match {CUSTOM_ID_RULE}'],
        ),
        (
            '{"custom_id": "' + "x" * 65 + '", "prompt": "Hi"}',
            [f'custom_id: "{"x" * 36}... does not match {CUSTOM_ID_RULE}'],
        ),
        ('{"id": "q"}', ["no 'prompt' or 'messages'; give one"]),
        (
            '{"id": "q", "prompt": "Hi", "messages": ' + MSG + "}",
            ["both 'prompt' and 'messages' given; keep one"],
        ),
        ('{"id": "q", "prompt": ""}', ['prompt: expected a non-empty string, got ""']),
        ('{"id": "q", "prompt": ["Hi"]}', ["prompt: expected a non-empty string, got array"]),
        ('{"id": "q", "messages": []}', ["messages: expected a non-empty list of messages, got []"]),
        (
            '{"id": "q", "messages": {"role": "user"}}',
            ["messages: expected a non-empty list of messages, got object"],
        ),
        ('{"id": "q", "messages": ["Hi"]}', ['messages[0]: expected a JSON object, got "Hi"']),
        (
            '{"id": "q", "messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Yo"}]}',
            ["messages[1].role: expected 'user' or 'assistant', got \"bot\""],
        ),
        (
            '{"id": "q", "messages": [{"role": "system", "content": "Be brief."}]}',
            [
                "messages[0].role: expected 'user' or 'assistant', got \"system\""
                " (put it in the top-level 'system' instead)"
            ],
        ),
        (
            '{"id": "q", "messages": [{"content": "Hi"}, {"role": "user"}]}',
            ["messages[0].role: missing", "messages[1].content: missing"],
        ),
        (
            '{"id": "q", "messages": [{"role": "user", "content": {"text": "Hi"}}]}',
            ["messages[0].content: expected a string or a list of content blocks, got object"],
        ),
        ('{"id": "q", "prompt": "Hi", "model": ""}', ['model: expected a non-empty string, got ""']),
        ('{"id": "q", "prompt": "Hi", "max_tokens": -1}', ["max_tokens: expected an integer >= 0, got -1"]),
        ('{"id": "q", "prompt": "Hi", "max_tokens": 1.5}', ["max_tokens: expected an integer >= 0, got 1.5"]),
        (
            '{"id": "q", "prompt": "Hi", "max_tokens": true}',
            ["max_tokens: expected an integer >= 0, got true"],
        ),
        (
            '{"id": "q", "prompt": "Hi", "max_tokens": "10"}',
            ['max_tokens: expected an integer >= 0, got "10"'],
        ),
        # API version 2026-10-21 (the SDK's) refuses these whatever their value; range problems are moot.
        ('{"id": "q", "prompt": "Hi", "temperature": 1.2}', [refused_2026("temperature", DEFAULT_MODEL)]),
        ('{"id": "q", "prompt": "Hi", "top_p": -0.1}', [refused_2026("top_p", DEFAULT_MODEL)]),
        (
            '{"id": "q", "prompt": "Hi", "model": "claude-sonnet-4-6", "top_k": 0}',
            [refused_2026("top_k", "claude-sonnet-4-6")],
        ),
        (
            '{"id": "q", "prompt": "Hi", "stop_sequences": "END"}',
            ['stop_sequences: expected a list of strings, got "END"'],
        ),
        (
            '{"id": "q", "prompt": "Hi", "stop_sequences": ["a", 1]}',
            ["stop_sequences[1]: expected a string, got 1"],
        ),
        (
            '{"id": "q", "prompt": "Hi", "system": {"text": "S"}}',
            ["system: expected a string or a list of text blocks, got object"],
        ),
        ('{"id": "q", "prompt": "Hi", "betas": "b1"}', ['betas: expected a list of strings, got "b1"']),
        (
            '{"id": "q", "prompt": "Hi", "betas": ["b1", ""]}',
            ['betas[1]: expected a non-empty string, got ""'],
        ),
        (
            '{"id": "q", "prompt": "Hi", "stream": true}',
            ["stream: batchstream always streams; remove 'stream'"],
        ),
        (
            '{"id": "q", "promt": "Hi"}',
            ["promt: unknown key; did you mean 'prompt'?", "no 'prompt' or 'messages'; give one"],
        ),
        (
            '{"id": "q", "prompt": "Hi", "max_token": 5}',
            ["max_token: unknown key; did you mean 'max_tokens'?"],
        ),
        ('{"id": "q", "prompt": "Hi", "xyzzy": 5}', ["xyzzy: unknown key"]),
        ('{"custom_id": "q", "params": [1]}', ["params: expected a JSON object, got array"]),
        (
            '{"custom_id": "q", "params": {"messages": ' + MSG + ', "temprature": 0.5, "stream": true}}',
            [
                "params.temprature: unknown key; did you mean 'temperature'?",
                "params.stream: batchstream always streams; remove 'stream'",
            ],
        ),
        (
            '{"custom_id": "q", "params": {"messages": ' + MSG + ', "betas": ["b"]}}',
            ["params.betas: not part of the request body; put it at the top level, next to 'params'"],
        ),
        ('{"custom_id": "q", "params": {}}', ["params.messages: missing"]),
        (
            '{"custom_id": "q", "params": {"messages": ' + MSG + ', "max_tokens": -2}}',
            ["params.max_tokens: expected an integer >= 0, got -2"],
        ),
        (
            '{"custom_id": "q", "params": {"messages": [{"role": "user", "content": 3}]}}',
            ["params.messages[0].content: expected a string or a list of content blocks, got 3"],
        ),
        (
            '{"custom_id": "q", "params": {"messages": ' + MSG + '}, "model": "m", "max_tokens": 5}',
            ["params: cannot be combined with top-level 'max_tokens', 'model'; move them inside 'params'"],
        ),
        (
            '{"custom_id": "q", "params": {"messages": ' + MSG + '}, "prompt": "Hi"}',
            ["params: cannot be combined with 'prompt'; put the conversation in params.messages"],
        ),
    ],
)
def test_problem_messages(line: str, expected: list[str]) -> None:
    # A valid first line proves the reported line number is the file's, not the request's.
    assert problems(VALID, line) == [f"inputs.jsonl:2: {message}" for message in expected]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '{"id": "q", "prompt": "Hi", "temperature": 1.2}',
            ["temperature: expected a number from 0 to 1, got 1.2"],
        ),
        (
            '{"id": "q", "prompt": "Hi", "temperature": null}',
            ["temperature: expected a number from 0 to 1, got null"],
        ),
        ('{"id": "q", "prompt": "Hi", "top_p": -0.1}', ["top_p: expected a number from 0 to 1, got -0.1"]),
        ('{"id": "q", "prompt": "Hi", "top_p": false}', ["top_p: expected a number from 0 to 1, got false"]),
        ('{"id": "q", "prompt": "Hi", "top_k": 2.0}', ["top_k: expected an integer >= 0, got 2.0"]),
    ],
)
def test_sampling_values_are_checked_where_the_api_version_takes_them(line: str, expected: list[str]) -> None:
    assert problems(VALID, line, defaults=LEGACY) == [f"inputs.jsonl:2: {message}" for message in expected]


# --- API versions: what 2026-10-21 refuses, and the models that refuse sampling on 2023-06-01 -------------


def test_the_default_api_version_is_the_sdks() -> None:
    from anthropic._constants import ANTHROPIC_API_VERSION

    assert Defaults().resolved_api_version == ANTHROPIC_API_VERSION == "2026-10-21"


def test_an_evaluation_file_with_temperature_on_every_line_is_refused_line_by_line() -> None:
    lines = [f'{{"id": "e{n}", "prompt": "Q{n}", "temperature": 0}}' for n in range(3)]
    assert problems(*lines) == [
        f"inputs.jsonl:{n}: {refused_2026('temperature', DEFAULT_MODEL)}" for n in (1, 2, 3)
    ]


def test_every_sampling_key_of_a_line_is_named_in_both_forms() -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "temperature": 1, "top_p": 1, "top_k": 0}
    top = orjson.dumps({"id": "a", **body, "model": "claude-haiku-4-5"}).decode()
    batches = orjson.dumps({"custom_id": "b", "params": {**body, "model": "claude-haiku-4-5"}}).decode()
    assert problems(top, batches) == [
        *(
            f"inputs.jsonl:1: {refused_2026(key, 'claude-haiku-4-5')}"
            for key in ("temperature", "top_p", "top_k")
        ),
        *(
            f"inputs.jsonl:2: {refused_2026(key, 'claude-haiku-4-5', 'params.')}"
            for key in ("temperature", "top_p", "top_k")
        ),
    ]


def test_content_shapes_refused_by_api_version_2026_10_21() -> None:
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "D"}}
    cited = {"type": "text", "text": "T", "citations": [{"type": "char_location", "cited_text": "D"}]}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "ok", "citations": []}, cited]},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}, document]},
        {"role": "user", "content": [document, {"type": "text", "text": "fine"}]},
    ]
    line = orjson.dumps({"id": "q", "messages": messages}).decode()
    batches = orjson.dumps({"custom_id": "r", "params": {"messages": messages}}).decode()
    citations = (
        "citations on a text block in a user message are not accepted by API version 2026-10-21; "
        "remove them, or run with --api-version 2023-06-01"
    )
    assistant_document = (
        "a document block in an assistant message is not accepted by API version 2026-10-21; "
        "move the document into a user message, or run with --api-version 2023-06-01"
    )
    assert problems(line, batches) == [
        f"inputs.jsonl:1: messages[0].content[1].citations: {citations}",
        f"inputs.jsonl:1: messages[1].content[1]: {assistant_document}",
        f"inputs.jsonl:2: params.messages[0].content[1].citations: {citations}",
        f"inputs.jsonl:2: params.messages[1].content[1]: {assistant_document}",
    ]
    # API version 2023-06-01 takes both.
    assert [request.id for request in requests(line, batches, defaults=LEGACY)] == ["q", "r"]


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-5-5",
        "claude-opus-5",
        "claude-haiku-5-5",
        "claude-fable-5-2",
        "claude-opus-4-7",
        "claude-opus-4-8",
        "claude-sonnet-5-20261101",
    ],
)
def test_models_that_refuse_sampling_even_on_2023_06_01(model: str) -> None:
    line = orjson.dumps(
        {"id": "q", "prompt": "Hi", "model": model, "temperature": 0.5, "top_p": 1, "top_k": 3}
    )
    assert problems(line.decode(), defaults=LEGACY) == [
        f"inputs.jsonl:1: {deprecated_for(key, model)}" for key in ("temperature", "top_p", "top_k")
    ]
    # As the API does, these models still take a temperature of exactly 1 (the default) on 2023-06-01.
    one(f'{{"id": "q", "prompt": "Hi", "model": "{model}", "temperature": 1}}', LEGACY)


@pytest.mark.parametrize(
    "model", ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6", "claude-opus-4-5", "my-finetune"]
)
def test_models_that_still_take_sampling_on_2023_06_01(model: str) -> None:
    assert model_accepts_sampling(model)
    request = one(f'{{"id": "q", "prompt": "Hi", "model": "{model}", "top_k": 3}}', LEGACY)
    assert request.params["top_k"] == 3


def test_a_temperature_default_is_named_as_such() -> None:
    defaults = Defaults(temperature=0.2, api_version=LEGACY_API_VERSION)
    assert problems(VALID, defaults=defaults) == [
        f"inputs.jsonl:1: {deprecated_for('temperature', DEFAULT_MODEL)}".replace(
            "); remove it", ") (set by --temperature); remove it"
        )
    ]
    assert problems(VALID, defaults=Defaults(temperature=0.2)) == [
        f"inputs.jsonl:1: {refused_2026('temperature', DEFAULT_MODEL, given=' (set by --temperature)')}"
    ]
    assert one(VALID, Defaults(model="claude-sonnet-4-6", temperature=0.2, api_version=LEGACY_API_VERSION))


def test_a_resumed_line_is_checked_again_under_another_api_version() -> None:
    line = '{"id": "t", "prompt": "Hi", "temperature": 0}'
    recorded = recorded_from(line, defaults=LEGACY)
    assert list(iter_requests(write(line), LEGACY, recorded=recorded.get)) == [
        Unchanged("t", 1, "claude-sonnet-4-6")
    ]
    with pytest.raises(InputError):
        list(iter_requests(write(line), Defaults(model="claude-sonnet-4-6"), recorded=recorded.get))


# --- deprecated models --------------------------------------------------------------------------------------


def test_deprecated_models_are_read_from_the_installed_sdk_one_warning_each() -> None:
    assert DEPRECATED_MODELS  # the test means nothing against an SDK without the table
    model, retires = next(iter(DEPRECATED_MODELS.items()))
    assert deprecation_warnings([model, DEFAULT_MODEL, model, "claude-sonnet-4-6"]) == [
        f"model {model!r} is deprecated and will reach end-of-life on {retires} (so says the installed "
        "anthropic SDK); move to a current model, see https://docs.anthropic.com/en/docs/resources/model-deprecations"
    ]
    assert deprecation_warnings(sorted(DEPRECATED_MODELS)) == [
        warning for model in sorted(DEPRECATED_MODELS) for warning in deprecation_warnings([model])
    ]


def test_missing_model_and_max_tokens_without_defaults() -> None:
    no_defaults = Defaults(model=None, max_tokens=None)
    assert problems('{"id": "q", "prompt": "Hi"}', defaults=no_defaults) == [
        "inputs.jsonl:1: model: missing, and no --model default",
        "inputs.jsonl:1: max_tokens: missing, and no --max-tokens default",
    ]
    batch = '{"custom_id": "q", "params": {"messages": ' + MSG + "}}"
    assert problems(batch, defaults=no_defaults) == [
        "inputs.jsonl:1: params.model: missing, and no --model default",
        "inputs.jsonl:1: params.max_tokens: missing, and no --max-tokens default",
    ]


def test_invalid_utf8_names_the_column_and_byte() -> None:
    assert problems(VALID, b'{"id": "caf\xc3\xa9", "prompt": "\xff"}') == [
        "inputs.jsonl:2: invalid UTF-8: byte 0xff at column 27 (byte offset 27)"
    ]


def test_duplicate_ids_across_forms() -> None:
    assert problems(
        VALID,
        '{"id": "q1", "prompt": "A"}',
        '{"id": "q1", "prompt": "B"}',
        '{"custom_id": "q1", "params": {"messages": ' + MSG + "}}",
    ) == [
        "inputs.jsonl:3: id: duplicate id 'q1' (first on line 2)",
        "inputs.jsonl:4: custom_id: duplicate id 'q1' (first on line 2)",
    ]


def test_an_id_on_a_bad_line_still_counts_as_seen() -> None:
    assert problems('{"id": "q1", "prompt": ""}', '{"id": "q1", "prompt": "B"}') == [
        'inputs.jsonl:1: prompt: expected a non-empty string, got ""',
        "inputs.jsonl:2: id: duplicate id 'q1' (first on line 1)",
    ]


@pytest.mark.parametrize("lines", [(), ("", "   ", "\t\r")])
def test_a_file_without_requests(lines: tuple[str, ...]) -> None:
    assert problems(*lines) == ["inputs.jsonl: the file has no requests"]


def test_blank_lines_are_skipped_but_counted() -> None:
    first, second = requests("", VALID, "  ", '{"id": "b", "prompt": "Hi"}\r', "")
    assert (first.line, second.line) == (2, 4)


def test_a_byte_order_mark_is_accepted() -> None:
    [request] = iter_requests(write(b"\xef\xbb\xbf" + VALID.encode()), Defaults())
    assert request.id == "ok"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing.jsonl", "missing.jsonl: cannot read the file: No such file or directory"),
        (".", ".: cannot read the file: Is a directory"),
    ],
)
def test_an_unreadable_path_fails_before_any_request(path: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        next(iter_requests(path, Defaults()))
    assert str(caught.value) == message
    assert caught.value.total == 1


def test_a_path_object_is_accepted(tmp_path: Path) -> None:
    write(VALID)
    [request] = iter_requests(tmp_path / "inputs.jsonl", Defaults())
    assert request.id == "ok"


# --- collecting, the cap, and streaming --------------------------------------------------------------------


def test_valid_requests_are_yielded_and_all_problems_raised_at_the_end() -> None:
    write(VALID, "[]", '{"id": "b", "prompt": "Hi"}', '{"id": "c"}')
    seen: list[str] = []
    with pytest.raises(InputError) as caught:
        for request in iter_requests("inputs.jsonl", Defaults()):
            seen.append(request.id)
    assert seen == ["ok", "b"]
    assert str(caught.value) == (
        "inputs.jsonl:2: expected a JSON object, got []\ninputs.jsonl:4: no 'prompt' or 'messages'; give one"
    )
    assert caught.value.total == 2


def test_the_cap_keeps_counting() -> None:
    write(*["[]"] * 25)
    with pytest.raises(InputError) as caught:
        list(iter_requests("inputs.jsonl", Defaults(), max_problems=5))
    error = caught.value
    assert [problem.line for problem in error.problems] == [1, 2, 3, 4, 5]
    assert error.total == 25
    assert str(error).splitlines()[-1] == "... and 20 more problems"
    assert len(str(error).splitlines()) == 6


def test_the_cap_says_one_more_in_the_singular() -> None:
    with pytest.raises(InputError) as caught:
        list(iter_requests(write("[]", "[]"), Defaults(), max_problems=1))
    assert str(caught.value) == "inputs.jsonl:1: expected a JSON object, got []\n... and 1 more problem"


def test_problem_and_error_formatting() -> None:
    assert str(Problem("in.jsonl", 7, "promt", "unknown key")) == "in.jsonl:7: promt: unknown key"
    assert str(Problem("in.jsonl", 3, None, "invalid JSON: x")) == "in.jsonl:3: invalid JSON: x"
    assert (
        str(Problem("in.jsonl", None, None, "the file has no requests"))
        == "in.jsonl: the file has no requests"
    )
    error = InputError([Problem("a", 1, None, "x")], 3)
    assert str(error) == "a:1: x\n... and 2 more problems"


def test_requests_are_yielded_before_later_lines_are_read() -> None:
    path = Path(write(VALID))
    requests = iter_requests(path.name, Defaults())
    assert next(requests).id == "ok"
    # Lines written only after the first request came out must still be read and checked.
    with path.open("ab") as file:
        file.write(b'{"id": "late", "prompt": "Hi"}\n{"id": "ok", "prompt": "again"}\n')
    assert next(requests).id == "late"
    with pytest.raises(InputError) as caught:
        next(requests)
    assert str(caught.value) == "inputs.jsonl:3: id: duplicate id 'ok' (first on line 1)"


def test_a_consumer_that_stops_early_gets_no_error() -> None:
    requests = iter_requests(write(VALID, VALID), Defaults())
    next(requests)
    requests.close()  # the duplicate on line 2 is never read, so nothing is raised


# --- sample inputs -----------------------------------------------------------------------------------------


def test_sample_prompts_are_all_valid() -> None:
    loaded = list(iter_requests(SAMPLES / "prompts.jsonl", Defaults()))
    assert len(loaded) == 40
    assert all(request.params["model"] == DEFAULT_MODEL for request in loaded)
    assert sum(request.id.startswith("batch") for request in loaded) == 3
    assert any(request.has_meta for request in loaded)
    assert any(len(request.params["messages"]) > 1 for request in loaded)


def test_sample_broken_file_reports_each_deliberate_error() -> None:
    seen: list[str] = []
    with pytest.raises(InputError) as caught:
        for request in iter_requests(SAMPLES / "broken.jsonl", Defaults()):
            seen.append(request.id)
    assert seen == ["ok-capital", "ok-batch-form"]
    assert [problem.line for problem in caught.value.problems] == list(range(2, 13))
    assert caught.value.total == 11


def test_sdk_facts_read_without_importing_the_sdk_are_the_imported_sdks() -> None:
    from anthropic._constants import ANTHROPIC_API_VERSION
    from anthropic.resources.messages.messages import DEPRECATED_MODELS as used_by_messages

    from batchstream import sdkinfo

    assert sdkinfo.peek_sdk_api_version() == sdkinfo.sdk_api_version() == ANTHROPIC_API_VERSION
    assert (
        sdkinfo._read_literal(*sdkinfo._DEPRECATED_MODELS) == used_by_messages == sdkinfo.deprecated_models()
    )


def test_the_sdk_sends_that_version_on_the_wire_unless_told_otherwise() -> None:
    import anthropic
    import httpx2

    seen: list[str] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers["anthropic-version"])
        return httpx2.Response(200, json={"input_tokens": 1})

    for headers in (None, {"anthropic-version": LEGACY_API_VERSION}):
        with anthropic.Anthropic(
            api_key="k",
            base_url="http://sdk.invalid",
            http_client=httpx2.Client(transport=httpx2.MockTransport(record)),
            default_headers=headers,
        ) as client:
            client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "Hi"}])
    assert seen == [Defaults().resolved_api_version, LEGACY_API_VERSION]


def test_validate_reads_the_sdk_facts_without_importing_the_sdk() -> None:
    import subprocess
    import sys

    old = sorted(DEPRECATED_MODELS)[0]
    write(f'{{"id": "a", "prompt": "Hi", "model": "{old}"}}')
    script = (
        "import sys\n"
        "from batchstream.cli import main\n"
        "try:\n"
        "    main(['validate', 'inputs.jsonl'], prog_name='batchstream')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "assert 'anthropic' not in sys.modules, 'the SDK was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"model {old!r} is deprecated" in done.stderr

"""The command line: parse options, call the library, turn errors into messages and exit codes."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from . import console
from .batches.commands import batch_options, cancel_command, status_command
from .config import VIAS, BatchOptions, Limits, Output, RetryPolicy, RunConfig
from .errors import NO_API_KEY, BatchstreamError, ExitCode, InternalError, UsageError
from .inputs import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    LEGACY_API_VERSION,
    Defaults,
    InputError,
    accepts_sampling,
    deprecation_warnings,
    iter_requests,
)
from .runner import run_batch
from .shard import Shard

EXIT_CODES = """\b
Exit codes:
  0    every item ok
  1    finished, but some items ended in error (see the results file);
       with --fail-on-error-rate X, only when more than X of the items did
  2    usage or input error, bad API key or account (credit, spend limit), untrusted certificate,
       the first items all failing the same way, disk error; nothing lost, resumable
  3    stopped by --max-cost; run again with a higher budget to continue
  4    the API stayed unavailable longer than --max-outage; run the same command to resume
  70   stopped by an internal error (a bug; please report it); results kept, resumable
  130  interrupted (Ctrl-C / SIGTERM, or batches canceled by `batchstream cancel`);
       run the same command to resume"""


class _Group(click.Group):
    """Shows batchstream's own errors as one clear line with their exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            plural = "s" if exc.total != 1 else ""
            click.echo(
                f"batchstream: invalid input:\n{exc}\n"
                f"batchstream: {exc.total} problem{plural} found; nothing was sent and no file was written",
                err=True,
            )
            ctx.exit(ExitCode.USAGE)
        except BatchstreamError as exc:
            resume = f"\nbatchstream: resume with:\n  {_command_line()}" if exc.resumable else ""
            click.echo(f"batchstream: error: {exc}{resume}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("batchstream: interrupted", err=True)
            ctx.exit(ExitCode.INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug of ours before any result was written: one line, not a traceback
            error = InternalError.from_exception(exc, "the results file", os.environ.get("ANTHROPIC_API_KEY"))
            click.echo(f"batchstream: error: {error}", err=True)
            ctx.exit(ExitCode.INTERNAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="batchstream")
def main() -> None:
    """Run a JSONL file of prompts against the Anthropic Messages API as bounded, concurrent,
    resumable streaming requests.

    \b
    Examples:
      batchstream run prompts.jsonl --simulate        # try it on the built-in simulator
      batchstream run prompts.jsonl -c 32             # for real, with ANTHROPIC_API_KEY set
      batchstream run prompts.jsonl --model claude-haiku-5-5
      batchstream validate prompts.jsonl
      batchstream simulate --port 8765
    """


main.add_command(status_command)
main.add_command(cancel_command)


def entry() -> None:
    """The console entry point: like `main`, but once everything is written and flushed it exits without
    the interpreter's teardown, which spends about half a second freeing the SDK's type objects."""
    try:
        main(prog_name="batchstream")
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def _api_version_help() -> str:
    from .sdkinfo import peek_sdk_api_version

    sdk = peek_sdk_api_version()
    return (
        "anthropic-version header sent with every request, which decides what a line may hold "
        f"(default: the one the installed anthropic SDK sends{f', {sdk}' if sdk else ''}). "
        f"{LEGACY_API_VERSION} still accepts temperature, top_p and top_k for older models."
    )


_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")


def _check_api_version(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not _API_VERSION.fullmatch(value):
        raise click.BadParameter(f"expected a date like {LEGACY_API_VERSION}, got {value!r}")
    if value < LEGACY_API_VERSION:
        raise click.BadParameter(
            f"batchstream reads the streaming format of API version {LEGACY_API_VERSION} and later, "
            f"not {value}"
        )
    return value


def _defaults_options(func: Any) -> Any:
    options = [
        click.option(
            "--model", default=DEFAULT_MODEL, show_default=True, help="Model for lines that name none."
        ),
        click.option(
            "--max-tokens",
            type=click.IntRange(min=0),
            default=DEFAULT_MAX_TOKENS,
            show_default=True,
            help="max_tokens for lines that give none.",
        ),
        click.option("--system", default=None, help="System prompt for lines that give none."),
        click.option(
            "--temperature",
            type=click.FloatRange(0, 1),
            default=None,
            help=f"temperature for lines that give none; only with --api-version {LEGACY_API_VERSION} "
            "(later versions refuse temperature) and a model that takes it there.",
        ),
        click.option(
            "--beta", "betas", multiple=True, help="Beta flag for every line without its own 'betas'."
        ),
        click.option(
            "--api-version",
            metavar="VERSION",
            default=None,
            callback=_check_api_version,
            help=_api_version_help(),
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _defaults(
    model: str,
    max_tokens: int,
    system: str | None,
    temperature: float | None,
    betas: tuple[str, ...],
    api_version: str | None,
) -> Defaults:
    # --model "" means "no default": every line must then name its model.
    defaults = Defaults(
        model=model or None,
        max_tokens=max_tokens,
        system=system,
        temperature=temperature,
        betas=betas,
        api_version=api_version,
    )
    version = defaults.resolved_api_version
    if temperature is not None and not accepts_sampling(version):
        raise click.UsageError(
            f"--temperature: API version {version} does not accept temperature, at any value (the API "
            f"answers 400); leave --temperature out, or add --api-version {LEGACY_API_VERSION} for a model "
            "that still accepts it there"
        )
    return defaults


@main.command(epilog=EXIT_CODES)
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Results JSONL (default: INPUT with .results.jsonl); '-' streams result lines to stdout.",
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With -o -: also keep results in this file, to resume from.",
)
@click.option(
    "--summary",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Summary JSONL (default: OUTPUT with .summary.jsonl).",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Most streams open at once (a ceiling; it shrinks while the API throttles).",
)
@_defaults_options
@click.option("--base-url", envvar="ANTHROPIC_BASE_URL", help="API base URL [env: ANTHROPIC_BASE_URL].")
@click.option(
    "--simulate", is_flag=True, help="Start the built-in simulator for this run and send everything there."
)
@click.option(
    "--sim",
    "sim_options",
    multiple=True,
    metavar="KNOB=VALUE",
    help="With --simulate: a simulator knob, e.g. --sim p_529=0.05 --sim ttft_s=0.2 (see `simulate --help`).",
)
@click.option("--retry-errors", is_flag=True, help="Also run again the items recorded as errors.")
@click.option(
    "--restart",
    is_flag=True,
    help="Ignore earlier results and start over (the old file is kept as OUTPUT.bak).",
)
@click.option(
    "--price-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="JSON or TOML prices (USD per million tokens) overriding the price database.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Attempts per item before it is recorded as an error.",
)
@click.option(
    "--backoff-base",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Seconds; exponential backoff with full jitter starts here.",
)
@click.option(
    "--backoff-cap",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds; the longest backoff (a server's retry-after is honoured as given).",
)
@click.option(
    "--stall-timeout",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Seconds without a byte before an attempt is abandoned and retried.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    default=600.0,
    show_default=True,
    help="Seconds one attempt may take in all.",
)
@click.option(
    "--max-outage",
    type=click.FloatRange(min=0.001),
    default=900.0,
    show_default=True,
    help="Seconds the API may stay unavailable (every request failing: network, 5xx, 529) while the run "
    "waits and probes, before it stops with exit 4; attempts in an outage do not count in --max-attempts.",
)
@click.option("--rpm", type=click.IntRange(min=1), help="Client-side cap: requests per minute.")
@click.option(
    "--itpm",
    type=click.IntRange(min=1),
    help="Client-side cap: input tokens per minute (estimated before sending).",
)
@click.option("--otpm", type=click.IntRange(min=1), help="Client-side cap: output tokens per minute.")
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0),
    help="Budget in USD for the whole results file: never launch a request that could pass it (exit 3).",
)
@click.option("--shard", "shard_text", metavar="K/N", help="Run only shard K of N (a stable split by id).")
@click.option(
    "--fail-on-error-rate",
    type=click.FloatRange(0, 1),
    help="Exit 1 only when more than this fraction of items ended in error (default: any error).",
)
@click.option(
    "--no-auto-cache",
    is_flag=True,
    help="Do not mark and warm the prompt prefixes items share for the prompt cache (on by default).",
)
@click.option("--ordered", is_flag=True, help="When the run completes, rewrite the results in input order.")
@click.option("--no-content", is_flag=True, help="Leave the full 'content' block list out of result lines.")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary table on stderr.")
@click.option(
    "--progress-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines when stderr is not a terminal.",
)
@batch_options
def run(
    input_path: Path,
    output: Path | None,
    checkpoint: Path | None,
    summary: Path | None,
    concurrency: int,
    model: str,
    max_tokens: int,
    system: str | None,
    temperature: float | None,
    betas: tuple[str, ...],
    api_version: str | None,
    base_url: str | None,
    simulate: bool,
    sim_options: tuple[str, ...],
    retry_errors: bool,
    restart: bool,
    price_file: Path | None,
    max_attempts: int,
    backoff_base: float,
    backoff_cap: float,
    stall_timeout: float,
    timeout: float,
    max_outage: float,
    rpm: int | None,
    itpm: int | None,
    otpm: int | None,
    max_cost: float | None,
    shard_text: str | None,
    fail_on_error_rate: float | None,
    no_auto_cache: bool,
    ordered: bool,
    no_content: bool,
    quiet: bool,
    progress_interval: float,
    via: str,
    batch_size: int,
    poll_interval: float | None,
    batch_deadline: float | None,
) -> None:
    """Run every request in INPUT (JSONL) and append one result line per item to OUTPUT.

    OUTPUT is the checkpoint: run the same command again and only what is not done yet runs.
    Progress goes to stderr; stdout stays empty unless -o - sends the results there.

    \b
    Examples:
      batchstream run prompts.jsonl --simulate
      batchstream run prompts.jsonl -o out.jsonl -c 64 --model claude-haiku-5-5
      batchstream run evals.jsonl --api-version 2023-06-01 --model claude-sonnet-4-6 --temperature 0
      batchstream run prompts.jsonl --retry-errors      # resume, and redo failed items
      batchstream run prompts.jsonl --no-auto-cache     # send the prompts exactly as written
      batchstream run prompts.jsonl -o - --simulate -q | jq -r .text
      batchstream run prompts.jsonl --via batches   # the Message Batches API, at half the price
      batchstream run prompts.jsonl --via batches --batch-deadline 2h
    """
    to_stdout = output == Path("-")
    if checkpoint is not None and not to_stdout:
        raise click.BadParameter("--checkpoint goes with -o - (otherwise OUTPUT is the checkpoint)")
    simulator = _simulator_config(sim_options) if simulate else None
    api_key = os.environ.get("ANTHROPIC_API_KEY")
    if not api_key and not simulate:
        raise UsageError(NO_API_KEY)
    config = RunConfig(
        input=input_path,
        output=Output(
            path=checkpoint if to_stdout else output,
            summary=summary,
            stdout=to_stdout,
            ordered=ordered,
            content=not no_content,
        ),
        defaults=_defaults(model, max_tokens, system, temperature, betas, api_version),
        limits=Limits(concurrency=concurrency, rpm=rpm, itpm=itpm, otpm=otpm, max_cost=max_cost),
        retry=RetryPolicy(
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            stall_timeout=stall_timeout,
            timeout=timeout,
            max_outage=max_outage,
        ),
        api_key=api_key,
        base_url=base_url,
        simulate=simulate,
        simulator=simulator,
        retry_errors=retry_errors,
        restart=restart,
        price_file=price_file,
        shard=_shard(shard_text),
        fail_on_error_rate=fail_on_error_rate,
        auto_cache=not no_auto_cache,
        via=via,
        batches=BatchOptions(size=batch_size, poll_interval=poll_interval, deadline=batch_deadline),
    )
    report = run_batch(config, host=console.ConsoleHost(quiet=quiet, progress_interval=progress_interval))
    if report.interrupted:
        click.echo(
            f"batchstream: interrupted after {report.ok + report.errors} items this run; results so far in "
            f"{report.output}. Resume with:\n  {_command_line()}",
            err=True,
        )
    elif report.stopped_by_budget:
        higher = max(2 * (max_cost or 0), 0.01)
        click.echo(
            f"batchstream: stopped by the budget: ${report.spent_usd:.6f} spent of --max-cost ${max_cost:g}; "
            f"{report.total - report.already_done - report.ok - report.errors} items not run. "
            f"Continue with a higher budget:\n  {_command_line(max_cost=f'{higher:g}')}",
            err=True,
        )
    elif not quiet:
        click.echo(f"batchstream: results: {report.output}", err=True)
        if report.summary is not None:
            click.echo(f"batchstream: summary: {report.summary}", err=True)
    sys.exit(report.exit_code)


def _command_line(**replace: str) -> str:
    """The command as the user typed it, with some option values replaced: what to run to resume."""
    args = sys.argv[1:]
    if not args:
        return "the same command"
    out: list[str] = []
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        key = name.lstrip("-").replace("-", "_")
        if name.startswith("--") and key in replace:
            skip = "=" not in arg and index + 1 < len(args)
            continue
        out.append(arg)
    for key, value in replace.items():
        out += [f"--{key.replace('_', '-')}", value]
    return shlex.join(["batchstream", *out])


def _shard(text: str | None) -> Shard | None:
    if text is None:
        return None
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shard") from None


def _simulator_config(options: tuple[str, ...]) -> Any:
    from .simulator import SimulatorConfig

    knobs: dict[str, str] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KNOB=VALUE, got {option!r}", param_hint="--sim")
        knobs[name.strip().replace("-", "_")] = value.strip()
    try:
        return SimulatorConfig.from_options(**knobs)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--sim") from None


@main.command(epilog="\b\nExit codes:\n  0  the file is valid\n  2  problems found (listed on stderr)")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@_defaults_options
def validate(
    input_path: Path,
    model: str,
    max_tokens: int,
    system: str | None,
    temperature: float | None,
    betas: tuple[str, ...],
    api_version: str | None,
) -> None:
    """Check INPUT as `run` would, without sending anything or writing any file.

    \b
    Examples:
      batchstream validate prompts.jsonl
      batchstream validate prompts.jsonl --model ""      # require every line to name its model
      batchstream validate evals.jsonl --api-version 2023-06-01   # lines with temperature, older models
    """
    defaults = _defaults(model, max_tokens, system, temperature, betas, api_version)
    count = 0
    models: set[str] = set()
    for request in iter_requests(input_path, defaults):
        count += 1
        models.add(request.params["model"])
    for message in deprecation_warnings(models):
        console.warn(message)
    click.echo(f"{input_path}: {count} requests, all valid", err=True)


def _probability(name: str, what: str) -> Any:
    return click.option(f"--{name}", type=click.FloatRange(0, 1), default=0.0, show_default=True, help=what)


@main.command(epilog="\b\nExit codes:\n  0  stopped with Ctrl-C / SIGTERM\n  2  bad option")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port; 0 picks a free one."
)
@click.option(
    "--ttft",
    "ttft_s",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help="Seconds before the first event.",
)
@click.option(
    "--tokens-per-s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Pace of text deltas; 0 = as fast as possible.",
)
@click.option(
    "--reply-tokens",
    default="20,80",
    show_default=True,
    help="Reply length range MIN,MAX (or N), chosen per request.",
)
@click.option(
    "--api-key", envvar="BATCHSTREAM_SIM_API_KEY", help="Require exactly this key (else any key is accepted)."
)
@click.option(
    "--rpm", type=click.IntRange(min=1), help="Requests-per-minute limit; beyond it: 429 with retry-after."
)
@click.option(
    "--itpm", type=click.IntRange(min=1), help="Input-tokens-per-minute limit, counted as the API counts it."
)
@click.option(
    "--otpm",
    type=click.IntRange(min=1),
    help="Output-tokens-per-minute limit: max_tokens held from the start, the unused part given back.",
)
@click.option(
    "--batch-processing-s",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds a Message Batch takes to end.",
)
@_probability("p-batch-errored", "Probability that a batch request ends errored (overloaded, api_error).")
@_probability("p-batch-expired", "Probability that a batch request ends expired.")
@_probability("p-429", "Probability of a 429 rate_limit_error.")
@_probability("p-529", "Probability of a 529 overloaded_error.")
@_probability("p-500", "Probability of a 500 api_error.")
@_probability("p-error-event", "Probability of an `error` event mid-stream.")
@_probability("p-drop", "Probability of a connection dropped mid-stream.")
@_probability("p-truncate", "Probability of a stream that ends without message_stop.")
@_probability("p-stall", "Probability of a stall before the first byte.")
@click.option(
    "--stall",
    "stall_s",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds a stall lasts.",
)
@click.option(
    "--fail-first",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="The first K attempts of every request fail with --fail-kind.",
)
@click.option(
    "--fail-kind",
    type=click.Choice(["429", "529", "500", "error_event", "drop", "truncate", "stall", "400"]),
    default="529",
    show_default=True,
)
@click.option(
    "--retry-after",
    "retry_after_s",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="retry-after seconds sent with injected 429/529.",
)
@click.option(
    "--outage",
    "outage_s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds, from the first request, during which every request fails with --outage-kind.",
)
@click.option("--outage-kind", type=click.Choice(["529", "500", "reset"]), default="529", show_default=True)
@click.option(
    "--account",
    type=click.Choice(["credit_exhausted", "usage_limit", "spend_limit"]),
    help="Refuse every request as the API refuses an account out of credit (400) or past its usage (400) "
    "or spend (429) limit.",
)
@click.option("--missing-model", metavar="MODEL", help="Answer requests for MODEL with 404 not_found_error.")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed for the fault draws (same seed, same faults).",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False),
    help="Append one JSON line per request to this file.",
)
def simulate(**options: Any) -> None:
    """Serve the Anthropic Messages API on loopback, with knobs for latency and injected faults.

    Replies are deterministic per request. Point any client at the printed URL (ANTHROPIC_BASE_URL or
    --base-url); a prompt can also carry a directive such as [[sim fail=429,drop]] or [[sim status=400]].

    \b
    Examples:
      batchstream simulate --port 8765
      batchstream simulate --port 8765 --p-529 0.05 --p-drop 0.02 --rpm 600
      batchstream simulate --port 8765 --itpm 400000 --otpm 80000
      ANTHROPIC_BASE_URL=http://127.0.0.1:8765 batchstream run prompts.jsonl
    """
    from .simulator import SimulatorConfig, serve

    try:
        config = SimulatorConfig.from_options(
            **{key.replace("-", "_"): value for key, value in options.items()}
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    serve(config)


@main.command(
    name="estimate",
    epilog="\b\nExit codes:\n  0  estimate printed\n"
    "  2  usage or input error, or the API rejected the key (nothing was spent)",
)
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@_defaults_options
@click.option("--shard", "shard_text", metavar="K/N", help="Only shard K of N, as `run --shard K/N` runs it.")
@click.option(
    "--previous",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Results of an earlier run: its mean output per ok item, by model, prices a typical cost.",
)
@click.option("--json", "as_json", is_flag=True, help="Also print the estimate as JSON on stdout.")
@click.option(
    "--via",
    type=click.Choice(VIAS),
    default="stream",
    show_default=True,
    help="Price as `run --via` sends: batches costs half.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="count_tokens calls at once.",
)
@click.option("--base-url", envvar="ANTHROPIC_BASE_URL", help="API base URL [env: ANTHROPIC_BASE_URL].")
@click.option("--simulate", is_flag=True, help="Count tokens on the built-in simulator (no key needed).")
@click.option(
    "--price-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="JSON or TOML prices (USD per million tokens) overriding the price database.",
)
def estimate_command(
    input_path: Path,
    model: str,
    max_tokens: int,
    system: str | None,
    temperature: float | None,
    betas: tuple[str, ...],
    api_version: str | None,
    shard_text: str | None,
    previous: Path | None,
    as_json: bool,
    via: str,
    concurrency: int,
    base_url: str | None,
    simulate: bool,
    price_file: Path | None,
) -> None:
    """Project the input tokens and the cost of INPUT before spending anything.

    Input tokens are counted by the API's free count_tokens endpoint when ANTHROPIC_API_KEY is set (or
    with --simulate); without a key they are guessed on the high side from the prompt's size, as
    `run --max-cost` does, and labelled "approximate". The cost is a range per model: no output at
    all (min) to every item writing its full max_tokens (max), plus a typical figure with --previous.
    The table goes to stderr.

    \b
    Examples:
      batchstream estimate prompts.jsonl
      batchstream estimate prompts.jsonl --model claude-haiku-5-5 --max-tokens 256
      batchstream estimate prompts.jsonl --shard 2/4 --previous last.results.jsonl --json | jq .total
      batchstream estimate prompts.jsonl --via batches
    """
    import os

    from .estimate import estimate, format_estimate

    result = estimate(
        input_path,
        _defaults(model, max_tokens, system, temperature, betas, api_version),
        shard=_shard(shard_text),
        previous=previous,
        api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
        base_url=base_url,
        simulate=simulate,
        concurrency=concurrency,
        price_file=price_file,
        warn=console.warn,
        batch=via == "batches",
    )
    click.echo(format_estimate(result), err=True)
    if as_json:
        click.echo(result.to_json())


@main.command(
    name="merge",
    epilog="\b\nExit codes:\n  0  merged\n"
    "  1  merged, but some ids of --input have no result (listed on stderr)\n"
    "  2  conflicting results for an id, a corrupt file or bad input; nothing was written",
)
@click.argument(
    "parts", metavar="RESULTS...", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True)
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The merged results JSONL (written atomically).",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The input of the shards: order lines as in it, and report its ids that have no result.",
)
@click.option(
    "--summary",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Summary JSONL (default: OUTPUT with .summary.jsonl).",
)
def merge_command(
    parts: tuple[Path, ...], output: Path, input_path: Path | None, summary: Path | None
) -> None:
    """Join the results files of sharded runs into one results file and its summary.

    Each id ends up once: a line found in two files is kept once when both are identical, and refused
    when they differ. A truncated last line (left by a crash) is reported and skipped.

    \b
    Examples:
      batchstream merge shard-*.results.jsonl -o all.results.jsonl
      batchstream merge a.jsonl b.jsonl c.jsonl -o all.jsonl --input prompts.jsonl
    """
    from .merge import merge
    from .summary import format_table

    report = merge(
        parts,
        output,
        input_path=input_path,
        summary=summary,
        log=console.log,
    )
    click.echo(format_table(report.summary_lines), err=True)
    click.echo(
        f"batchstream: merged {report.items:,} items from {len(parts)} files into {report.output}\n"
        f"batchstream: summary: {report.summary}",
        err=True,
    )
    sys.exit(report.exit_code)


@main.command(
    name="summary",
    epilog="\b\nExit codes:\n  0  summary written\n  2  the results file cannot be read",
)
@click.argument("results", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--markdown",
    is_flag=True,
    help="Print a GitHub-flavoured Markdown summary on stdout instead of the table on stderr.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Summary JSONL (default: RESULTS with .summary.jsonl).",
)
def summary_command(results: Path, markdown: bool, output: Path | None) -> None:
    """Rebuild the summary of any results file, and write it as `run` does.

    Wall time and rates belong to a run, not to its results, so they are empty here.

    \b
    Examples:
      batchstream summary prompts.results.jsonl
      batchstream summary all.results.jsonl --markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from .config import default_summary
    from .errors import UsageError
    from .markdown import first_errors, markdown_summary
    from .pricing import Pricer
    from .summary import format_table, summarize_file, write_summary

    try:
        lines = summarize_file(results, pricer=Pricer()).lines()
    except ValueError as exc:
        raise UsageError(f"{exc}; not a results file?") from None
    write_summary(output or default_summary(results), lines)
    if markdown:
        click.echo(markdown_summary(lines, first_errors(results)), nl=False)
    else:
        click.echo(format_table(lines), err=True)

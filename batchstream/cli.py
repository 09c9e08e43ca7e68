"""The command line: parse options, call the library, turn errors into messages and exit codes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from .errors import BatchstreamError, ExitCode
from .inputs import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, Defaults, InputError, iter_requests
from .retry import Backoff
from .runner import RunConfig, run_batch

EXIT_CODES = """\b
Exit codes:
  0    every item ok
  1    finished, but some items ended in error (see the results file)
  2    usage or input error, bad API key or account; nothing lost, resumable
  130  interrupted (Ctrl-C / SIGTERM); run the same command to resume"""


class _Group(click.Group):
    """Shows batchstream's own errors as one clear line with their exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"batchstream: invalid input:\n{exc}", err=True)
            ctx.exit(ExitCode.USAGE)
        except BatchstreamError as exc:
            click.echo(f"batchstream: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("batchstream: interrupted", err=True)
            ctx.exit(ExitCode.INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="batchstream")
def main() -> None:
    """Run a JSONL file of prompts against the Anthropic Messages API as bounded, concurrent,
    resumable streaming requests.

    \b
    Examples:
      batchstream run prompts.jsonl --simulate        # try it on the built-in simulator
      batchstream run prompts.jsonl -c 32             # for real, with ANTHROPIC_API_KEY set
      batchstream validate prompts.jsonl
      batchstream simulate --port 8765
    """


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
            help="temperature for lines that give none.",
        ),
        click.option(
            "--beta", "betas", multiple=True, help="Beta flag for every line without its own 'betas'."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _defaults(
    model: str, max_tokens: int, system: str | None, temperature: float | None, betas: tuple[str, ...]
) -> Defaults:
    return Defaults(model=model, max_tokens=max_tokens, system=system, temperature=temperature, betas=betas)


@main.command(epilog=EXIT_CODES)
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Results JSONL (default: INPUT with .results.jsonl).",
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
@click.option("--rpm", type=click.IntRange(min=1), help="Client-side cap: requests per minute.")
@click.option(
    "--itpm",
    type=click.IntRange(min=1),
    help="Client-side cap: input tokens per minute (estimated before sending).",
)
@click.option("--otpm", type=click.IntRange(min=1), help="Client-side cap: output tokens per minute.")
@click.option("--no-content", is_flag=True, help="Leave the full 'content' block list out of result lines.")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary table on stderr.")
@click.option(
    "--progress-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines when stderr is not a terminal.",
)
def run(
    input_path: Path,
    output: Path | None,
    summary: Path | None,
    concurrency: int,
    model: str,
    max_tokens: int,
    system: str | None,
    temperature: float | None,
    betas: tuple[str, ...],
    base_url: str | None,
    simulate: bool,
    retry_errors: bool,
    restart: bool,
    price_file: Path | None,
    max_attempts: int,
    backoff_base: float,
    backoff_cap: float,
    stall_timeout: float,
    timeout: float,
    rpm: int | None,
    itpm: int | None,
    otpm: int | None,
    no_content: bool,
    quiet: bool,
    progress_interval: float,
) -> None:
    """Run every request in INPUT (JSONL) and append one result line per item to OUTPUT.

    OUTPUT is the checkpoint: run the same command again and only what is not done yet runs.
    Progress goes to stderr; nothing is printed on stdout.

    \b
    Examples:
      batchstream run prompts.jsonl --simulate
      batchstream run prompts.jsonl -o out.jsonl -c 64 --model claude-haiku-4-5
      batchstream run prompts.jsonl --retry-errors      # resume, and redo failed items
    """
    config = RunConfig(
        input=input_path,
        output=output,
        summary=summary,
        defaults=_defaults(model, max_tokens, system, temperature, betas),
        concurrency=concurrency,
        base_url=base_url,
        simulate=simulate,
        retry_errors=retry_errors,
        restart=restart,
        price_file=price_file,
        max_attempts=max_attempts,
        backoff=Backoff(base=backoff_base, cap=backoff_cap),
        stall_timeout=stall_timeout,
        timeout=timeout,
        rpm=rpm,
        itpm=itpm,
        otpm=otpm,
        content=not no_content,
        quiet=quiet,
        progress_interval=progress_interval,
        handle_signals=True,
    )
    report = run_batch(config)
    if report.interrupted:
        command = shlex.join(["batchstream", *sys.argv[1:]]) if sys.argv[1:] else "the same command"
        click.echo(
            f"batchstream: interrupted after {report.ok + report.errors} items this run; results so far in "
            f"{report.output}. Resume with:\n  {command}",
            err=True,
        )
    elif not quiet:
        click.echo(f"batchstream: results: {report.output}\nbatchstream: summary: {report.summary}", err=True)
    sys.exit(report.exit_code)


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
) -> None:
    """Check INPUT as `run` would, without sending anything or writing any file.

    \b
    Examples:
      batchstream validate prompts.jsonl
      batchstream validate prompts.jsonl --model ""      # require every line to name its model
    """
    defaults = _defaults(model or None, max_tokens, system, temperature, betas)  # type: ignore[arg-type]
    count = sum(1 for _ in iter_requests(input_path, defaults))
    click.echo(f"{input_path}: {count} requests, all valid", err=True)

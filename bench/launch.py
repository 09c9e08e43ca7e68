"""Start one client and report its own rusage: `python -S -I bench/launch.py RESULT.json -- ARGV...`.

Why a separate launcher: on Linux a child's `ru_maxrss` starts from its parent's peak RSS (the memory map
it was forked from is counted until `exec`), so a suite process that has ever held a large file in memory
would inflate every later client's peak RSS. This launcher stays a few MB, imports nothing beyond the
standard library (`-S`: no site-packages), spawns the client, waits for it with `os.wait4` and writes the
client's figures as JSON. Times are `time.monotonic()` (CLOCK_MONOTONIC, shared by all processes), so the
suite can relate them to what it observed meanwhile.
"""

import json
import os
import sys
import time


def main() -> None:
    result_path, separator, *argv = sys.argv[1:]
    if separator != "--" or not argv:
        raise SystemExit("usage: launch.py RESULT.json -- ARGV...")
    started = time.monotonic()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    ended = time.monotonic()
    with open(result_path, "w", encoding="utf-8") as out:
        json.dump(
            {
                "started": started,
                "ended": ended,
                "returncode": os.waitstatus_to_exitcode(status),
                "user_s": usage.ru_utime,
                "sys_s": usage.ru_stime,
                "maxrss_kb": usage.ru_maxrss,
            },
            out,
        )


if __name__ == "__main__":
    main()

"""batchstream's benchmark suite (issue 4): `python -m bench` (or `make bench`), `--quick` for a short pass.

Each scenario starts `batchstream simulate` in its own process, runs batchstream's CLI and the SDK
documentation's concurrent streaming pattern (`bench/naive.py`) against it as separate client processes,
and reads each client's CPU (user + sys) and peak RSS from `os.wait4` (through `bench/launch.py`). The
table goes to stdout and to `bench/RESULTS.md` with the date, the command and the machine.

Scenarios: many short replies (the headline: CPU per streamed event against the naive pattern), few long
replies, long tool-use input (accumulator linearity, in-process and over the wire), 2,000 concurrent
streams (event-loop lag and the progress display's CPU), a 200,000-line input and its resume, wall-time
efficiency under a fixed latency, a requests-per-minute limit, and pacing with each of RPM, ITPM and OTPM
binding (`bench/pacing.py`: time against the fastest the limit allows, and the share of 429s).

Before each scenario the suite times a fixed pure-Python loop and reports it: on a shared host the same
machine can run a third slower for minutes, with no process inside it any busier, and every CPU and
wall-time figure moves with it.

`--only NAME` runs one scenario (printed, not written to RESULTS.md unless `--results PATH`); `--slow` adds
the naive client to the over-the-wire tool-use runs (minutes); `--wait-quiet S` waits for other processes
to leave the CPUs idle before each scenario, as the figures assume a quiet machine.
"""

"""Compare this interpreter's installed packages (as `pip freeze` lists them) with a lock file.

python .ci/lock_drift.py requirements.lock           # report the differences, exit 0
python .ci/lock_drift.py --exact requirements.lock   # exit 1 unless the environment is exactly the lock
"""

from __future__ import annotations

import re
import subprocess
import sys

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def main(argv: list[str]) -> int:
    exact = "--exact" in argv
    paths = [arg for arg in argv if arg != "--exact"]
    if len(paths) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(paths[0], encoding="utf-8") as lock_file:
        locked = pins(lock_file.readlines())
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    installed = pins(freeze)
    rows = [
        f"  {name}: locked {locked.get(name, '-')}, installed {installed.get(name, '-')}"
        for name in sorted(locked.keys() | installed.keys())
        if locked.get(name) != installed.get(name)
    ]
    if not rows:
        print(f"installed packages match {paths[0]} exactly ({len(locked)} packages)")
        return 0
    print(f"installed packages that differ from {paths[0]}:")
    print("\n".join(rows))
    return 1 if exact else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

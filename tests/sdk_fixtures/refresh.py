"""Re-extract the SDK's recorded event streams from its source distribution into this directory.

    python tests/sdk_fixtures/refresh.py 2.17.0      (or: make sdk-fixtures SDK_VERSION=2.17.0)

Downloads the `anthropic` sdist of that version with pip, copies every recorded stream under its
`tests/` (`*.sse`, and `*.txt` in a `fixtures` folder that hold an event stream) to `streams/`, keeping
the SDK's own paths, with its LICENSE, and writes `manifest.json`: each stream with the stream helper the
SDK's own tests feed it to: "messages" when a test of the plain `client.messages` helpers uses it, else
"beta". Old copies are replaced.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(version: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*command, f"anthropic=={version}", "-d", tmp], check=True)
        (sdist,) = Path(tmp).glob("anthropic-*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp, filter="data")
        root = Path(tmp) / f"anthropic-{version}"
        streams = sorted(
            path
            for path in (root / "tests").rglob("*")
            if path.is_file()
            and (path.suffix == ".sse" or (path.suffix == ".txt" and "fixtures" in path.parts))
            and path.read_bytes().lstrip().startswith((b"event:", b"data:", b":"))
        )
        # Tests of the plain `client.messages` helpers, as against the beta ones (`client.beta.messages`).
        plain_tests = [
            text
            for test in (root / "tests").rglob("test_*.py")
            if "beta" not in test.name and re.search(r"client\.messages\.", text := test.read_text())
        ]
        shutil.rmtree(HERE / "streams", ignore_errors=True)
        manifest: dict[str, str] = {}
        for path in streams:
            relative = path.relative_to(root).as_posix()
            target = HERE / "streams" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            manifest[relative] = "messages" if any(path.name in text for text in plain_tests) else "beta"
        shutil.copyfile(root / "LICENSE", HERE / "LICENSE")
        document = {"anthropic": version, "streams": manifest}
        (HERE / "manifest.json").write_text(json.dumps(document, indent=2) + "\n")
        print(f"{len(manifest)} streams from anthropic {version} in {HERE / 'streams'}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: refresh.py SDK_VERSION")
    main(sys.argv[1])

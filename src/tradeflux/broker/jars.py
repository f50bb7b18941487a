"""Fetch the Apache Kafka broker from Maven Central into a cache outside git, once.

Maven resolves the artifacts listed in ``broker/pom.xml`` into
``<cache>/kafka-<version>/libs``; a ``.complete`` marker makes later calls free.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from tradeflux.broker.errors import JavaNotFoundError, MavenError

_POM = "pom.xml"
_VERSION_RE = re.compile(r"<kafka\.version>([^<]+)</kafka\.version>")
_DOWNLOADED_RE = re.compile(r"Downloaded from [^:]+: \S+/([^/\s]+) \(")
_MARKER = ".complete"

ProgressCallback = Callable[[str], None]


def pom_text() -> str:
    """Return the broker's pom.xml as shipped inside the package."""
    return resources.files("tradeflux.broker").joinpath(_POM).read_text()


def pinned_kafka_version() -> str:
    """Return the Kafka version pinned in the shipped pom.xml."""
    match = _VERSION_RE.search(pom_text())
    if match is None:  # pragma: no cover - the shipped pom always pins it
        raise MavenError("broker/pom.xml pins no <kafka.version>; reinstall tradeflux")
    return match.group(1)


def libs_dir(cache_dir: Path, version: str) -> Path:
    """Return where the jars of Kafka ``version`` live in the cache."""
    return cache_dir / f"kafka-{version}" / "libs"


def is_fetched(cache_dir: Path, version: str) -> bool:
    """Tell whether a complete copy of Kafka ``version`` is in the cache."""
    return (libs_dir(cache_dir, version) / _MARKER).exists()


def find_java() -> str:
    """Return the ``java`` to run the broker with: JAVA_HOME first, then PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise JavaNotFoundError(
            "java was not found on PATH (nor under JAVA_HOME); install a JDK or JRE 17+, "
            "e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME"
        )
    return found


def fetch_kafka(
    cache_dir: Path,
    version: str | None = None,
    on_artifact: ProgressCallback | None = None,
) -> Path:
    """Resolve Kafka ``version`` from Maven Central into the cache and return its libs folder.

    Idempotent: returns at once when the cache already holds a complete copy.
    ``on_artifact`` is called with each artifact file name Maven downloads.
    """
    version = version or pinned_kafka_version()
    target = libs_dir(cache_dir, version)
    if is_fetched(cache_dir, version):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenError(
            "Maven (mvn) was not found on PATH; it fetches the Kafka broker from Maven Central: "
            "install it, e.g. `apt-get install maven`"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        pom = Path(tmp) / _POM
        pom.write_text(pom_text())
        staging = Path(tmp) / "libs"
        cmd = [
            mvn,
            "-B",
            "-f",
            str(pom),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        tail: list[str] = []
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None  # noqa: S101 - Popen with PIPE always has it
            for line in proc.stdout:
                tail = (tail + [line.rstrip()])[-40:]
                match = _DOWNLOADED_RE.search(line)
                if match and on_artifact is not None:
                    on_artifact(match.group(1))
        if proc.returncode != 0 or not any(staging.glob("kafka_*.jar")):
            raise MavenError(
                f"Maven could not fetch Apache Kafka {version} from Maven Central: "
                f"{_maven_reason(tail)}; check the version, the network, and any proxy or "
                "mirror in ~/.m2/settings.xml"
            )
        (staging / _MARKER).write_text(version + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target


def _maven_reason(lines: list[str]) -> str:
    """Pick the most telling ``[ERROR]`` line from Maven's output."""
    errors = [ln.removeprefix("[ERROR]").strip() for ln in lines if ln.startswith("[ERROR]")]
    errors = [e for e in errors if e and not e.startswith(("->", "Re-run", "To see", "For more"))]
    if not errors:
        return "mvn exited with an error"
    reason = errors[0]
    return reason if len(reason) <= 300 else reason[:297] + "..."

"""The jars of Apache Kafka for the local broker: fetched from Maven Central once, then cached.

keydesk runs a real broker rather than a mock when no bootstrap address is
configured (``handlers/local/kafka_broker.py``), and a broker needs Kafka's jars.
Rather than vendoring a distribution, a small pom (``kafka_broker.pom.xml``)
names them and ``mvn dependency:copy-dependencies`` copies them into a cache
folder that outlives the run, so only the first start on a machine pays for
the download.  A folder is only trusted once its ``.complete`` marker is
written, so a fetch that was interrupted is simply done again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import structlog

KAFKA_VERSION = "3.9.1"
POM = Path(__file__).with_name("kafka_broker.pom.xml")
log = structlog.get_logger("keydesk.local_kafka")


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched or started; the message says why."""


def cache_dir() -> Path:
    """Where the broker jars are kept between runs (``KEYDESK_CACHE`` or ~/.cache/keydesk)."""
    return Path(os.environ.get("KEYDESK_CACHE") or Path.home() / ".cache" / "keydesk")


def fetch_jars(version: str = KAFKA_VERSION) -> Path:
    """Fetch the broker's jars through Maven once; returns the folder holding them."""
    lib = cache_dir() / f"kafka-{version}" / "lib"
    done = lib / ".complete"
    if done.exists():
        return lib
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise LocalKafkaError(
                f"`{tool}` is not on PATH: the local broker needs Java 17 "
                "and Maven (or set KEYDESK_KAFKA to an existing cluster)"
            )
    lib.mkdir(parents=True, exist_ok=True)
    log.info("local_kafka.fetching_jars", version=version, into=str(lib))
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not any(lib.glob(f"kafka_2.13-{version}.jar")):
        raise LocalKafkaError(
            "fetching Apache Kafka jars from Maven Central failed:\n"
            + (result.stdout + result.stderr)[-4000:]
        )
    done.write_text(version)
    return lib

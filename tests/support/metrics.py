"""The metrics a handler printed, read back from its EMF output (captured stdout)."""

import json
from typing import Any


def emf_blobs(output: str) -> list[dict[str, Any]]:
    blobs = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    return [b for b in blobs if "_aws" in b]


def metric_values(blobs: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(metric name, its dimensions but the service) -> value, from EMF blobs."""
    found: dict[tuple[str, str], float] = {}
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "fundrouter"
            dims = ",".join(f"{d}={blob[d]}" for d in directive["Dimensions"][0] if d != "service")
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                found[(metric["Name"], dims)] = sum(value) if isinstance(value, list) else value
    return found

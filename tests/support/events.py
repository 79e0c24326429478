"""The sample events of events/ (API Gateway requests, stream batches, schedules), as
the tests and `sam local invoke` read them."""

import json
from pathlib import Path
from typing import Any, Final

from tests.support.template import ROOT

EVENTS: Final[Path] = ROOT / "events"


def load_event(relative: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / relative).read_text())
    return loaded


def event_names(folder: str) -> list[str]:
    return sorted(path.stem for path in (EVENTS / folder).glob("*.json"))

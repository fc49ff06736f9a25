"""What the browser code takes from the server rather than keeping a copy: the order of the board's
scenario groups and of the alert severities. The dashboard imports them as the module ``/js/order.js``
(:mod:`api.routes.ui`); the shift report inlines them with its data.
"""

from __future__ import annotations

import json

from minewatch.catalogue import ScenarioKind
from minewatch.schema import SEVERITY_RANK, Severity

__all__ = ["GROUPS", "SEVERITIES", "order_module"]

# the board's groups in the order a control room shows them: the catalogue's kinds, in order, by group
GROUPS: list[str] = list(dict.fromkeys(kind.group for kind in ScenarioKind))
# least severe first
SEVERITIES: list[str] = [s.value for s in sorted(Severity, key=SEVERITY_RANK.__getitem__)]


def order_module() -> str:
    """The ES module ``/js/order.js``."""
    return ("// Made by the API from the catalogue and the alert schema (api/ui.py): the one source of these orders.\n"
            f"export const GROUPS = {json.dumps(GROUPS)};\n"
            f"export const SEVERITIES = {json.dumps(SEVERITIES)};\n")

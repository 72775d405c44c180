"""The output format flags every printing command shares: ``--format table|csv|json`` and ``--json`` (the
same as ``--format json``), so `simulate`, `compare` and the others take the same words."""
from __future__ import annotations

from accelsim.errors import UserError

FORMATS = ("table", "csv", "json")
HELP = "table | csv | json  [default: table]"


def pick_format(fmt: str | None, as_json: bool, formats: tuple[str, ...] = FORMATS) -> str:
    """The chosen format; --json and a different --format together is a one-line error."""
    if fmt is not None and fmt not in formats:
        raise UserError(f"expected one of {', '.join(formats)}, got '{fmt}'", field="--format")
    if as_json and fmt not in (None, "json"):
        raise UserError(f"--json is --format json; got --format {fmt} as well", field="--format")
    return "json" if as_json else fmt or "table"

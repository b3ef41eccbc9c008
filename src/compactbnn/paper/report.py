"""claims.json, claims.md and data/reproduction.csv: the claims (``claims``) and the reproduced numbers (``reproduction``) as reports."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from typing import Sequence

from compactbnn.paper.claims import Claim
from compactbnn.paper.reproduction import RELATIVE_TOLERANCES, Reproduced


def _totals(claims: list[Claim], reproduced: list[Reproduced]) -> tuple[int, int, int]:
    """(passed, failed, skipped): claims, plus the reproduced numbers where they count."""
    passed = sum(c.passed is True for c in claims) + sum(r.counted and r.within is True for r in reproduced)
    failed = sum(c.passed is False for c in claims) + sum(r.counted and r.within is False for r in reproduced)
    return passed, failed, sum(c.skipped for c in claims)


def to_json(claims: list[Claim], reproduced: Sequence[Reproduced] = ()) -> str:
    """Claims and the reproduction rows; passed/failed include the reproduced numbers where they count."""
    reproduced = list(reproduced)
    passed, failed, skipped = _totals(claims, reproduced)
    report = {"passed": passed, "failed": failed, "skipped": skipped, "claims": [asdict(c) for c in claims]}
    if reproduced:
        report["reproduction"] = {
            "counted": any(r.counted for r in reproduced),
            "within": sum(r.within is True for r in reproduced),
            "outside": sum(r.within is False for r in reproduced),
            "not_at_this_scale": sum(r.within is None for r in reproduced),
            "rows": [asdict(r) for r in reproduced],
        }
    return json.dumps(report, indent=2, allow_nan=True)


def reproduction_csv(reproduced: Sequence[Reproduced]) -> str:
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Reproduced)], lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in reproduced)
    return handle.getvalue()


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a "|" (as in |NoT' - NoT|) would end the cell."""
    return text.replace("|", "\\|")


def _reproduction_markdown(reproduced: list[Reproduced]) -> list[str]:
    counted = any(r.counted for r in reproduced)
    within = sum(r.within is True for r in reproduced)
    compared = sum(r.within is not None for r in reproduced)
    absent = len(reproduced) - compared
    shown = sum(r.within is not None and not r.counted for r in reproduced)
    if not counted:
        counting = ("Shown for comparison, not counted: this configuration is not at the paper's scale "
                    "(claims.reproduction.count: false).")
    elif shown:
        counting = (f"They count as checks at this configuration (claims.reproduction.count), but for {shown} that "
                    "depend on a posterior sampled below the paper's scale (claims.reproduction.reduced): those are "
                    "shown, not counted.")
    else:
        counting = "They count as checks at this configuration (claims.reproduction.count)."
    lines = ["", "## The paper's printed numbers beside this run's", "",
             f"{within} of {compared} printed numbers are reproduced within tolerance"
             + (f"; {absent} not at this scale" if absent else "") + ". " + counting,
             "", "| | quantity | source | paper | ours | at | tolerance |", "|---|---|---|---|---|---|---|"]
    for r in reproduced:
        if r.within is None:
            mark = "not at this scale"
        else:
            mark = "within" if r.within else ("**outside**" if r.counted else "outside")
        ours = "" if r.ours is None else f"{r.ours:.4g}"
        tolerance = f"{100 * r.tolerance:g} %" if r.group in RELATIVE_TOLERANCES else f"{r.tolerance:g}"
        lines.append(f"| {mark} | {_cell(r.quantity)} | {r.source} | {r.printed} | {ours} | {_cell(r.at)} | +-{tolerance} |")
    return lines


def to_markdown(claims: list[Claim], name: str, reproduced: Sequence[Reproduced] = ()) -> str:
    reproduced = list(reproduced)
    passed = sum(c.passed is True for c in claims)
    checked = sum(not c.skipped for c in claims)
    counted = [r for r in reproduced if r.counted]
    lines = [f"# Claims check: {name}", "",
             f"{passed} of {checked} checked claims hold in this run"
             + (f"; {sum(c.skipped for c in claims)} skipped by this preset" if any(c.skipped for c in claims) else "")
             + (f"; {sum(r.within is True for r in counted)} of {len(counted)} of the paper's printed numbers are "
                "reproduced within tolerance (counted, below)." if counted else "."),
             "", "| | claim | source | measured | threshold | detail |", "|---|---|---|---|---|---|"]
    for c in claims:
        mark = "skipped" if c.skipped else ("pass" if c.passed else "**FAIL**")
        lines.append(f"| {mark} | {_cell(c.statement)} | {c.source} | {c.measured:.4g} | {c.relation} {c.threshold:.4g} | {_cell(c.detail)} |")
    if reproduced:
        lines += _reproduction_markdown(reproduced)
    return "\n".join(lines) + "\n"

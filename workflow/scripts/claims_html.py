"""claims.json as one HTML page (summary line and the table of claims), which Snakemake's report shows inline."""

import html
import json

import pandas as pd
from common import start

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = start(sm)
report = json.loads(open(sm.input.json).read())
rows = pd.DataFrame([{
    "verdict": "skipped" if claim["skipped"] else ("pass" if claim["passed"] else "FAIL"),
    "claim": claim["statement"],
    "source": claim["source"],
    "measured": "" if claim["measured"] is None else f"{claim['measured']:.4g}",
    "threshold": f"{claim['relation']} {claim['threshold']:g}",
    "detail": claim.get("detail", ""),
} for claim in report["claims"]])
checked = report["passed"] + report["failed"]
summary = f"{report['passed']} of {checked} checked claims hold in this run; {report['skipped']} skipped by this configuration."
with open(sm.output.html, "w") as handle:
    handle.write("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Claims</title></head><body>\n"
                 f"<h1>Claims check: {html.escape(sm.params.name)}</h1>\n<p>{html.escape(summary)}</p>\n"
                 + rows.to_html(index=False, border=0) + "\n</body></html>\n")
log.info(summary)

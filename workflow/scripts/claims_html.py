"""claims.json as one HTML page (summary line, the table of claims, the paper's printed numbers beside ours), which Snakemake's report shows inline."""

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
passed = sum(claim["passed"] is True for claim in report["claims"])
checked = sum(not claim["skipped"] for claim in report["claims"])
summary = f"{passed} of {checked} checked claims hold in this run; {report['skipped']} skipped by this configuration."
page = [f"<h1>Claims check: {html.escape(sm.params.name)}</h1>", f"<p>{html.escape(summary)}</p>",
        rows.to_html(index=False, border=0)]
reproduction = report.get("reproduction")
if reproduction:  # every number the paper prints beside this run's (claims.md's second table)
    printed = pd.DataFrame([{
        "verdict": "not at this scale" if row["within"] is None else ("within" if row["within"] else "outside"),
        "quantity": row["quantity"], "source": row["source"], "paper": row["printed"],
        "ours": "" if row["ours"] is None else f"{row['ours']:.4g}", "at": row["at"],
        "tolerance": f"+-{row['tolerance']:g}",
    } for row in reproduction["rows"]])
    compared = reproduction["within"] + reproduction["outside"]
    page += ["<h2>The paper's printed numbers beside this run's</h2>",
             f"<p>{reproduction['within']} of {compared} printed numbers are reproduced within tolerance"
             + (" (counted as checks at this configuration)." if reproduction["counted"] else
                " (shown, not counted: this configuration is not at the paper's scale).") + "</p>",
             printed.to_html(index=False, border=0)]
with open(sm.output.html, "w") as handle:
    handle.write("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Claims</title></head><body>\n"
                 + "\n".join(page) + "\n</body></html>\n")
log.info(summary)

#!/usr/bin/env python3
"""Checks the Grafana dashboard against a real /metrics scrape.

usage: check-dashboard.py DASHBOARD.json SCRAPE.prom

The dashboard must be a JSON object with panels, each query a PromQL `expr`
over a Prometheus datasource variable; every `pushprobe_*` series name a query
uses must be a sample name in the scrape (parsed with prometheus_client's
text parser). Exits 1 naming what is wrong.
"""
import json
import re
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    dashboard_path, scrape_path = sys.argv[1], sys.argv[2]
    with open(dashboard_path, encoding="utf-8") as f:
        dash = json.load(f)
    with open(scrape_path, encoding="utf-8") as f:
        scraped = {
            s.name for fam in text_string_to_metric_families(f.read()) for s in fam.samples
        }
    problems = []
    for key in ("title", "uid", "panels", "schemaVersion"):
        if key not in dash:
            problems.append(f"dashboard has no {key!r}")
    queried = set()
    exprs = 0
    for panel in dash.get("panels", []):
        title = panel.get("title", "?")
        targets = panel.get("targets", [])
        if panel.get("type") != "row" and not targets:
            problems.append(f"panel {title!r} has no query")
        for t in targets:
            expr = t.get("expr", "")
            if not expr:
                problems.append(f"panel {title!r} has a target without expr")
                continue
            exprs += 1
            names = set(re.findall(r"\bpushprobe_[a-zA-Z0-9_]+", expr))
            if not names:
                problems.append(f"panel {title!r} queries no pushprobe metric: {expr}")
            queried |= names
    missing = sorted(queried - scraped)
    for name in missing:
        problems.append(f"{name} is queried but not in the scrape {scrape_path}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"{dashboard_path}: {exprs} queries over {len(queried)} metrics, all in the scrape")


main()

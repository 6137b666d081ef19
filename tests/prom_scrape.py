#!/usr/bin/env python3
"""Scrapes a Prometheus endpoint and prints, as JSON, what the parsers of the
Python prometheus_client (independent of the Rust exporter) read from it.

usage: prom_scrape.py URL text|openmetrics [SAVE_RAW_TO]
"""
import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

url, fmt = sys.argv[1], sys.argv[2]
accept = (
    "application/openmetrics-text; version=1.0.0"
    if fmt == "openmetrics"
    else "text/plain; version=0.0.4"
)
req = urllib.request.Request(url, headers={"Accept": accept})
with urllib.request.urlopen(req, timeout=10) as r:
    content_type = r.headers.get("Content-Type", "")
    body = r.read().decode("utf-8")
if len(sys.argv) > 3:
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        f.write(body)
parse = openmetrics_families if fmt == "openmetrics" else text_string_to_metric_families
families = [
    {
        "name": f.name,
        "type": f.type,
        "samples": [
            {"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples
        ],
    }
    for f in parse(body)
]
print(json.dumps({"content_type": content_type, "raw": body, "families": families}))

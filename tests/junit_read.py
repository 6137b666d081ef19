#!/usr/bin/env python3
"""Reads a JUnit XML file the way CI tooling does, independently of
pushprobe's writer: validates it against tests/junit.xsd with xmlschema and
reads it with junitparser. Prints JSON; exits 1 if the schema rejects it.

usage: junit_read.py FILE.xml
"""
import json
import os
import sys

import junitparser
import xmlschema

path = sys.argv[1]
xsd = xmlschema.XMLSchema(os.path.join(os.path.dirname(os.path.abspath(__file__)), "junit.xsd"))
errors = [str(e.reason) + " at " + str(e.path) for e in xsd.iter_errors(path)]
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)

xml = junitparser.JUnitXml.fromfile(path)
suites = []
for suite in xml:
    cases = []
    for case in suite:
        results = case.result
        kind, message, text = "passed", None, None
        if results:
            r = results[0]
            kind = type(r).__name__.lower()
            message, text = r.message, r.text
        cases.append(
            {
                "name": case.name,
                "classname": case.classname,
                "time": case.time,
                "result": kind,
                "message": message,
                "text": text,
                "system_out": case.system_out,
            }
        )
    suites.append(
        {
            "name": suite.name,
            "tests": suite.tests,
            "failures": suite.failures,
            "errors": suite.errors,
            "skipped": suite.skipped,
            "timestamp": suite.timestamp,
            "cases": cases,
        }
    )
print(json.dumps({"suites": suites}))

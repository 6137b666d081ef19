#!/usr/bin/env python3
"""Validates Kubernetes manifests offline, strictly (unknown fields fail).

usage: check-manifests.py KUBERNETES_VERSION FILE.yaml...

- Built-in kinds: against the Kubernetes API schemas of KUBERNETES_VERSION
  that the kubernetes-validate package ships.
- Prometheus Operator kinds (monitoring.coreos.com/v1, e.g. PodMonitor):
  against the JSON schema of the typed models that the
  cloudcoil-models-prometheus-operator package generates from the
  operator's CRDs, with unknown fields forbidden.
- Any other kind fails: a manifest nothing checked is not a checked manifest.
"""
import sys

import jsonschema
import kubernetes_validate
import yaml


def strict(schema):
    """The schema with additionalProperties false on every object that lists
    its properties (pydantic leaves extras open)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


def operator_validator(kind):
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, kind, None)
    if model is None:
        return None
    schema = strict(model.model_json_schema(by_alias=True))
    return jsonschema.Draft202012Validator(schema)


def main():
    version, files = sys.argv[1], sys.argv[2:]
    failures = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        if not docs:
            print(f"FAIL {path}: no resources", file=sys.stderr)
            failures += 1
        for doc in docs:
            kind, api = doc.get("kind", "?"), doc.get("apiVersion", "?")
            name = f"{path}: {kind}/{doc.get('metadata', {}).get('name', '?')}"
            if api.startswith("monitoring.coreos.com/"):
                v = operator_validator(kind) if api == "monitoring.coreos.com/v1" else None
                if v is None:
                    print(f"FAIL {name}: no schema for {api} {kind}", file=sys.stderr)
                    failures += 1
                    continue
                errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
                for e in errors:
                    where = "/".join(str(p) for p in e.path)
                    print(f"FAIL {name}: {where}: {e.message}", file=sys.stderr)
                failures += len(errors)
                if not errors:
                    print(f"ok   {name} (prometheus-operator v1 models)")
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                print(f"ok   {name} (Kubernetes {version})")
            except kubernetes_validate.SchemaNotFoundError:
                print(f"FAIL {name}: no Kubernetes {version} schema for {api} {kind}", file=sys.stderr)
                failures += 1
            except kubernetes_validate.ValidationError as e:
                where = "/".join(str(p) for p in e.path)
                print(f"FAIL {name}: {where}: {e.message}", file=sys.stderr)
                failures += 1
    sys.exit(1 if failures else 0)


main()

"""Validates event JSON files against Schemas/events with Python's jsonschema (draft 2020-12).

This is the independent second opinion for Beckon's own decoder: the agreement test runs
every file in Schemas/examples through both and fails on any disagreement.

Usage: validate_examples.py SCHEMAS_DIR FILE...   prints one JSON object: {file: {"valid": bool, "path": str, "error": str}}
       validate_examples.py --decision SCHEMAS_DIR FILE...   validates decisions against decision.schema.json
"""
import json
import os
import sys

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource


def load_registry(events_dir):
    registry = Registry()
    schemas = {}
    for name in sorted(os.listdir(events_dir)):
        if name.endswith(".schema.json"):
            with open(os.path.join(events_dir, name), encoding="utf-8") as f:
                schema = json.load(f)
            resource = Resource.from_contents(schema)
            registry = registry.with_resource(schema["$id"], resource)
            schemas[name[: -len(".schema.json")]] = schema
    return registry, schemas


def json_path(error):
    parts = list(error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        parts.append(missing)
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def main():
    args = sys.argv[1:]
    decision = args[0] == "--decision"
    if decision:
        args = args[1:]
    events_dir = os.path.join(args[0], "events")
    registry, schemas = load_registry(events_dir)
    if decision:
        with open(os.path.join(args[0], "decision.schema.json"), encoding="utf-8") as f:
            decision_schema = json.load(f)
    results = {}
    for path in args[1:]:
        try:
            with open(path, "rb") as f:
                document = json.loads(f.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            results[path] = {"valid": False, "path": "$", "error": f"not JSON: {exc}"}
            continue
        event_type = document.get("type") if isinstance(document, dict) else None
        schema = schemas.get(event_type, schemas["envelope"]) if isinstance(event_type, str) else schemas["envelope"]
        if decision:
            schema = decision_schema
        validator = Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())
        errors = sorted(validator.iter_errors(document), key=lambda e: (len(list(e.absolute_path)), e.message))
        if errors:
            results[path] = {"valid": False, "path": json_path(errors[0]), "error": errors[0].message}
        else:
            results[path] = {"valid": True}
    json.dump(results, sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main()

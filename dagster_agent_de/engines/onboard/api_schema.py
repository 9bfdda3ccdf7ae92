"""An API's schema as a table to onboard: JSON Schema, or one schema of an OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dagster_agent_de.engines.onboard.profile import ColumnProfile, TableProfile
from dagster_agent_de.errors import SpecError

_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
_FORMATS = {"date-time": "TIMESTAMP", "date": "DATE"}
_PII_FORMATS = {"email": "email", "ipv4": "ip_address", "ipv6": "ip_address"}


def profile_from_json_schema(path: Path, schema: str, table: str, *, name: str | None = None) -> TableProfile:
    """Columns of ``name`` (an OpenAPI ``components.schemas`` entry, or the whole file as a JSON Schema)
    as the table ``schema.table`` the loader will land. Nothing is measured: ``from_data`` is False.
    """
    try:
        text = path.read_text()
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except FileNotFoundError as e:
        raise SpecError(f"API schema file {path} does not exist") from e
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise SpecError(f"API schema file {path} is not valid JSON/YAML: {e}") from e
    obj = doc
    components = ((doc or {}).get("components") or {}).get("schemas") or {}
    if components:
        if not name or name not in components:
            raise SpecError(f"{path} is an OpenAPI document: pass the schema to onboard with --name "
                            f"(one of {', '.join(sorted(components)) or 'none'})")
        obj = components[name]
    if not isinstance(obj, dict) or not isinstance(obj.get("properties"), dict):
        raise SpecError(f"{path}{f' ({name})' if name else ''} has no 'properties': not an object schema")
    if not obj["properties"]:
        raise SpecError(f"{path}{f' ({name})' if name else ''} has 0 properties: there is no column to onboard; "
                        "describe the record's fields under 'properties'")
    required = set(obj.get("required") or [])
    cols = []
    for i, (prop, spec) in enumerate(obj["properties"].items(), start=1):
        spec = spec or {}
        if "$ref" in spec:
            kind = "JSON"
        else:
            t = spec.get("type")
            t = next((x for x in t if x != "null"), "string") if isinstance(t, list) else t
            kind = _FORMATS.get(spec.get("format", ""), _TYPES.get(t or "", "JSON"))
        cols.append(ColumnProfile(prop, kind, i, description=str(spec.get("description") or "").strip(),
                                  required=prop in required, pii_hint=_PII_FORMATS.get(spec.get("format", ""))))
    return TableProfile(database=None, schema=schema, table=table, relation=f"{schema}.{table}", rows=None,
                        columns=cols, from_data=False)

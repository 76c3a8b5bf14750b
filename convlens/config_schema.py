"""The config walked along its JSON Schema: defaults filled in, keys put in one order. No TensorFlow,
no jsonschema: plain dicts and lists (convlens.config validates first)."""

from __future__ import annotations

import copy


def fill_defaults(instance, schema):
    """Set every missing key that has a ``default`` in the schema, recursively."""
    if not isinstance(instance, dict) or schema.get("type") not in ("object", None):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            fill_defaults_any(instance[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                fill_defaults_any(value, extra)


def fill_defaults_any(instance, schema):
    if isinstance(instance, dict):
        fill_defaults(instance, schema)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            fill_defaults_any(item, schema["items"])


def schema_order(instance, schema: dict):
    """``instance`` with every mapping's keys in one order whatever the file's: the schema's keys in the
    schema's order, then any others sorted. Names the user chooses (models, datasets, groups) keep the
    user's order, which the report follows. Snakemake compares a rule's params by their text, so a
    config that says the same in another order reruns nothing."""
    if isinstance(instance, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [schema_order(item, items) for item in instance]
    if not isinstance(instance, dict):
        return instance
    props = schema.get("properties", {})
    named = schema.get("additionalProperties") if not props else None
    if isinstance(named, dict):  # name -> entry: the user's names, in the user's order
        return {key: schema_order(value, named) for key, value in instance.items()}
    keys = [k for k in props if k in instance] + sorted((k for k in instance if k not in props), key=str)
    return {key: schema_order(instance[key], props.get(key, {})) for key in keys}

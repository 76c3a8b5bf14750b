"""The docs move with the code: every config key documented, the README example valid."""

import re
from pathlib import Path

import jsonschema
import yaml

from convlens.config import load_schema

ROOT = Path(__file__).resolve().parent.parent


def schema_keys(schema, out=None):
    out = set() if out is None else out
    for key, sub in schema.get("properties", {}).items():
        out.add(key)
        schema_keys(sub, out)
    for nested in ("additionalProperties", "items"):
        if isinstance(schema.get(nested), dict):
            schema_keys(schema[nested], out)
    return out


def test_every_config_key_is_in_the_reference():
    doc = (ROOT / "config" / "README.md").read_text()
    missing = sorted(k for k in schema_keys(load_schema()) if f"`{k}`" not in doc)
    assert not missing, f"config/README.md does not describe: {missing}"


def test_every_schema_key_has_a_description():
    def walk(schema, path):
        for key, sub in schema.get("properties", {}).items():
            assert sub.get("description"), f"{path}.{key} has no description"
            walk(sub, f"{path}.{key}")
        for nested in ("additionalProperties", "items"):
            if isinstance(schema.get(nested), dict):
                walk(schema[nested], path + "[]")

    walk(load_schema(), "config")


def test_readme_config_example_passes_the_schema():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    jsonschema.Draft7Validator(load_schema()).validate(yaml.safe_load(block))


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    quick = readme.index("## Quick start")
    assert readme.index("make report", quick) < readme.index("make test", quick) < readme.index("##", quick + 5)
    assert "make test" in (ROOT / ".ci" / "run").read_text()

"""The pins in environment.yml and the pip requirement files must agree."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def pins(lines):
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\[\]-]+)==([^\s#]+)", line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_conda_environment_pins_equal_pip_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip_pins = pins(
        (ROOT / "requirements-base.txt").read_text().splitlines() + (ROOT / "requirements.txt").read_text().splitlines()
    )
    assert pins(pip_section) == pip_pins


def test_lock_agrees_with_direct_pins():
    lock = pins((ROOT / "requirements.lock").read_text().splitlines())
    direct = pins(
        (ROOT / "requirements-base.txt").read_text().splitlines()
        + (ROOT / "requirements.txt").read_text().splitlines()
        + (ROOT / "requirements-dev.txt").read_text().splitlines()
    )
    for name, version in direct.items():
        key = name.replace("-", "_") if name.replace("-", "_") in lock else name
        assert lock.get(key) == version, name

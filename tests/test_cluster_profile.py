"""The SLURM profile and its pins hang together (make cluster-test runs it on a real cluster)."""

from pathlib import Path

import yaml

from tests.test_packaging import pins

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "workflow" / "profiles" / "slurm"


def test_cluster_pins_are_in_the_lock():
    lock = pins((ROOT / "requirements.lock").read_text().splitlines())
    cluster = pins((ROOT / "requirements-cluster.txt").read_text().splitlines())
    assert cluster == {"snakemake-executor-plugin-slurm": "2.8.0"}
    assert lock["snakemake-executor-plugin-slurm"] == "2.8.0"
    assert "snakemake-executor-plugin-slurm-jobstep" in lock


def test_profile_uses_squeue_and_sends_model_rules_to_a_gpu_partition():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"  # sacct never answers without accounting
    assert profile["max-threads"] >= 1
    assert {"runtime", "mem_mb"} <= set(profile["default-resources"])
    # a partition set for every job would turn the choice by GPU need off
    assert "slurm_partition" not in profile["default-resources"]
    partitions = yaml.safe_load((PROFILE / profile["slurm-partition-config"]).read_text())["partitions"]
    assert any(p.get("max_gpu", 0) >= 1 for p in partitions.values())
    assert any(p.get("max_gpu", 0) == 0 for p in partitions.values())

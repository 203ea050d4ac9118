"""Prices and cost: the shipped price table reaches Envoy through ECDS unchanged."""

import json
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def ecds_configuration(path: Path) -> dict:
    resource = yaml.safe_load(path.read_text())["resources"][0]
    return json.loads(resource["typed_config"]["config"]["configuration"]["value"])


def test_the_ecds_resource_carries_the_shipped_price_table_unchanged(tmp_path):
    shipped = json.loads((ROOT / "envoy/prices/default.json").read_text())
    assert ecds_configuration(ROOT / "envoy/ecds/token-accounting.yaml")["prices"] == shipped
    regenerated = tmp_path / "token-accounting.yaml"
    subprocess.run([str(ROOT / "scripts/sync-prices"), "envoy/prices/default.json", str(regenerated)],
                   check=True, capture_output=True)
    assert regenerated.read_text() == (ROOT / "envoy/ecds/token-accounting.yaml").read_text(), \
        "envoy/ecds/token-accounting.yaml is stale: run scripts/sync-prices"

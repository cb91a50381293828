"""conf/monitoring: what promtool says of the shipped alert rules and scrape job."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from monitoring.conftest import CONF


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_alert_rules() -> None:
    checked = promtool("check", "rules", str(CONF / "llmd-alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


def test_the_scrape_job_with_the_rules_is_a_valid_prometheus_config(tmp_path: Path) -> None:
    config = yaml.safe_load((CONF / "prometheus-scrape.yml").read_text())
    config["rule_files"] = [str(CONF / "llmd-alerts.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:11434"]

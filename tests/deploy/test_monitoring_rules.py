"""deploy/monitoring/rules.yaml: valid for Prometheus (`promtool check rules`), and its unit
tests (rules_test.yaml) pass under the real `promtool test rules`; a rule whose threshold is
changed fails them, so the tests do test the rules. (A real Prometheus evaluating the rules
against a real server's metrics: tests/deploy/test_dashboard.py.)"""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.process import PROJECT_ROOT

MONITORING = PROJECT_ROOT / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="needs promtool (Debian's prometheus; scripts/system-deps.sh)"
)


def _promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    groups = yaml.safe_load((MONITORING / "rules.yaml").read_text())["groups"]
    assert f"SUCCESS: {sum(len(group['rules']) for group in groups)} rules found" in result.stdout


def test_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "rules_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    rules = yaml.safe_load((MONITORING / "rules.yaml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((MONITORING / "rules_test.yaml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == fired


@pytest.mark.parametrize(
    ("rule", "old", "new"),
    [
        ("drift threshold", "credit_risk_input_psi) > 0.25", "credit_risk_input_psi) > 2.5"),
        ("errors count 503", 'http_response_code!="503", ', ""),
        ("probes count as traffic", 'endpoint!~"/livez|/readyz|/metrics"}[5m]))\n', "}[5m]))\n"),
        ("latency budget", ") > 0.25\n", ") > 0.5\n"),
    ],
)
def test_a_changed_rule_fails_its_unit_tests(tmp_path: Path, rule: str, old: str, new: str) -> None:
    text = (MONITORING / "rules.yaml").read_text()
    assert old in text, rule
    (tmp_path / "rules.yaml").write_text(text.replace(old, new))
    shutil.copy(MONITORING / "rules_test.yaml", tmp_path / "rules_test.yaml")
    assert _promtool("check", "rules", "rules.yaml", cwd=tmp_path).returncode == 0
    assert _promtool("test", "rules", "rules_test.yaml", cwd=tmp_path).returncode != 0, rule

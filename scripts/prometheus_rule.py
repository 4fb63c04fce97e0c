"""Writes the monitoring overlay's PrometheusRule from deploy/monitoring/rules.yaml, the one
source of the alert rules (kustomize cannot wrap a plain rule file into a custom resource).

    python scripts/prometheus_rule.py          # rewrite the PrometheusRule
    python scripts/prometheus_rule.py --check  # exit 1 if it is out of date (tests/deploy)

The rule groups are copied as text, comments and layout kept, under the resource's `spec:`.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "monitoring" / "rules.yaml"
TARGET = ROOT / "deploy" / "kubernetes" / "overlays" / "monitoring" / "prometheusrule.yaml"
HEADER = """\
# GENERATED from deploy/monitoring/rules.yaml by scripts/prometheus_rule.py: edit that file, then
# run `python scripts/prometheus_rule.py`. Prometheus Operator loads the rules of every
# PrometheusRule its Prometheus' ruleSelector matches: add the labels yours selects (for
# kube-prometheus-stack, `release: <its release name>`), e.g. with `labels:` in your kustomization.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: credit-risk
  labels:
    app.kubernetes.io/name: credit-risk
spec:
"""


def render(rules: str) -> str:
    lines = rules.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = [f"  {line}" if line else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main(argv: list[str]) -> int:
    wanted = render(RULES.read_text())
    if argv == ["--check"]:
        if TARGET.read_text() != wanted:
            print(f"{TARGET} is stale: run python scripts/prometheus_rule.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""deploy/monitoring/dashboard.json against the real thing: a real server under a bounded,
mixed load on loopback, scraped every second by a real Prometheus; every expression of the
dashboard is evaluated over Prometheus' HTTP API (none may fail, each must return data). The
same Prometheus loads deploy/monitoring/rules.yaml: every alert rule must evaluate cleanly, and
every metric the rules name must be one this server exports."""

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT, ServedProcess, served
from tests.contract_cases import GOOD
from tests.deploy import prometheus_server
from tests.deploy.prometheus_server import JOB, Prometheus

MONITORING = PROJECT_ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "dashboard.json"
RULES = MONITORING / "rules.yaml"
# Exported only by a server with a models file (a challenger in shadow mode, for the matrix): the
# champion/challenger tests read them from such a server (tests/service/test_champion_challenger.py).
ONLY_WITH_A_MODELS_FILE = {
    "credit_risk_models_reload_failures_total",
    "credit_risk_challenger_decisions_total",
}
# What Grafana would put in place of the dashboard's variables here: the scrape job, and a rate
# window of several scrapes (Grafana's $__rate_interval is at least 4 scrape intervals).
VARIABLES = {"$__rate_interval": "10s", "$job": JOB}
LOAD_S = 40.0  # the most the load runs; it stops once every expression has answered
REQUESTS_PER_LANE = 20_000  # and bounded in count

pytestmark = pytest.mark.skipif(
    prometheus_server.binary() is None, reason="needs Debian's prometheus (scripts/system-deps.sh)"
)


def dashboard_queries() -> dict[str, str]:
    """Every target expression of the dashboard, by "panel title / refId"."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries[f"{panel['title']} / {target['refId']}"] = target["expr"]
    return queries


def with_variables(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


def test_dashboard_is_well_formed() -> None:
    """Each panel queries the dashboard's Prometheus variable, with a unique id, and every
    variable an expression uses is one the dashboard defines (or Grafana's own)."""
    dashboard = json.loads(DASHBOARD.read_text())
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert defined == {"datasource", "job"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert graphs
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$\w+", target["expr"]))
            assert used <= {"$job", "$__rate_interval"}, (panel["title"], used)
            assert "$" not in with_variables(target["expr"])


@dataclass
class Load:
    """Lanes of clients on loopback until `stop` (or their deadline and request count)."""

    url: str
    lanes: list[Callable[[httpx.Client], httpx.Response]]
    statuses: dict[int, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, deadline: float) -> None:
        def lane(send: Callable[[httpx.Client], httpx.Response]) -> None:
            with httpx.Client(base_url=self.url, timeout=30) as client:
                for _ in range(REQUESTS_PER_LANE):
                    if self.stop.is_set() or time.monotonic() > deadline:
                        return
                    status = send(client).status_code
                    with self._lock:
                        self.statuses[status] = self.statuses.get(status, 0) + 1

        threads = [threading.Thread(target=lane, args=(send,)) for send in self.lanes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _lanes(records: Sequence[dict[str, object]]) -> list[Callable[[httpx.Client], httpx.Response]]:
    """Single applicants (real rows: every status, real drift), batches, explanations, bulk
    column-wise bodies (two bulk bodies at once pass this server's 1 KiB bulk budget: 503),
    batches the 64-row queue cannot all hold (503), and bad requests (422)."""
    rows = iter(range(10**9))

    def applicant() -> dict[str, object]:
        return records[next(rows) % len(records)]

    def classify(client: httpx.Client) -> httpx.Response:
        return client.post("/classify", json=applicant())

    def batch(client: httpx.Client) -> httpx.Response:
        return client.post("/classify_batch", json=[applicant() for _ in range(50)])

    def explain(client: httpx.Client) -> httpx.Response:
        return client.post("/explain", json=applicant())

    def explain_batch(client: httpx.Client) -> httpx.Response:
        return client.post("/explain_batch", json=[applicant() for _ in range(5)])

    def bulk(client: httpx.Client) -> httpx.Response:
        chosen = [applicant() for _ in range(50)]
        return client.post("/classify_bulk", json={k: [r[k] for r in chosen] for k in GOOD})

    def bad(client: httpx.Client) -> httpx.Response:
        time.sleep(0.02)
        return client.post("/classify", json={**GOOD, "age": 12})

    lanes: list[Callable[[httpx.Client], httpx.Response]] = [explain, explain_batch, bad]
    lanes += [classify] * 6
    lanes += [batch] * 3
    lanes += [bulk] * 4
    return lanes


@pytest.fixture(scope="module")
def loaded_server(
    exported: ExportSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "2",
        "CREDIT_RISK_MAX_BULK_BYTES_IN_FLIGHT": "1024",
        "CREDIT_RISK_MAX_QUEUE_ROWS": "64",
    }
    folder = tmp_path_factory.mktemp("dashboard-server")
    env["CREDIT_RISK_DECISION_LOG"] = str(folder / "decisions")  # the decision-record metrics
    log = folder / "serve.log"
    with served(env, log_path=log, extra_args=("--production",)) as server:
        yield server


def _answered(prometheus: Prometheus, expr: str) -> bool:
    """The query succeeds (raises otherwise) and returns at least one number."""
    result = prometheus.query(expr)
    return any(sample["value"][1] not in ("NaN", "+Inf", "-Inf") for sample in result)


@pytest.mark.slow
def test_every_dashboard_expression_returns_data_from_a_real_prometheus(
    loaded_server: ServedProcess, records: list[dict[str, object]], tmp_path: Path
) -> None:
    queries = {name: with_variables(expr) for name, expr in dashboard_queries().items()}
    rule_metrics = set(re.findall(r"\b(?:bentoml_service|credit_risk)_\w+", RULES.read_text()))
    rule_metrics -= ONLY_WITH_A_MODELS_FILE
    target = loaded_server.url.removeprefix("http://")
    load = Load(loaded_server.url, _lanes(records))
    with prometheus_server.running(tmp_path, [target], rule_files=[RULES]) as prometheus:
        runner = threading.Thread(target=load.run, args=(time.monotonic() + LOAD_S,))
        runner.start()
        try:
            waiting = dict(queries)
            started = time.monotonic()
            while waiting and time.monotonic() < started + LOAD_S:
                time.sleep(1)
                waiting = {n: e for n, e in waiting.items() if not _answered(prometheus, e)}
            print(f"{len(queries) - len(waiting)} of {len(queries)} expressions answered after "
                  f"{time.monotonic() - started:.1f} s of load")  # fmt: skip
            rules = prometheus.rules()
            missing = {m for m in rule_metrics if not prometheus.query(f"count({m})")}
        finally:
            load.stop.set()
            runner.join()
    assert load.statuses.get(200, 0) > 100, load.statuses
    assert not waiting, f"no data (statuses {load.statuses}): {json.dumps(waiting, indent=1)}"
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert len(rules) == sum(len(group["rules"]) for group in groups)
    unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not unhealthy, unhealthy
    assert not missing, f"rules.yaml names metrics the server does not export: {missing}"

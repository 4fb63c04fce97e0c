"""A rolling model update and its rollback lose no request (issue 11).

Two `bentoml serve` replicas (1 worker each, each its own BENTOML_HOME on the shared test model
store, BENTOML_CONTAINERIZED as in the image) behind a real HAProxy that health-checks /readyz,
under a steady /classify load. Each replica is replaced the way deploy/kubernetes/base/deployment.yaml
has Kubernetes do it (RollingUpdate, maxSurge 1, maxUnavailable 0):
  1. start a replica with the new model tag; once it is ready, HAProxy gets its address and
     must see it UP through its own health check (a ready pod's endpoint is added);
  2. take the old replica out of the balancer (`state drain`: no new requests, those in flight
     finish) and at the same moment send SIGTERM to its PID 1, `bentoml serve`, as the kubelet
     does (the endpoint is removed concurrently with SIGTERM); SIGKILL would come only after the
     manifest's terminationGracePeriodSeconds;
  3. the next replica, while the old one exits (Kubernetes does not wait for a terminating pod
     before starting the next one either).
Then the same back to the old tag. Every request's outcome is recorded: any non-200 or socket
error fails the test, every answer is the named model's own probability for that applicant,
and requests sent after the last old replica exited are all answered by the new model.

HAProxy retries only requests that never got a connection (`retry-on conn-failure`), so a
request that reached a server and was cut would show up here as a failure. When the server
drains by itself on SIGTERM (CREDIT_RISK_DRAIN_DELAY_S, issue 9), the explicit HAProxy drain
and the server's own drain overlap, as the endpoint removal and SIGTERM do in Kubernetes.
"""

import itertools
import os
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from export.pipeline import ExportSummary, run_export
from harness.haproxy import Balancer, balanced, haproxy_binary
from harness.process import PROJECT_ROOT, ServedProcess, served
from tests.deploy.steady_load import Lane, Outcome, SteadyLoad
from tests.reference import reference_probabilities

pytestmark = pytest.mark.slow

DEPLOYMENT = PROJECT_ROOT / "deploy" / "kubernetes" / "base" / "deployment.yaml"
RECORDS = 300  # distinct applicants cycled by the load
ANSWERS_PER_PHASE = 100  # answers required after each roll completes
LANES = (  # light on purpose: new replicas start on the same 2 cores
    Lane("/classify", connections=4, pause_s=0.03),
    Lane("/classify_bulk", connections=1, pause_s=0.1, bulk_rows=5_000),
)
IN_FLIGHT_WAIT_S = 30  # for a request to be in flight on the replica about to be replaced
REPLICA_ENV = {
    "CREDIT_RISK_WORKERS": "1",
    "BENTOML_CONTAINERIZED": "true",  # as in the image: BentoML does not respawn workers
    # Once the server drains by itself (issue 9): short, to keep this test quick; the balancer
    # has already stopped sending when SIGTERM arrives.
    "CREDIT_RISK_DRAIN_DELAY_S": "1",
}


def grace_period_s() -> float:
    """The manifest's terminationGracePeriodSeconds: the kubelet's SIGKILL deadline."""
    spec = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    return float(spec["terminationGracePeriodSeconds"])


@dataclass
class Replica:
    server: ServedProcess
    lifetime: ExitStack  # closing it stops the server (if still running) and removes its home
    slot: str = ""


class Fleet:
    """Replicas behind one balancer, replaced as a Kubernetes rolling update does."""

    def __init__(self, tmp_path: Path, stack: ExitStack) -> None:
        self.tmp_path = tmp_path
        self.stack = stack
        self.numbers = itertools.count(1)
        self.grace_s = grace_period_s()
        self.exit_seconds: list[float] = []
        self.in_flight: list[int] = []  # requests on each replica when it was told to stop
        self.waiter = ThreadPoolExecutor(2)
        stack.callback(self.waiter.shutdown)

    def start(self, tag: str) -> Replica:
        lifetime = ExitStack()
        self.stack.push(lifetime)  # stopped on any failure
        log = self.tmp_path / f"replica-{next(self.numbers)}.log"
        server = lifetime.enter_context(
            served({**REPLICA_ENV, "CREDIT_RISK_MODEL_TAG": tag}, log_path=log)
        )
        return Replica(server, lifetime)

    def terminate(self, balancer: Balancer, old: Replica) -> "Future[tuple[int | None, float]]":
        """Once a request is in flight on `old`: its endpoint removed and SIGTERM to its PID 1
        at the same moment. The future gives its exit code (None: still running at the end of
        the grace period, when the kubelet would SIGKILL it) and seconds to exit."""
        deadline = time.monotonic() + IN_FLIGHT_WAIT_S
        while (in_flight := int(balancer.stats()[old.slot]["scur"])) == 0:
            assert time.monotonic() < deadline, f"no request reached {old.slot} to be cut"
            time.sleep(0.005)
        self.in_flight.append(in_flight)
        balancer.set_state(old.slot, "drain")
        old.server.process.send_signal(signal.SIGTERM)
        return self.waiter.submit(self._exit, old.server.process, time.monotonic())

    def _exit(self, process: subprocess.Popen[bytes], since: float) -> tuple[int | None, float]:
        try:
            code: int | None = process.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - since

    def wait_exit(
        self, balancer: Balancer, old: Replica, exited: "Future[tuple[int | None, float]]"
    ) -> None:
        code, seconds = exited.result()
        log = old.server.log()[-3000:]
        assert code is not None, f"still running {self.grace_s:.0f} s after SIGTERM:\n{log}"
        assert code == 0, f"exit code {code}:\n{log}"
        self.exit_seconds.append(seconds)
        try:  # the workers went with it: nothing left of its process group
            os.killpg(old.server.process.pid, 0)
            pytest.fail(f"processes of replica {old.server.port} outlived `bentoml serve`")
        except ProcessLookupError:
            pass
        balancer.set_state(old.slot, "maint")  # the slot is free for the next replica
        old.lifetime.close()

    def roll(self, balancer: Balancer, replicas: list[Replica], tag: str) -> list[Replica]:
        """Replaces every replica by one serving `tag`, one at a time; returns once every old
        replica has exited."""
        new: list[Replica] = []
        leaving = []
        for old in replicas:
            replica = self.start(tag)
            replica.slot = balancer.add(replica.server.port)  # waits until HAProxy sees it UP
            new.append(replica)
            leaving.append((old, self.terminate(balancer, old)))
        for old, exited in leaving:
            self.wait_exit(balancer, old, exited)
        return new


def _failures(outcomes: list[Outcome]) -> list[str]:
    return [f"{o.status or 'socket'}: {o.error}" for o in outcomes if o.status != 200]


def test_rolling_update_and_rollback_lose_no_request(
    exported: ExportSummary, records: list[dict[str, object]], tmp_path: Path
) -> None:
    haproxy_binary()  # fails with the install command when HAProxy is missing
    newer = run_export(seed=3)
    old_tag, new_tag = exported.onnx_tag, newer.onnx_tag
    sample = records[:RECORDS]
    expected = {s.onnx_tag: reference_probabilities(s, sample) for s in (exported, newer)}
    assert np.abs(expected[old_tag] - expected[new_tag]).max() > 1e-3  # really another model

    with ExitStack() as stack:
        fleet = Fleet(tmp_path, stack)
        with ThreadPoolExecutor(2) as pool:  # the first two start together, like a new Deployment
            replicas = list(pool.map(lambda _: fleet.start(old_tag), range(2)))
        balancer = stack.enter_context(
            balanced(  # a spare slot per replica: the old ones leave while new ones come in
                [r.server.port for r in replicas], log_path=tmp_path / "haproxy.log", spare=2
            )
        )
        for i, replica in enumerate(replicas):
            replica.slot = balancer.slots[i]
        with SteadyLoad(balancer.port, sample, expected, LANES) as load:
            began = time.monotonic()
            load.wait_answers(ANSWERS_PER_PHASE, since=began)

            replicas = fleet.roll(balancer, replicas, new_tag)
            rolled = time.monotonic()
            load.wait_answers(ANSWERS_PER_PHASE, since=rolled)

            rolling_back = time.monotonic()
            replicas = fleet.roll(balancer, replicas, old_tag)
            rolled_back = time.monotonic()
            load.wait_answers(ANSWERS_PER_PHASE, since=rolled_back)
            ended = time.monotonic()
        per_slot = {slot: int(row["stot"]) for slot, row in balancer.stats().items()}

    outcomes = load.outcomes
    print(
        f"\nrolling update: {len(outcomes)} requests in {ended - began:.0f} s (roll "
        f"{rolled - began:.0f} s, rollback {rolled_back - rolling_back:.0f} s), "
        f"{Counter((o.path, o.status) for o in outcomes)}, models "
        f"{Counter(o.model for o in outcomes)}, "
        f"{next(fleet.numbers) - 1} replicas started, old replicas exited "
        f"{', '.join(f'{s:.1f}' for s in fleet.exit_seconds)} s after SIGTERM with "
        f"{fleet.in_flight} requests in flight; requests per HAProxy "
        f"slot {per_slot}"
    )
    failures = _failures(outcomes)
    assert not failures, f"{len(failures)} of {len(outcomes)} requests failed: {failures[:10]}"
    for outcome in outcomes:  # each answer is the named model's own, for those applicants
        assert outcome.model in expected and outcome.max_error < 1e-6, outcome
    during_roll = [o for o in outcomes if began <= o.sent < rolled]
    after_roll = [o for o in outcomes if rolled <= o.sent < rolling_back]
    after_rollback = [o for o in outcomes if o.sent >= rolled_back]
    assert {o.model for o in during_roll} == {old_tag, new_tag}  # both served while rolling
    assert {o.model for o in after_roll} == {new_tag}
    assert {o.model for o in after_rollback} == {old_tag}

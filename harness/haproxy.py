"""Runs a real HAProxy in front of server replicas on loopback (tests and benchmarks).

The backend has one server slot per replica plus spare slots in maintenance: a rolling update
puts a new replica into a spare slot (`set server ... addr`, `state ready`), waits for HAProxy's
own health check (GET /readyz) to see it UP, then drains the old one's slot, as Kubernetes
adds a ready pod's endpoint and removes a terminating one's. Commands go over the runtime API
(the admin stats socket).
"""

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.process import free_port

BACKEND = "replicas"
UNUSED_PORT = 9  # the discard port: nothing listens there; a spare slot points at it

_CONFIG = """\
global
    stats socket "{socket}" mode 600 level admin
    maxconn 4096
    # One thread: tens of thousands of requests per second, and this machine has 2 cores.
    nbthread 1

defaults
    mode http
    timeout connect 2s
    # Above the server's request timeout (30 s): HAProxy never cuts a request the server would
    # still answer.
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    # Retry only when no connection could be made (the default `retry-on conn-failure`), then on
    # another server (redispatch): a request that reached a server is never sent twice.
    retries 3
    retry-on conn-failure
    option redispatch

frontend front
    bind 127.0.0.1:{port}
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server check inter {check_ms} fall 2 rise 1
{servers}
"""


class HaproxyMissingError(RuntimeError):
    """HAProxy is not installed on this machine."""


def haproxy_binary() -> str:
    binary = shutil.which("haproxy")
    if binary is None:
        raise HaproxyMissingError(
            "HAProxy is not installed: `apt-get install -y haproxy` (.ci/run does it as root)"
        )
    return binary


def slot_name(index: int) -> str:
    return f"replica{index}"


@dataclass
class Balancer:
    process: subprocess.Popen[bytes]
    port: int
    socket_path: Path
    log_path: Path
    slots: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, line: str) -> str:
        """One runtime-API command; HAProxy answers and closes the connection."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def _checked(self, line: str) -> None:
        answer = self.command(line).strip()
        if answer:  # successful `set server` commands answer nothing (or a change notice)
            lowered = answer.lower()
            if "no such" in lowered or "error" in lowered or "unknown" in lowered:
                raise RuntimeError(f"HAProxy refused {line!r}: {answer}")

    def set_state(self, slot: str, state: str) -> None:
        """ready, drain (no new requests, requests in flight finish) or maint."""
        self._checked(f"set server {BACKEND}/{slot} state {state}")

    def set_port(self, slot: str, port: int) -> None:
        self._checked(f"set server {BACKEND}/{slot} addr 127.0.0.1 port {port}")

    def stats(self) -> dict[str, dict[str, str]]:
        """`show stat` rows of the backend's servers, by slot name."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] in self.slots
        }

    def status(self, slot: str) -> str:
        """UP, DOWN, MAINT, DRAIN, ... (a slot going up or down shows e.g. `DOWN 1/2`)."""
        return self.stats()[slot]["status"]

    def wait_status(self, slot: str, status: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while (seen := self.status(slot)) != status:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{slot} is {seen!r}, not {status!r}, after {timeout_s} s")
            time.sleep(0.05)

    def free_slot(self) -> str:
        """A slot in maintenance, for the next replica."""
        for slot, row in self.stats().items():
            if row["status"] == "MAINT":
                return slot
        raise RuntimeError("no spare slot: every slot holds a replica")

    def add(self, port: int) -> str:
        """Puts the replica on `port` into a spare slot and waits for HAProxy to see it UP."""
        slot = self.free_slot()
        self.set_port(slot, port)
        self.set_state(slot, "ready")
        self.wait_status(slot, "UP")
        return slot


def _config(port: int, socket_path: Path, ports: Sequence[int], spare: int, check_ms: int) -> str:
    servers = [f"    server {slot_name(i)} 127.0.0.1:{p}" for i, p in enumerate(ports)] + [
        f"    server {slot_name(len(ports) + i)} 127.0.0.1:{UNUSED_PORT} disabled"
        for i in range(spare)
    ]
    return _CONFIG.format(
        socket=socket_path,
        port=port,
        backend=BACKEND,
        check_ms=check_ms,
        servers="\n".join(servers),
    )


@contextmanager
def balanced(
    ports: Sequence[int], *, log_path: Path, spare: int = 1, check_ms: int = 200
) -> Iterator[Balancer]:
    """HAProxy on a free loopback port in front of the replicas on `ports`, `spare` more slots
    in maintenance; yields once every replica is UP in HAProxy's own health checks."""
    binary = haproxy_binary()
    workdir = Path(tempfile.mkdtemp(prefix="credit-risk-haproxy-"))
    socket_path = workdir / "admin.sock"
    port = free_port()
    config = workdir / "haproxy.cfg"
    config.write_text(_config(port, socket_path, ports, spare, check_ms))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)],  # -db: foreground, no daemon
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    slots = tuple(slot_name(i) for i in range(len(ports) + spare))
    balancer = Balancer(process, port, socket_path, log_path, slots)
    try:
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"HAProxy did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        for i in range(len(ports)):
            balancer.wait_status(slot_name(i), "UP")
        yield balancer
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

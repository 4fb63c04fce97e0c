"""One listening socket per worker (service/http/listeners.py).

In process, on real sockets: a claimed port takes sibling listeners and the kernel spreads
connections over them; a port another socket holds is refused, a sibling server's included.
On the real server (2 workers): the port has the shared socket and one per worker, connections
land on both workers, and a second server on the same port refuses to start."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psutil
import pytest

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT, ServedProcess, own_bentoml_home
from service.http.listeners import PortInUseError, claim_port, own_listener, shares_port

CONNECTIONS = 60  # none reaching one of 3 sockets: (2/3)^60, about 3e-11


@contextmanager
def _shared_listener() -> Iterator[socket.socket]:
    """A socket set up as the arbiter's: claimed, then bound and listening."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    shared = socket.socket()
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        claim_port(shared, "127.0.0.1", port)
        shared.bind(("127.0.0.1", port))
        shared.listen(128)
        yield shared
    finally:
        shared.close()


def _accept_all(listener: socket.socket) -> int:
    listener.setblocking(False)
    taken = 0
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return taken
        connection.close()
        taken += 1


def test_the_kernel_spreads_connections_over_the_listeners() -> None:
    with _shared_listener() as shared:
        assert shares_port(shared)
        own = [own_listener(shared) for _ in range(2)]
        try:
            for listener in own:
                listener.listen(128)  # as uvicorn's create_server does
            assert all(o.getsockname() == shared.getsockname() for o in own)
            clients = [socket.create_connection(shared.getsockname()) for _ in range(CONNECTIONS)]
            time.sleep(0.1)
            taken = [_accept_all(listener) for listener in (shared, *own)]
            for client in clients:
                client.close()
        finally:
            for listener in own:
                listener.close()
    assert sum(taken) == CONNECTIONS
    assert all(count > 0 for count in taken), taken


def test_a_port_in_use_is_refused() -> None:
    with _shared_listener() as running:  # another server of ours, SO_REUSEPORT set
        host, port = running.getsockname()
        with closing(socket.socket()) as second:
            with pytest.raises(PortInUseError, match=f"{port} is already in use"):
                claim_port(second, host, port)
            assert not second.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    with closing(socket.socket()) as plain:  # anything else listening there
        plain.bind(("127.0.0.1", 0))
        plain.listen(1)
        with closing(socket.socket()) as second, pytest.raises(PortInUseError):
            claim_port(second, *plain.getsockname())


def test_a_socket_without_reuseport_gets_no_sibling() -> None:
    with closing(socket.socket()) as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen(1)
        assert not shares_port(plain)


def _listeners(port: int) -> int:
    """Listening TCP sockets on `port`, each counted once however many processes hold it
    (/proc/net: psutil lists them per process and descriptor)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            count += int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A"
    return count


def _workers(server: ServedProcess) -> list[psutil.Process]:
    arbiter = psutil.Process(server.process.pid)
    return [p for p in arbiter.children() if "_bentoml_impl.worker" in " ".join(p.cmdline())]


def _clients_of(worker: psutil.Process, port: int) -> set[tuple[str, int]]:
    """The client addresses of the connections `worker` holds on `port`."""
    return {
        tuple(c.raddr)
        for c in worker.connections(kind="tcp")  # net_connections from psutil 6
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
    }


@pytest.mark.slow
def test_each_worker_listens_and_serves_its_share(server: ServedProcess) -> None:
    # The shared socket and one per worker; a worker listens on its own once it serves (the
    # server is ready as soon as one worker is).
    deadline = time.monotonic() + 60
    while _listeners(server.port) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _listeners(server.port) == 3
    workers = _workers(server)
    assert len(workers) == 2
    clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(CONNECTIONS)]
    try:
        for client in clients:
            client.sendall(b"GET /livez HTTP/1.1\r\nhost: test\r\n\r\n")
        for client in clients:
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
        held = [len(_clients_of(worker, server.port)) for worker in workers]
    finally:
        for client in clients:
            client.close()
    assert sum(held) == CONNECTIONS and all(count > 0 for count in held), held


@pytest.mark.slow
def test_a_second_server_on_the_same_port_refuses_to_start(
    server: ServedProcess, exported: ExportSummary, bentoml_home: str
) -> None:
    command = [
        sys.executable, "-m", "bentoml", "serve", "service.app:CreditRiskService",
        "--host", "127.0.0.1", "--port", str(server.port),
    ]  # fmt: skip
    with own_bentoml_home(Path(bentoml_home)) as home:  # the first server's metrics untouched
        env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true",
               "CREDIT_RISK_MODEL_TAG": exported.onnx_tag}  # fmt: skip
        second = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
    assert second.returncode != 0
    assert f"127.0.0.1:{server.port} is already in use" in second.stderr

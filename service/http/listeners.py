"""One listening socket per worker beside the one all workers share (SO_REUSEPORT).

BentoML's arbiter binds one socket and hands it to every worker. A kept-alive connection stays
with the worker that accepted it, and the worker that is awake when a burst of connections
arrives accepts most of it, so one worker's core can do all the work while the other idles
(bench/REPORT_NOTES.md measures the split). When the
shared socket has SO_REUSEPORT, each worker also listens on a socket of its own bound to the
same address, and the kernel spreads new connections over every listening socket of the port by
a hash of the connection's addresses: each worker receives its share whether or not it is awake
first.

Invariants:
- The shared socket keeps listening and every worker keeps accepting on it, so no connection
  waits on a socket nobody accepts, and the port stays bound while workers restart.
- A worker's own socket lives and dies with the worker: it listens from the moment uvicorn
  serves (after the app's start-up) and uvicorn closes it after the SIGTERM drain. The kernel
  resets connections still in its accept queue then (unless `net.ipv4.tcp_migrate_req=1`
  moves them to a sibling's socket); the accepter (accept.py) empties that queue every poll.
- SO_REUSEPORT lets any socket of the same user join the port, another server included, so the
  arbiter first checks that nothing else listens there (`claim_port`): a second server on a
  port in use still fails to start, as it does without this.
"""

import errno
import socket

REUSE_PORT = getattr(socket, "SO_REUSEPORT", None)  # absent on Windows: one shared socket


class PortInUseError(OSError):
    pass


def claim_port(shared: socket.socket, host: str, port: int) -> None:
    """Give the (not yet bound) shared socket SO_REUSEPORT, after checking that no other socket
    is bound to `host:port`; raises PortInUseError if one is."""
    if REUSE_PORT is None:
        return
    with socket.socket(shared.family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as the shared socket has it: a port whose old connections linger in
        # TIME_WAIT is free, one with a listener (reuseport or not) is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(error.errno, f"{host}:{port} is already in use") from None
            raise
    shared.setsockopt(socket.SOL_SOCKET, REUSE_PORT, 1)


def shares_port(listener: socket.socket) -> bool:
    """Whether `listener` is a TCP socket that sibling sockets may join (SO_REUSEPORT set)."""
    if REUSE_PORT is None or listener.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    return bool(listener.getsockopt(socket.SOL_SOCKET, REUSE_PORT))


def own_listener(shared: socket.socket) -> socket.socket:
    """A new socket bound to the address of `shared` (which `shares_port`), not yet listening:
    the server listens on it once it serves (uvicorn's `create_server`, after the app's
    start-up), so no connection waits on a worker still loading its models."""
    own = socket.socket(shared.family, socket.SOCK_STREAM)
    try:
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        own.setsockopt(socket.SOL_SOCKET, REUSE_PORT, 1)  # type: ignore[arg-type]
        if shared.family == socket.AF_INET6:
            own.setsockopt(
                socket.IPPROTO_IPV6,
                socket.IPV6_V6ONLY,
                shared.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY),
            )
        own.bind(shared.getsockname())
        own.setblocking(False)
    except BaseException:
        own.close()
        raise
    return own

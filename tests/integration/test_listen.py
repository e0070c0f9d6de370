"""The traffic port belongs to one levee (docs/operations.md, "One levee per
address"): its workers share it through SO_REUSEPORT, and a second levee
given the same --listen refuses to start instead of joining them and taking
half the traffic with another policy. A restart is not refused because of
connections the previous process left in TIME_WAIT."""
import socket
import subprocess

from harness import HttpConn


def listen_on(port):
    def prepare(lv):
        lv.port = port
        lv.args += ["--listen", "127.0.0.1:%d" % port]
    return prepare


def statuses(port, n):
    """Statuses of <n> requests, each on a connection of its own, so that
    the kernel picks a listening socket for each."""
    out = []
    for _ in range(n):
        c = HttpConn(port)
        try:
            out.append(c.request("GET", "/echo/share").status)
        finally:
            c.close()
    return out


def time_wait_on(port):
    """Sockets in TIME_WAIT whose local port is <port> (/proc/net/tcp, state 06)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "06":
                        n += 1
        except FileNotFoundError:
            pass
    return n


def test_second_levee_on_the_same_address_refuses_to_start(levee_factory, origin):
    a = levee_factory({"levee": {"workers": "2"}})
    b = levee_factory(wait=None, prepare=listen_on(a.port))
    b.expected_exit = True
    assert b.proc.wait(10) == 1
    err = b.stderr()
    assert "listen on 127.0.0.1:%d: the address is in use by another process" % a.port in err, err
    # the first one still has the port, all of it, with both its workers
    assert all(s == 200 for s in statuses(a.port, 20))
    assert a.status()["workers"] == 2


def test_refused_for_any_other_listener(levee_factory, origin):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as a second levee would
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        lv = levee_factory(wait=None, prepare=listen_on(s.getsockname()[1]))
        lv.expected_exit = True
        assert lv.proc.wait(10) == 1
        assert "the address is in use by another process" in lv.stderr()
    finally:
        s.close()


def test_restart_over_time_wait(levee_factory, origin):
    a = levee_factory()
    c = HttpConn(a.port)
    assert c.request("GET", "/echo/tw", headers=[("Connection", "close")]).status == 200
    assert c.wait_closed(5)  # levee closed first: its side of the connection waits in TIME_WAIT
    c.close()
    a.expected_exit = True
    a.proc.terminate()
    assert a.proc.wait(10) == 0
    assert time_wait_on(a.port) >= 1, "no TIME_WAIT socket: the test proves nothing"
    b = levee_factory(prepare=listen_on(a.port))
    assert all(s == 200 for s in statuses(b.port, 3))

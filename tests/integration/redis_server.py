"""A real redis-server on a free loopback port, for the integration tests."""
import shutil
import socket
import subprocess
import tempfile

from harness import free_port, wait_until

REDIS = shutil.which("redis-server")


class RedisError(Exception):
    pass


def _read_reply(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RedisError("unexpected reply %r" % line)


class Redis:
    """One redis-server on a free loopback port, killed by PID at the end.
    `host` and `port` put it elsewhere on the loopback network (127.0.0.2),
    e.g. on the port of another one."""

    def __init__(self, host="127.0.0.1", port=None):
        self.host = host
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="levee-redis-")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.ping(), 5, msg="redis-server answers PING")

    def ping(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.3) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args):
        """One command; returns the reply (str, int, bytes, list or None), or
        raises RedisError for an error reply."""
        with socket.create_connection((self.host, self.port), timeout=5) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            return _read_reply(s.makefile("rb"))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

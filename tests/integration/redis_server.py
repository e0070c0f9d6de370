"""A real redis-server on a free loopback port, for the integration tests."""
import shutil
import socket
import subprocess
import tempfile

from harness import free_port, wait_until

REDIS = shutil.which("redis-server")


class Redis:
    """One redis-server on a free loopback port, killed by PID at the end."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="levee-redis-")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.ping(), 5, msg="redis-server answers PING")

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.3) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

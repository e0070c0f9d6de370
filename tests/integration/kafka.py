"""A real Apache Kafka broker for levee's integration tests: one KRaft node
(broker and controller in one JVM) on loopback ports, run from the jars that
deploy/install-kafka.sh fetched from Maven Central. No Docker.

    from kafka import kafka_broker, new_broker    # fixtures and helpers

    def test_x(kafka_broker):                     # session-wide, started
        kafka_broker.create_topic("inval")
        kafka_broker.produce("inval", b'{"url":"/a"}', key="k", headers={"levee-service": "api"})
        msgs = kafka_broker.consume("inval", 1, timeout=10)

    def test_restart():                           # a broker of its own
        with new_broker() as b:
            b.kill(); b.start()                   # same data dir: messages and
                                                  # committed offsets survive

The client side is kcat (Debian package kcat, librdkafka): no JVM start per
produce, consume or metadata request. Topics are created with a CreateTopics
request written here in a few lines of the Kafka wire protocol, again to
avoid a JVM start (kafka-topics.sh costs seconds on two cores).

Every process started here is killed by PID: by close(), by the fixtures'
teardown even when a test fails, at interpreter exit for brokers a test
forgot, and by the kernel if pytest itself dies (PR_SET_PDEATHSIG).
Nothing sleeps for a fixed time: every wait polls a condition to a deadline.
"""
import atexit
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid

import pytest

from harness import _die_with_parent, free_port, wait_until

# Keep in step with deploy/install-kafka.sh and deploy/kafka/pom.xml.
KAFKA_VERSION = "3.9.1"
KAFKA_LIBS = os.environ.get(
    "LEVEE_KAFKA_LIBS",
    os.path.join(os.path.expanduser("~"), ".cache", "levee", "kafka-%s" % KAFKA_VERSION, "libs"))
KCAT = shutil.which("kcat") or "kcat"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0

# JVM flags, measured on a 2-core machine: with C1 only
# (TieredStopAtLevel=1) the broker is ready in ~2.2 s instead of ~3.2 s
# (before the class-data archive below), since a test broker never runs long
# enough for C2 to pay off; the serial collector spares two cores the
# parallel GC threads; 512 MiB is plenty for test traffic.
# -XX:-UsePerfData: no hsperfdata file in /tmp per JVM.
JVM_FLAGS = [
    "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData", "-Djava.awt.headless=true",
]

_LIVE = set()  # brokers with a process, for the atexit safety net
_CDS_DUMPING = []  # the broker writing the class-data archive now, if any


def _cds_archive():
    """Where the JVM's class-data-sharing archive for these jars lives.

    Loading and verifying Kafka's classes is about half of a broker's start
    on two cores: with an AppCDS archive of them (JDK 13+ dynamic archive)
    the start to readiness drops from ~2.1 s to ~1.2 s. The first broker that
    stops cleanly without one writes it (-XX:ArchiveClassesAtExit), so it
    serves every later broker, in this run and the next. The name depends on
    the JVM build, the flags and the libs directory, and the JVM checks the
    jars itself: a stale archive is ignored (a warning in stdout.log), never
    an error."""
    java = os.path.realpath(shutil.which("java") or "java")
    libjvm = os.path.join(os.path.dirname(os.path.dirname(java)), "lib", "server", "libjvm.so")
    try:
        st = os.stat(libjvm)
        stamp = "%s %d %d" % (libjvm, st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = java
    try:  # install-kafka.sh replaces the whole directory: a new inode
        st = os.stat(KAFKA_LIBS)
        libs = "%s %d %d" % (KAFKA_LIBS, st.st_ino, st.st_mtime_ns)
    except OSError:
        libs = KAFKA_LIBS
    key = "\n".join([stamp, libs, KAFKA_VERSION, *JVM_FLAGS])
    return os.path.join(os.path.dirname(KAFKA_LIBS), "cds-%s.jsa" % hashlib.sha1(key.encode()).hexdigest()[:12])


def _libs():
    jar = os.path.join(KAFKA_LIBS, "kafka_2.13-%s.jar" % KAFKA_VERSION)
    if not os.path.isfile(jar):
        raise RuntimeError(
            "Kafka %s is not installed: %s is missing. Run deploy/install-kafka.sh "
            "(or deploy/install-deps.sh), or point LEVEE_KAFKA_LIBS at its libs directory."
            % (KAFKA_VERSION, jar))
    if not shutil.which(KCAT):
        raise RuntimeError("kcat is not installed: run deploy/install-deps.sh (Debian package kcat)")
    return KAFKA_LIBS


def random_cluster_id():
    """What `kafka-storage.sh random-uuid` prints, without starting a JVM:
    16 random bytes, base64url without padding (22 characters). Like
    Kafka's Uuid.randomUuid(), never one starting with '-', which the
    storage tool's argument parser would take for an option."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not s.startswith("-"):
            return s


def _tail(path, n=60):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return "(%s)" % e
    return "\n".join(lines[-n:])


def _errors(path, n=8, trace=6):
    """The last n ERROR or FATAL entries of a broker log, each with the first
    `trace` lines of its stack trace."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return "(%s)" % e
    entries, cur = [], None
    for line in lines:
        if line.startswith("["):  # a new entry: "[date] LEVEL message"
            cur = None
            if "] ERROR " in line or "] FATAL " in line:
                cur = [line]
                entries.append(cur)
        elif cur is not None and len(cur) <= trace:
            cur.append(line)
    return "\n".join("\n".join(e) for e in entries[-n:]) or "(none)"


def _as_bytes(v):
    return v.encode() if isinstance(v, str) else bytes(v)


def _json_bytes(v):
    """kcat -J writes keys, values and header values through yajl: control
    characters as \\u escapes, every other byte raw, so the line may not be
    valid UTF-8. The line is decoded with surrogateescape (see _parse_json_line)
    and encoding back the same way restores the exact bytes."""
    return None if v is None else v.encode("utf-8", "surrogateescape")


def _parse_json_line(line):
    m = json.loads(line.decode("utf-8", "surrogateescape"))
    h = m.get("headers") or []  # kcat: a flat [name, value, name, value, ...]
    return {
        "topic": m["topic"],
        "partition": m["partition"],
        "offset": m["offset"],
        "timestamp": m.get("ts"),
        "key": _json_bytes(m.get("key")),
        "value": _json_bytes(m.get("payload")),
        "headers": [(h[i], _json_bytes(h[i + 1])) for i in range(0, len(h) - 1, 2)],
    }


class KafkaBroker:
    """One single-node KRaft Kafka broker in `workdir` (a new temporary
    directory when None). The data directory is formatted once; start() after
    stop() or kill() reuses it and the same ports."""

    def __init__(self, workdir=None, sasl_users=None):
        self.libs = _libs()
        # {user: password}: a second listener, SASL_PLAINTEXT with PLAIN, on
        # `sasl_port` (`sasl_bootstrap`); the PLAINTEXT one stays for the
        # harness's own tools (kcat, create_topic).
        self.sasl_users = dict(sasl_users or {})
        self.sasl_port = free_port() if self.sasl_users else None
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="levee-kafka-")
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port()
        self.controller_port = free_port()
        self.data_dir = os.path.join(self.workdir, "data")
        self.log_path = os.path.join(self.workdir, "broker.log")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        self.config_path = os.path.join(self.workdir, "server.properties")
        self.log4j_path = os.path.join(self.workdir, "log4j.properties")
        self.proc = None
        self.last_start_seconds = None  # launch to readiness, for reports
        self._cds_tmp = None  # the archive this JVM writes at exit, if any
        self._write_config()
        self._format()

    # ---------------------------------------------------------------- setup

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    @property
    def sasl_bootstrap(self):
        return "127.0.0.1:%d" % self.sasl_port

    def _write_config(self):
        props = {
            # One KRaft node that is both broker and controller.
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": "1@127.0.0.1:%d" % self.controller_port,
            "listeners": "PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (self.port, self.controller_port),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % self.port,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.data_dir,
            "num.partitions": "3",
            "auto.create.topics.enable": "true",
            # Internal topics on one broker: replication factor 1, and few
            # partitions so the group coordinator loads in a blink.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # A group's first rebalance waits 3 s by default for more members.
            "group.initial.rebalance.delay.ms": "0",
            # After a kill, the restarted node's registration is refused until
            # the previous incarnation's session expires (9 s by default; with
            # the registration retry backoff, a 15 s restart). 2.5 s, with
            # heartbeats every 0.5 s so a busy machine does not fence a live
            # broker, makes that restart ~4 s. The retries come ~0.8, 1.6 and
            # 3.2 s after the first try: 2.5 s leaves margin for the 3.2 s
            # one, and shorter gains nothing.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "2500",
            # Fewer threads on a 2-core machine; test traffic needs no more.
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "2",
            # The log cleaner (compaction of __consumer_offsets) allocates its
            # dedupe buffer on the heap at startup: 128 MiB by default.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        if self.sasl_users:
            props["listeners"] += ",SASL_PLAINTEXT://127.0.0.1:%d" % self.sasl_port
            props["advertised.listeners"] += ",SASL_PLAINTEXT://127.0.0.1:%d" % self.sasl_port
            props["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            props["sasl.enabled.mechanisms"] = "PLAIN"
            users = " ".join('user_%s="%s"' % (u, pw) for u, pw in self.sasl_users.items())
            props["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.plain.PlainLoginModule required %s;" % users)
        with open(self.config_path, "w") as f:
            f.write("# written by tests/integration/kafka.py\n")
            for k, v in props.items():
                f.write("%s=%s\n" % (k, v))
        # log4j 1.x syntax (reload4j is the slf4j binding installed next to
        # the broker). One file, appended across restarts, for _tail().
        with open(self.log4j_path, "w") as f:
            f.write(
                "log4j.rootLogger=INFO, file\n"
                "log4j.appender.file=org.apache.log4j.FileAppender\n"
                "log4j.appender.file.File=%s\n"
                "log4j.appender.file.Append=true\n"
                "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
                "log4j.appender.file.layout.ConversionPattern=[%%d] %%p %%m (%%c)%%n\n"
                # The per-request and state-change chatter says nothing a test needs.
                "log4j.logger.kafka.request.logger=WARN\n"
                "log4j.logger.state.change.logger=WARN\n" % self.log_path)

    def _java(self, main, *args, cds=()):
        archive = _cds_archive()
        if not cds and os.path.isfile(archive):
            cds = ["-XX:SharedArchiveFile=" + archive]
        return ["java", *JVM_FLAGS, *cds, "-Dlog4j.configuration=file:" + self.log4j_path,
                "-cp", os.path.join(self.libs, "*"), main, *args]

    def _cds_dump_flags(self):
        """Flags that make this broker write the class-data archive at a
        clean exit, when there is none yet and no other broker is on it."""
        archive = _cds_archive()
        if os.path.isfile(archive) or _CDS_DUMPING or not os.access(os.path.dirname(archive), os.W_OK):
            return []
        # A private name, renamed into place only after a clean exit: a JVM
        # killed while writing, or a concurrent test run, leaves no half file.
        self._cds_tmp = "%s.%d.%x.tmp" % (archive, os.getpid(), id(self))
        _CDS_DUMPING.append(self)
        return ["-XX:ArchiveClassesAtExit=" + self._cds_tmp]

    def _cds_done(self, clean):
        if self._cds_tmp is None:
            return
        try:
            if clean and os.path.getsize(self._cds_tmp) > 0:
                os.replace(self._cds_tmp, _cds_archive())
            else:
                os.unlink(self._cds_tmp)
        except OSError:
            pass
        self._cds_tmp = None
        _CDS_DUMPING.remove(self)

    def _format(self):
        if os.path.exists(os.path.join(self.data_dir, "meta.properties")):
            return  # a workdir reused from an earlier broker: keep its data
        cluster_id = random_cluster_id()
        r = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                                      "-c", self.config_path),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("kafka storage format failed (exit %d):\n%s\n--- %s:\n%s" % (
                r.returncode, r.stdout.decode("utf-8", "replace"), self.log_path, _tail(self.log_path)))

    # ---------------------------------------------------------- lifecycle

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=START_TIMEOUT):
        """Launches the broker and returns once a metadata request lists
        broker 1. Raises RuntimeError with the log tail if the JVM exits or
        the deadline passes (the process is then killed)."""
        if self.alive():
            return self
        t0 = time.monotonic()
        with open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", self.config_path, cds=self._cds_dump_flags()), cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)
        _LIVE.add(self)
        deadline = t0 + timeout
        try:
            # Wait for the port first: a kcat started before the listener is
            # bound backs off exponentially (librdkafka's reconnect backoff)
            # and would see the broker up to a second late.
            self._poll(t0, deadline, self._port_open, "the listener on %s" % self.bootstrap)
            self._poll(t0, deadline, self._lists_broker, "a metadata response listing broker 1")
        except RuntimeError:
            self.kill()
            raise
        self.last_start_seconds = time.monotonic() - t0
        return self

    def _poll(self, t0, deadline, pred, what):
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError("kafka broker exited with %s before %s\n%s" % (rc, what, self.logs()))
            if pred(max(0.5, deadline - time.monotonic())):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError("kafka broker not ready: no %s after %.0fs\n%s" % (
                    what, time.monotonic() - t0, self.logs()))
            time.sleep(0.02)

    def _port_open(self, _left):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def _lists_broker(self, left):
        md = self.metadata(timeout=min(left, 5.0))
        return md is not None and any(b.get("id") == 1 for b in md.get("brokers", []))

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (a controlled shutdown), SIGKILL if still running after
        `timeout` seconds. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _LIVE.discard(self)
        # 143: the JVM's exit status after SIGTERM and its shutdown hooks.
        self._cds_done(self.proc.returncode in (0, 143))
        return self.proc.returncode

    def kill(self):
        """SIGKILL: an unclean stop, as a crash or OOM kill would leave it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        _LIVE.discard(self)
        self._cds_done(False)
        return self.proc.returncode

    def restart(self, kill=False):
        self.kill() if kill else self.stop()
        return self.start()

    def close(self):
        """Stops the broker and removes the work directory if this object
        created it (a workdir passed in is the caller's, left for inspection)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def logs(self, n=60):
        """The broker log's ERROR and FATAL entries (a failed start buries its
        cause under a page of shutdown chatter), its tail, and the tail of the
        JVM's own output."""
        return "--- errors in %s:\n%s\n--- %s (last %d lines):\n%s\n--- %s:\n%s" % (
            self.log_path, _errors(self.log_path), self.log_path, n, _tail(self.log_path, n),
            self.stdout_path, _tail(self.stdout_path, 20))

    def __repr__(self):
        return "<KafkaBroker %s pid=%s dir=%s>" % (
            self.bootstrap, self.proc.pid if self.alive() else None, self.workdir)

    # ---------------------------------------------------------- client side

    def _kcat(self, args, input=None, timeout=30.0):
        return subprocess.run([KCAT, "-b", self.bootstrap, *args], input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)

    def metadata(self, topic=None, timeout=5.0):
        """kcat -L -J as a dict (brokers, topics with partitions and
        leaders), or None when the broker did not answer in time. Asking for
        one topic never creates it."""
        args = ["-L", "-J", "-m", "%.1f" % timeout]
        if topic:
            args += ["-t", topic]
        try:
            r = self._kcat(args, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def partitions(self, topic):
        """{partition: leader id} as the broker reports now ({} if unknown)."""
        md = self.metadata(topic) or {}
        for t in md.get("topics", []):
            if t.get("topic") == topic and not t.get("error"):
                return {p["partition"]: p.get("leader", -1) for p in t.get("partitions", [])}
        return {}

    def create_topic(self, name, partitions=3, timeout=30.0):
        """Creates `name` (replication factor 1) and returns once every
        partition has a leader. An existing topic with that many partitions
        is fine; one with another count is an error."""
        deadline = time.monotonic() + timeout
        while True:
            err, msg = self._create_topics_request(name, partitions)
            if err in (0, 36):  # NONE, TOPIC_ALREADY_EXISTS
                break
            # NOT_CONTROLLER (41) and REQUEST_TIMED_OUT (7) are retriable;
            # so is anything while the deadline allows.
            if time.monotonic() >= deadline:
                raise RuntimeError("CreateTopics %s: error %d %s" % (name, err, msg))
            time.sleep(0.05)

        def ready():
            parts = self.partitions(name)
            if parts and len(parts) != partitions:
                raise RuntimeError("topic %s exists with %d partitions, not %d" % (name, len(parts), partitions))
            return len(parts) == partitions and all(leader >= 0 for leader in parts.values())

        wait_until(ready, max(0.1, deadline - time.monotonic()), interval=0.05,
                   msg="every partition of %s to have a leader" % name)

    def _create_topics_request(self, name, partitions):
        """One CreateTopics v2 request (api key 19), answered by any broker
        of Kafka 2.x through 4.x. Returns (error_code, error_message)."""
        def string(s):
            b = s.encode()
            return struct.pack(">h", len(b)) + b

        # Request header v1: api_key, api_version, correlation_id, client_id.
        header = struct.pack(">hhi", 19, 2, 1) + string("levee-tests")
        # topics[1]: name, num_partitions, replication_factor, no assignments,
        # no configs; then timeout_ms, validate_only.
        body = (struct.pack(">i", 1) + string(name) + struct.pack(">ihii", partitions, 1, 0, 0)
                + struct.pack(">ib", 10000, 0))
        req = header + body
        with socket.create_connection(("127.0.0.1", self.port), timeout=15) as s:
            s.sendall(struct.pack(">i", len(req)) + req)
            size = struct.unpack(">i", self._recv(s, 4))[0]
            resp = self._recv(s, size)
        # Response header v0: correlation_id. Body v2: throttle_time_ms,
        # topics[]: name, error_code, error_message (nullable).
        pos = 8
        (n,) = struct.unpack_from(">i", resp, pos)
        pos += 4
        for _ in range(n):
            (ln,) = struct.unpack_from(">h", resp, pos)
            tname = resp[pos + 2:pos + 2 + ln].decode()
            pos += 2 + ln
            err, mlen = struct.unpack_from(">hh", resp, pos)
            pos += 4
            msg = resp[pos:pos + mlen].decode() if mlen >= 0 else None
            pos += max(mlen, 0)
            if tname == name:
                return err, msg
        raise RuntimeError("CreateTopics response without topic %s" % name)

    @staticmethod
    def _recv(s, n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def produce(self, topic, value, key=None, headers=None, partition=None, timeout=30.0):
        """Produces one message and returns once the broker acknowledged it
        (acks=all; kcat exits non-zero on a failed delivery).

        value: bytes or str, sent exactly: any bytes, newlines and NULs
        included (kcat sends a file argument as one message, unlike its
        stdin mode, which splits on a delimiter). b"" is an empty value and
        None a null one (a tombstone); both need a key, since kcat 1.7.1
        skips empty input and has no other way to send them.
        key: bytes or str without NUL (it travels on kcat's command line), or
        None for no key. headers: dict or list of (name, value), values
        without NUL, names without '='. partition: None lets the
        partitioner choose (by key hash, or at random without a key)."""
        args = ["-P", "-t", topic]
        if partition is not None:
            args += ["-p", str(partition)]
        for n, v in (headers.items() if isinstance(headers, dict) else headers or []):
            n, v = _as_bytes(n), _as_bytes(v)
            if b"=" in n or b"\0" in n + v:
                raise ValueError("kcat cannot send header %r=%r" % (n, v))
            args += ["-H", (n + b"=" + v).decode("utf-8", "surrogateescape")]
        if key is not None:
            key = _as_bytes(key)
            if b"\0" in key:
                raise ValueError("kcat cannot send a key with a NUL byte")
        if value:
            with tempfile.NamedTemporaryFile(dir=self.workdir, prefix="msg-") as f:
                f.write(_as_bytes(value))
                f.flush()
                if key is not None:
                    args += ["-k", key.decode("utf-8", "surrogateescape")]
                r = self._kcat(args + [f.name], timeout=timeout)
        else:
            # Empty or null value: stdin mode with a key delimiter; "key\x01"
            # is key + empty value, and -Z turns that empty value into null.
            if not key:
                raise ValueError("kcat 1.7.1 cannot send an empty or null value without a non-empty key")
            if b"\x01" in key or b"\n" in key:
                raise ValueError("key must not contain \\x01 or newline here")
            args += ["-K", "\\x01"] + (["-Z"] if value is None else [])
            r = self._kcat(args, input=key + b"\x01\n", timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("kcat produce to %s failed (exit %d): %s" % (
                topic, r.returncode, r.stderr.decode("utf-8", "replace")))

    def consume(self, topic, count, timeout=30.0, group=None):
        """Waits until `count` messages can be read, then returns them as
        dicts: topic, partition, offset, timestamp, key and value (bytes or
        None), headers (a list of (name, bytes)).

        Without `group`: every message in the topic from the beginning
        (possibly more than `count`: assert on len() to catch duplicates),
        sorted by (partition, offset). Nothing is committed.
        With `group`: a consumer in that group, starting at its committed
        offsets (the earliest when it has none), reading at most `count`
        and committing what it returns, so the next call goes on from there.
        Raises AssertionError with what was read when the deadline passes."""
        deadline = time.monotonic() + timeout
        got = []
        # The broker holds a fetch on a partition with no new data for
        # fetch.wait.max.ms (500 ms) before kcat can see its end (-e).
        fast_eof = ["-X", "fetch.wait.max.ms=20"]
        while True:
            left = deadline - time.monotonic()
            if group is None:
                # -e: exit at the end of every partition. A topic that does
                # not exist yet is an error: retry until it does.
                args = ["-C", "-t", topic, "-o", "beginning", "-e", "-J"]
            else:
                # Not -o: in group mode kcat would apply it to every assigned
                # partition and ignore the committed offsets.
                args = ["-G", group, "-X", "auto.offset.reset=earliest", "-e", "-J",
                        "-c", str(count - len(got)), topic]
            try:
                r = self._kcat(fast_eof + args, timeout=max(1.0, left))
                out = r.stdout
            except subprocess.TimeoutExpired as e:
                out = e.stdout or b""
            msgs = [_parse_json_line(line) for line in out.splitlines() if line.strip()]
            if group is None:
                got = sorted(msgs, key=lambda m: (m["partition"], m["offset"]))
            else:
                got += msgs
            if len(got) >= count:
                return got
            if time.monotonic() >= deadline:
                raise AssertionError("consumed %d of %d messages from %s in %.1fs: %r" % (
                    len(got), count, topic, timeout, got))
            time.sleep(0.05)


# ------------------------------------------------------------ for pytest

def new_broker(workdir=None, sasl_users=None):
    """A started broker of the caller's own, for tests that kill or restart
    it. Close it (or use `with`); one left open is killed at exit."""
    b = KafkaBroker(workdir, sasl_users=sasl_users)
    try:
        return b.start()
    except BaseException:
        b.close()
        raise


@atexit.register
def _kill_leftovers():
    for b in list(_LIVE):
        b.kill()


@pytest.fixture(scope="session")
def kafka_broker():
    """One broker shared by the whole session, started on first use.
    Tests must not stop it; use new_broker() or kafka_broker_factory for that."""
    b = KafkaBroker()
    try:
        b.start()
        yield b
    finally:
        b.close()


@pytest.fixture
def kafka_broker_factory():
    """kafka_broker_factory() -> a started broker of this test's own; all are
    closed at teardown, also when the test fails."""
    made = []

    def make():
        b = KafkaBroker()
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.close()

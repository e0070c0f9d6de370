"""Open-loop HTTP/1.1 load generator for the integration tests (asyncio, raw
sockets, standard library only).

Open loop: request i of a target is *scheduled* at start + i / rate, whether
or not the earlier ones have answered, the way independent clients arrive.
A slow or stuck server therefore piles up requests in flight instead of
slowing the generator down (a closed loop would hide the overload).
Latencies are measured from the scheduled time, not from when the request
was actually sent, so a generator that falls behind shows up in them
(no coordinated omission); `lag_p99` / `lag_max` say how far behind it was.

    import load
    res = load.run([load.Target(port, "/fast", rate=200),
                    load.Target(port, "/slow", rate=50)], duration=3.0, timeout=2.0)
    r = res["/fast"]          # keyed by Target.name (default: the path)
    r.sent, r.ok, r.success_rate, r.p99_ok, r.status[503], r.timeouts
    r.samples[0]["headers"]   # a non-2xx answer's headers, [(name, value)]

    ld = load.Load(targets, duration=5.0).start()   # in a background thread
    ...                                              # do something meanwhile
    res = ld.join()

It sustains well over 300 requests per second per target on 2 cores (see
README.md, "Bulkhead tools", for measured rates); check `lag_p99` and
`send_rate` when pushing it.
"""
import asyncio
import collections
import resource
import threading
import time

__all__ = ["Target", "TargetResult", "Load", "run", "percentile"]


class Target:
    def __init__(self, port, path, rate, host="127.0.0.1", name=None, method="GET", headers=(),
                 host_header="loadgen", vary=None):
        """One stream of requests: `rate` requests per second of `method
        path` to host:port. `headers`: extra (name, value) pairs. `vary`:
        a list of header lists; request i adds vary[i % len(vary)] (say a
        user id per request, for what keys on a client)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.host, self.port, self.path, self.rate = host, port, path, float(rate)
        self.name = name or path
        self.method = method
        head = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host_header]
        head += ["%s: %s" % (n, v) for n, v in headers]
        self.requests = [("\r\n".join(head + ["%s: %s" % (n, v) for n, v in extra]) + "\r\n\r\n")
                         .encode("latin-1") for extra in (vary or [()])]
        self.request = self.requests[0]

    def request_at(self, i):
        """The bytes of request i."""
        return self.requests[i % len(self.requests)]

    def __repr__(self):
        return "<Target %s %s:%d%s @%g/s>" % (self.name, self.host, self.port, self.path, self.rate)


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of `values`; None if empty."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


class TargetResult:
    """What happened to one target's requests. Times in seconds.

    sent          requests started (scheduled and not skipped)
    ok            answered 2xx
    status        Counter {status code: count} of every answer
    timeouts      no complete answer within the per-request timeout
    errors        Counter {kind: count}: refused, reset, eof (closed before
                  a complete answer), protocol, other
    skipped       scheduled but not started: max_inflight was reached
    latencies_ok  per 2xx answer, from its scheduled time to the end of it
    latencies_all per request: answers of any status, timeouts (~timeout)
                  and errors, from the scheduled time to the outcome
    p50_ok p99_ok p50_all p99_all   percentiles of those (None if empty)
    success_rate  ok / sent (0.0 if nothing was sent)
    records       per request (offset of its scheduled time from the start,
                  outcome: the status int, "timeout" or an error kind,
                  latency), in completion order: for rates over time windows
    samples       up to `samples` non-2xx answers: {status, headers
                  [(name, value)], body (first 200 bytes), at (offset)}
    send_rate     sent / span of the actual start times: the achieved rate
    lag_p99 lag_max  how late requests started after their scheduled time
    rate duration  as asked
    """

    def __init__(self, target, duration):
        self.name, self.host, self.port, self.path = target.name, target.host, target.port, target.path
        self.rate, self.duration = target.rate, duration
        self.sent = self.ok = self.timeouts = self.skipped = 0
        self.status = collections.Counter()
        self.errors = collections.Counter()
        self.latencies_ok = []
        self.latencies_all = []
        self.records = []
        self.samples = []
        self.lags = []
        self.first_start = self.last_start = None
        self.send_rate = None

    def finish(self):
        self.p50_ok = percentile(self.latencies_ok, 50)
        self.p99_ok = percentile(self.latencies_ok, 99)
        self.p50_all = percentile(self.latencies_all, 50)
        self.p99_all = percentile(self.latencies_all, 99)
        self.success_rate = self.ok / self.sent if self.sent else 0.0
        self.lag_p99 = percentile(self.lags, 99)
        self.lag_max = max(self.lags) if self.lags else None
        if self.sent > 1 and self.last_start > self.first_start:
            self.send_rate = (self.sent - 1) / (self.last_start - self.first_start)
        return self

    def window(self, start, end):
        """(sent, ok) among the requests scheduled in [start, end) seconds
        after the start of the run."""
        rs = [r for r in self.records if start <= r[0] < end]
        return len(rs), sum(1 for r in rs if isinstance(r[1], int) and 200 <= r[1] < 300)

    def summary(self):
        def ms(v):
            return None if v is None else round(v * 1000, 1)
        return ("%s: sent=%d ok=%d (%.1f%%) status=%s timeouts=%d errors=%s skipped=%d "
                "p50_ok=%sms p99_ok=%sms p99_all=%sms send_rate=%s lag_p99=%sms"
                % (self.name, self.sent, self.ok, 100 * self.success_rate, dict(self.status),
                   self.timeouts, dict(self.errors), self.skipped, ms(self.p50_ok), ms(self.p99_ok),
                   ms(self.p99_all), None if self.send_rate is None else round(self.send_rate, 1),
                   ms(self.lag_p99)))

    __repr__ = summary


class _Protocol(Exception):
    pass


class _Eof(Exception):
    pass


class Load:
    def __init__(self, targets, duration, timeout=2.0, conn="pool", max_inflight=4096, samples=20):
        """targets: Target objects; duration: seconds of scheduling;
        timeout: per request, connect to end of the answer; conn: "pool"
        (keep-alive connections reused per target, a new one whenever none
        is idle) or "new" (a fresh connection per request, closed after);
        max_inflight: per target, requests beyond it are skipped, not sent.
        Target names must be unique."""
        self.targets = list(targets)
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("target names must be unique: %r" % names)
        if conn not in ("pool", "new"):
            raise ValueError("conn is 'pool' or 'new'")
        self.duration, self.timeout, self.conn = float(duration), float(timeout), conn
        self.max_inflight, self.max_samples = max_inflight, samples
        self.results = None
        self._thread = None
        self._exc = None
        _raise_nofile()

    # -- public
    def start(self):
        self._thread = threading.Thread(target=self._run_thread, daemon=True, name="load")
        self._thread.start()
        return self

    def join(self, timeout=None):
        """Wait for the run (duration + the last requests' timeout) and
        return {target name: TargetResult}."""
        if timeout is None:
            timeout = self.duration + self.timeout + 30
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("load generator still running after %.0fs" % timeout)
        if self._exc:
            raise self._exc
        return self.results

    def run(self):
        return self.start().join()

    # -- internals
    def _run_thread(self):
        try:
            self.results = asyncio.run(self._main())
        except BaseException as e:  # surfaced by join()
            self._exc = e

    async def _main(self):
        loop = asyncio.get_running_loop()
        self.t0 = loop.time() + 0.05  # every target starts at the same instant
        res = {t.name: TargetResult(t, self.duration) for t in self.targets}
        pools = {t.name: [] for t in self.targets}
        tasks = set()
        await asyncio.gather(*(self._schedule(t, res[t.name], pools[t.name], tasks) for t in self.targets))
        while tasks:
            await asyncio.gather(*list(tasks), return_exceptions=True)
        for pool in pools.values():
            for _, w in pool:
                w.close()
        return {n: r.finish() for n, r in res.items()}

    async def _schedule(self, t, r, pool, tasks):
        loop = asyncio.get_running_loop()
        n = int(round(t.rate * self.duration))
        inflight = [0]
        for i in range(n):
            at = self.t0 + i / t.rate
            d = at - loop.time()
            if d > 0:
                await asyncio.sleep(d)
            now = loop.time()
            if inflight[0] >= self.max_inflight:
                r.skipped += 1
                continue
            r.lags.append(max(0.0, now - at))
            if r.first_start is None:
                r.first_start = now
            r.last_start = now
            r.sent += 1
            inflight[0] += 1
            task = loop.create_task(self._one(t, r, pool, at, inflight, t.request_at(i)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _one(self, t, r, pool, at, inflight, req):
        loop = asyncio.get_running_loop()
        conn = None
        outcome = None
        try:
            try:
                status, headers, body, conn = await asyncio.wait_for(self._exchange(t, pool, req), self.timeout)
                outcome = status
            except asyncio.TimeoutError:
                outcome = "timeout"
            except ConnectionRefusedError:
                outcome = "refused"
            except ConnectionResetError:
                outcome = "reset"
            except (_Eof, asyncio.IncompleteReadError, BrokenPipeError):
                outcome = "eof"
            except (_Protocol, asyncio.LimitOverrunError, ValueError):
                outcome = "protocol"
            except Exception:  # every request gets an outcome, none is lost
                outcome = "other"
            lat = loop.time() - at
            off = at - self.t0
            r.latencies_all.append(lat)
            r.records.append((off, outcome, lat))
            if outcome == "timeout":
                r.timeouts += 1
            elif isinstance(outcome, str):
                r.errors[outcome] += 1
            else:
                r.status[outcome] += 1
                if 200 <= outcome < 300:
                    r.ok += 1
                    r.latencies_ok.append(lat)
                elif len(r.samples) < self.max_samples:
                    r.samples.append({"status": outcome, "headers": headers, "body": body[:200], "at": off})
            if conn is not None:
                pool.append(conn)
        finally:
            inflight[0] -= 1

    async def _exchange(self, t, pool, req):
        """One request; -> (status, headers, body, connection to reuse or
        None). A reused keep-alive connection the server had closed is
        retried once on a fresh one, as HTTP clients do."""
        while self.conn == "pool" and pool:
            rd, wr = pool.pop()
            try:
                return await self._on(t, req, rd, wr, reused=True)
            except _Stale:
                continue
        rd, wr = await asyncio.open_connection(t.host, t.port)
        return await self._on(t, req, rd, wr, reused=False)

    async def _on(self, t, req, rd, wr, reused):
        keep = False
        try:
            wr.write(req)
            try:
                head = await rd.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as e:
                if reused and not getattr(e, "partial", b""):
                    raise _Stale()
                raise
            status, headers, close = _parse_head(head)
            body = await _read_body(rd, headers, t.method, status)
            if body is None:  # close-delimited
                body = await rd.read()
                close = True
            keep = self.conn == "pool" and not close
            return status, headers, body, ((rd, wr) if keep else None)
        finally:
            if not keep:  # also on a timeout (cancelled here) or an error
                wr.close()


class _Stale(Exception):
    pass


def _parse_head(head):
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise _Protocol("bad status line %r" % lines[0])
    headers = []
    for ln in lines[1:]:
        n, sep, v = ln.partition(":")
        if not sep:
            raise _Protocol("header without colon %r" % ln)
        headers.append((n, v.strip()))
    conn_tokens = [x.strip().lower() for n, v in headers if n.lower() == "connection" for x in v.split(",")]
    close = "close" in conn_tokens or (parts[0] == "HTTP/1.0" and "keep-alive" not in conn_tokens)
    return int(parts[1]), headers, close


async def _read_body(rd, headers, method, status):
    """The body bytes, or None when it ends with the connection."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b""
    te = [v.lower() for n, v in headers if n.lower() == "transfer-encoding"]
    if te:
        if not te[-1].endswith("chunked"):
            return None
        out = bytearray()
        while True:
            line = await rd.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while await rd.readuntil(b"\r\n") != b"\r\n":
                    pass
                return bytes(out)
            out += await rd.readexactly(size)
            if await rd.readexactly(2) != b"\r\n":
                raise _Protocol("chunk not followed by CRLF")
    cl = [v for n, v in headers if n.lower() == "content-length"]
    if cl:
        return await rd.readexactly(int(cl[0]))
    return None


def _raise_nofile():
    """Many requests in flight need many descriptors: soft limit to hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def run(targets, duration, **kw):
    """Run the load to the end and return {target name: TargetResult}
    (keywords of Load)."""
    return Load(targets, duration, **kw).run()


if __name__ == "__main__":  # python3 load.py PORT PATH RATE [PATH RATE...] [--duration S] [--new]
    import argparse
    ap = argparse.ArgumentParser(description="open-loop load against 127.0.0.1:PORT")
    ap.add_argument("port", type=int)
    ap.add_argument("paths_rates", nargs="+", help="PATH RATE pairs")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--new", action="store_true", help="a new connection per request")
    a = ap.parse_args()
    pr = a.paths_rates
    ts = [Target(a.port, pr[i], float(pr[i + 1]), name="%s#%d" % (pr[i], i // 2)) for i in range(0, len(pr), 2)]
    t0 = time.monotonic()
    cpu0 = time.process_time()
    out = run(ts, a.duration, timeout=a.timeout, conn="new" if a.new else "pool")
    print("wall %.2fs, generator CPU %.2fs" % (time.monotonic() - t0, time.process_time() - cpu0))
    for r in out.values():
        print(r.summary())

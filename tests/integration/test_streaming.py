"""Large bodies stream with bounded memory in both directions (docs/http.md:
"Bodies are streamed in both directions with backpressure ... Memory does
not grow with body size").

RSS is levee's VmRSS sampled every 50ms during the transfer. Every test
here bounds RSS, which a sanitizer's shadow memory and quarantine inflate,
so none runs under one (LEVEE_SANITIZER); the bounds can still be raised
with LEVEE_RSS_LIMIT_MIB and LEVEE_RSS_GROWTH_MIB to run them by hand."""
import os
import time

import pytest

from harness import MiB, RssSampler, build_request, iter_pattern, pattern_sha256

pytestmark = pytest.mark.no_sanitizer("bounds levee's RSS")

SIZE = 100 * MiB
RSS_LIMIT_KIB = int(os.environ.get("LEVEE_RSS_LIMIT_MIB", "64")) * 1024
GROWTH_LIMIT_KIB = int(os.environ.get("LEVEE_RSS_GROWTH_MIB", "16")) * 1024


def warm_baseline(levee):
    """Exercise both directions once with 1 MiB, then read the baseline RSS."""
    c = levee.conn(timeout=10)
    r = c.request("GET", "/bytes?n=%d" % MiB, store=False, hash_body=True)
    assert r.sha256 == pattern_sha256(MiB)
    c.send(build_request("POST", "/sink", [("Content-Length", str(MiB))]))
    for p in iter_pattern(MiB):
        c.send(p)
    assert c.read_response().json()["len"] == MiB
    c.close()
    return levee.rss_kib()


def check_rss(baseline, sampler, what):
    peak = sampler.stop()
    assert peak is not None and len(sampler.samples) >= 3, "too few RSS samples"
    assert peak <= RSS_LIMIT_KIB, "%s: levee RSS peaked at %d KiB (limit %d KiB)" % (what, peak, RSS_LIMIT_KIB)
    assert peak - baseline <= GROWTH_LIMIT_KIB, \
        "%s: levee RSS grew by %d KiB over the %d KiB baseline while streaming %d MiB" % (
            what, peak - baseline, baseline, SIZE // MiB)


def download(levee, mode):
    base = warm_baseline(levee)
    s = RssSampler(levee)
    s.start()
    c = levee.conn(timeout=60)
    t0 = time.monotonic()
    r = c.request("GET", "/bytes?n=%d&mode=%s" % (SIZE, mode), store=False, hash_body=True, timeout=60)
    check_rss(base, s, "download (%s)" % mode)
    assert r.status == 200 and r.complete
    assert r.body_len == SIZE
    assert r.sha256 == pattern_sha256(SIZE)
    return r, time.monotonic() - t0


def test_download_100mib_content_length(levee):
    r, _ = download(levee, "cl")
    assert r.framing == "content-length"


def test_download_100mib_chunked(levee):
    r, _ = download(levee, "chunked")
    assert r.framing == "chunked"


def upload(levee, framing):
    base = warm_baseline(levee)
    s = RssSampler(levee)
    s.start()
    c = levee.conn(timeout=60)
    if framing == "cl":
        c.send(build_request("POST", "/sink", [("Content-Length", str(SIZE))]))
        for p in iter_pattern(SIZE, MiB):
            c.send(p)
    else:
        c.send(build_request("POST", "/sink", [("Transfer-Encoding", "chunked")]))
        for p in iter_pattern(SIZE, MiB):
            c.send(b"%x\r\n" % len(p) + p + b"\r\n")
        c.send(b"0\r\n\r\n")
    r = c.read_response(timeout=60)
    check_rss(base, s, "upload (%s)" % framing)
    assert r is not None and r.status == 200, r
    return r.json()


def test_upload_100mib_content_length(levee):
    got = upload(levee, "cl")
    assert got == {"len": SIZE, "sha256": pattern_sha256(SIZE), "framing": "content-length"}


def test_upload_100mib_chunked(levee):
    got = upload(levee, "chunked")
    assert got == {"len": SIZE, "sha256": pattern_sha256(SIZE), "framing": "chunked"}


def test_slow_reader_backpressure(levee, origin):
    """The client reads ~300 KB/s for 3s while the origin could send 100 MiB
    at once: levee must push back on the origin instead of buffering."""
    base = warm_baseline(levee)
    mark = origin.mark()
    s = RssSampler(levee)
    s.start()
    c = levee.conn(timeout=60)
    t0 = time.monotonic()
    slow_phase = {"over": False}

    def pace(done):
        if time.monotonic() - t0 < 3.0:
            time.sleep(0.05)
            return 16384
        if not slow_phase["over"]:
            slow_phase["over"] = True
            slow_phase["origin_done"] = [e for e in origin.events(mark, "done") if "slowread" in e["target"]]
            slow_phase["rss"] = max(s.samples)
        return 262144

    r = c.request("GET", "/bytes?n=%d&slowread=1" % SIZE, store=False, hash_body=True, pace=pace, timeout=60)
    check_rss(base, s, "slow reader")
    assert slow_phase["over"]
    assert slow_phase["origin_done"] == [], "the origin finished sending 100 MiB to a client reading 300 KB/s: " \
                                            "levee buffered instead of applying backpressure"
    assert slow_phase["rss"] - base <= GROWTH_LIMIT_KIB
    assert r.complete and r.body_len == SIZE and r.sha256 == pattern_sha256(SIZE)

"""Admin security: the bearer token for requests that change state, the
safe default off loopback, and what stays open (docs/operations.md, "Admin
authorization"; SECURITY.md)."""
import json
import re

from harness import cache_status_core, free_port, wait_until

TOKEN = "t0ken-for-the-tests-0123456789"
READ_ONLY = ("/healthz", "/readyz", "/metrics", "/status")


def bearer(token=TOKEN):
    return [("Authorization", "Bearer " + token)]


def refused(lv, reason):
    return lv.metric("levee_admin_refused_total", reason=reason) or 0


def on_any_address(lv):
    """prepare= for levee_factory: the admin listener on 0.0.0.0, which is
    not loopback (the only way to see the rules for other addresses; nothing
    that changes state is open there in these tests but one short one)."""
    lv.sections["levee"]["admin"] = "0.0.0.0:%d" % lv.admin_port
    lv.write_policy(sections=lv.sections)


def test_token_guards_every_change(levee_factory):
    lv = levee_factory({'route "c"': {"prefix": "/echo/c/", "cache_ttl": "60s"}},
                       env={"LEVEE_ADMIN_TOKEN": TOKEN})
    for path in READ_ONLY:
        assert lv.admin_request("GET", path).status == 200, path
        assert lv.admin_request("HEAD", path).status == 200, path

    for method, path in (("POST", "/reload"), ("POST", "/purge?all=1"), ("PUT", "/reload"),
                         ("DELETE", "/status"), ("POST", "/no-such-endpoint")):
        r = lv.admin_request(method, path)
        assert r.status == 401, (method, path, r)
        assert r.header("WWW-Authenticate", "").startswith("Bearer "), r
        for creds in (bearer("not-" + TOKEN), bearer(TOKEN + "x"), bearer(TOKEN[:-1])):
            r = lv.admin_request(method, path, creds)
            assert r.status == 401 and 'error="invalid_token"' in r.header("WWW-Authenticate"), (method, path, r)
        r = lv.admin_request(method, path, [("Authorization", "Basic " + TOKEN)])
        assert r.status == 401, (method, path, r)

    # two Authorization fields: which one counts would be a guess
    r = lv.admin_request("POST", "/reload", bearer() + bearer("other-0123456789abcdef"))
    assert r.status == 401, r

    assert lv.admin_request("POST", "/reload", bearer()).status == 200
    assert lv.admin_request("POST", "/reload", [("Authorization", "bearer  " + TOKEN)]).status == 200
    assert lv.get("/echo/c/1").status == 200
    r = lv.admin_request("POST", "/purge?url=/echo/c/1", bearer())
    assert r.status == 200 and json.loads(r.body)["purged"] == 1, r
    # with the token, the usual answers for what is not there
    assert lv.admin_request("POST", "/no-such-endpoint", bearer()).status == 404
    assert lv.admin_request("PUT", "/reload", bearer()).status == 405

    assert refused(lv, "missing") >= 10 and refused(lv, "wrong") >= 16, lv.metrics()
    assert lv.status()["admin"] == {"auth": "token", "token_env": "LEVEE_ADMIN_TOKEN", "probe": None}
    # the token is never written anywhere
    for where in (lv.stderr(), lv.stdout(), lv.admin_get("/status")[2].decode(), lv.admin_get("/metrics")[2].decode()):
        assert TOKEN not in where
    assert re.search(r"admin: refused POST /reload from 127\.0\.0\.1: missing", lv.stderr()), lv.stderr()[-2000:]
    assert "admin: purge, reload and other changes need the bearer token in $LEVEE_ADMIN_TOKEN" in lv.stderr()


def test_token_from_the_variable_the_policy_names(levee_factory):
    lv = levee_factory({"levee": {"admin_token_env": "SHOP_ADMIN_TOKEN"}},
                       env={"SHOP_ADMIN_TOKEN": TOKEN, "LEVEE_ADMIN_TOKEN": "not-this-one-0123456789"})
    assert lv.admin_request("POST", "/reload").status == 401
    assert lv.admin_request("POST", "/reload", bearer("not-this-one-0123456789")).status == 401
    assert lv.admin_request("POST", "/reload", bearer()).status == 200


def test_bad_token_stops_the_start(levee_factory):
    for value in ("short", "has a blank 0123456789"):
        lv = levee_factory(env={"LEVEE_ADMIN_TOKEN": value}, wait=None)
        lv.expected_exit = True
        assert lv.wait_exit(10) == 1, "levee started with the admin token %r" % value
        err = lv.stderr()
        assert "admin token in $LEVEE_ADMIN_TOKEN" in err, err
        assert value not in err, "the refused token was logged"


def test_no_token_on_loopback_stays_open(levee):
    assert levee.status()["admin"]["auth"] == "loopback"
    assert levee.admin_request("POST", "/reload").status == 200
    assert levee.admin_request("POST", "/purge?all=1").status == 200


def test_no_token_off_loopback_refuses_changes(levee_factory):
    lv = levee_factory(prepare=on_any_address)
    for path in READ_ONLY:
        assert lv.admin_request("GET", path).status == 200, path
    before = refused(lv, "forbidden")
    for method, path in (("POST", "/reload"), ("POST", "/purge?all=1"), ("PUT", "/status")):
        r = lv.admin_request(method, path, bearer())  # no credentials can help
        assert r.status == 403, (method, path, r)
        assert b"LEVEE_ADMIN_TOKEN" in r.body and b"admin_insecure" in r.body, r
    assert refused(lv, "forbidden") == before + 3
    assert lv.status()["admin"]["auth"] == "locked"
    assert re.search(r"admin: 0\.0\.0\.0:%d is not loopback and \$LEVEE_ADMIN_TOKEN holds no token" % lv.admin_port,
                     lv.stderr())


def test_admin_insecure_opts_out(levee_factory):
    lv = levee_factory({"levee": {"admin_insecure": "true"}}, prepare=on_any_address)
    assert lv.status()["admin"]["auth"] == "insecure"
    assert lv.admin_request("POST", "/reload").status == 200
    assert "whoever reaches it can purge and reload" in lv.stderr()


def test_purge_all_takes_1_or_true(levee_factory):
    lv = levee_factory({'route "c"': {"prefix": "/echo/c/", "cache_ttl": "60s"}})

    def purge(q):
        return lv.admin_request("POST", "/purge?" + q)

    def cached():
        return cache_status_core(lv.get("/echo/c/1").header("Cache-Status", "")).startswith("levee; hit")

    assert lv.get("/echo/c/1").status == 200
    wait_until(cached, 3, msg="the entry to be cached")
    for q in ("all=", "all=0", "all=yes", "all=false", "all=TRUE", "all=1x", "all=%31%31"):
        r = purge(q)
        assert r.status == 400, (q, r)
        assert cached(), "%s purged the cache" % q
    for q in ("all=1", "all=true"):
        r = purge(q)
        assert r.status == 200 and json.loads(r.body)["purged"] >= 1, (q, r)
        assert not cached()
        assert lv.get("/echo/c/1").status == 200
        wait_until(cached, 3, msg="the entry to be cached again")


def test_probe_listener_serves_only_probes_and_metrics(levee_factory):
    probe = free_port()
    lv = levee_factory({"levee": {"probe": "127.0.0.1:%d" % probe}}, env={"LEVEE_ADMIN_TOKEN": TOKEN})
    wait_until(lambda: lv.admin_request("GET", "/readyz", port=probe).status == 200, 5,
               msg="/readyz on the probe listener")
    assert lv.admin_request("GET", "/healthz", port=probe).body == b"ok\n"
    r = lv.admin_request("GET", "/metrics", port=probe)
    assert r.status == 200 and b"levee_ready 1" in r.body, r
    assert lv.admin_request("HEAD", "/metrics", port=probe).status == 200
    # nothing else, with or without the token
    for method, path in (("GET", "/status"), ("POST", "/reload"), ("POST", "/purge?all=1"), ("GET", "/purge"),
                         ("GET", "/nothing")):
        for creds in ((), bearer()):
            r = lv.admin_request(method, path, creds, port=probe)
            assert r.status == 404 and b"probe listener serves GET /healthz /readyz /metrics" in r.body, \
                (method, path, r)
    assert lv.admin_request("POST", "/healthz", bearer(), port=probe).status == 405
    assert refused(lv, "missing") == 0, "the probe listener asked for a token"
    assert lv.status()["admin"]["probe"] == "127.0.0.1:%d" % probe
    assert "probe listener on 127.0.0.1:%d: GET /healthz /readyz /metrics" % probe in lv.stderr()


def test_probe_listener_from_the_command_line(levee_factory):
    probe = free_port()
    lv = levee_factory(args=["--probe", "127.0.0.1:%d" % probe])
    assert lv.admin_request("GET", "/healthz", port=probe).status == 200
    assert lv.status()["admin"]["probe"] == "127.0.0.1:%d" % probe


def test_probe_listener_is_off_by_default(levee):
    assert levee.status()["admin"]["probe"] is None

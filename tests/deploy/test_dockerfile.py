"""deploy/Dockerfile against the repository, the binary and its packages,
without Docker: what it copies exists, the runtime stage installs exactly
the Debian packages that own the libraries the binary loads (computed with
ldd and dpkg -S), it runs as the shared non-root UID with the outbox on a
volume, and the build stage installs through deploy/install-deps.sh.

    LEVEE_BIN=build/levee pytest tests/deploy/test_dockerfile.py
"""
import functools
import os
import re
import shlex
import shutil
import subprocess

import pytest

from dockerfile import Dockerfile, DockerfileError, apt_installs
from policyfile import LEVEE_BIN, REPO, check, defaults

DOCKERFILE = os.path.join(REPO, "deploy", "Dockerfile")
DOCKERIGNORE = os.path.join(REPO, ".dockerignore")
INSTALL_DEPS = os.path.join(REPO, "deploy", "install-deps.sh")
TRANSPARENT = "deploy/transparent/levee-transparent.sh"
LEVEE_UID = 10101  # the shared contract: Dockerfile, k8s/, compose
OUTBOX = "/var/lib/levee/outbox"


@pytest.fixture(scope="module")
def df():
    return Dockerfile.load(DOCKERFILE)


# ------------------------------------------------------------ the reader

def test_reader_joins_continuations_and_drops_comments_inside_them():
    d = Dockerfile('FROM debian:bookworm AS b\nRUN a \\\n# a comment\n    && b \\\n\n    && c\n'
                   'CMD ["x", "--y"]\n')
    runs = d.stage("b").all("RUN")
    assert [r.args for r in runs] == ["a && b && c"]
    assert d.stage("b").first("CMD").exec_form() == ["x", "--y"]
    assert d.stage("b").first("RUN").line == 2


@pytest.mark.parametrize("text, err", [
    ("RUN true\n", "before the first FROM"),
    ("FROM a AS\n", "expected IMAGE [AS NAME]"),
    ("FROM a\nFROBNICATE x\n", "unknown instruction"),
    ("FROM a\nRUN x \\\n", "ends inside a continued instruction"),
    ("FROM a\nCMD [\"x\",\n", "bad JSON array"),
    ("# only a comment\n", "no FROM"),
])
def test_reader_refuses_what_it_cannot_read(text, err):
    with pytest.raises(DockerfileError, match=re.escape(err)):
        Dockerfile(text).stages[-1].first("CMD").exec_form()


def test_apt_installs_reads_packages_not_options():
    d = Dockerfile("FROM a\nRUN apt-get update && apt-get -q install -y --no-install-recommends p1 \\\n"
                   "  p2 && rm -rf /x\n")
    assert apt_installs(d.stages[0].first("RUN")) == ["p1", "p2"]


# ---------------------------------------------------------- the stages

def test_stages_and_default_target(df):
    names = [s.name for s in df.stages]
    assert names[0] == "build" and df.stage("build").base == "debian:bookworm"
    # `docker build` without --target builds the last stage: it must be levee's.
    assert df.stages[-1].name == "runtime", names
    assert df.image(df.stage("runtime")) == "debian:bookworm-slim"
    assert df.image(df.stage("init")) == "debian:bookworm-slim"
    assert df.stage("runtime").base != "build", "the runtime must not start from the build stage"


def _copy_sources(df):
    for stage in df.stages:
        for c in stage.all("COPY") + stage.all("ADD"):
            if "from" in c.flags:
                continue
            words = c.exec_form()
            for src in words[:-1]:
                yield stage, c, src


def test_every_copy_source_exists(df):
    missing = []
    for stage, c, src in _copy_sources(df):
        if src == TRANSPARENT and not os.path.exists(os.path.join(REPO, src)):
            continue  # written on the transparent-mode branch: checked below when present
        if not os.path.exists(os.path.join(REPO, src)):
            missing.append("line %d (%s): %s" % (c.line, stage.name, src))
    assert not missing, "COPY sources missing from the repository: %s" % missing


def test_copy_from_names_a_stage_before_it(df):
    seen = []
    for stage in df.stages:
        for c in stage.all("COPY"):
            if "from" in c.flags:
                assert c.flags["from"] in seen, "line %d: --from=%s is not an earlier stage" % (
                    c.line, c.flags["from"])
        seen.append(stage.name)


def _ignored(patterns, path):
    """Whether .dockerignore's patterns (the simple forms it uses: a name, a
    glob, dir/, **/x) keep `path` out of the build context."""
    import fnmatch
    parts = path.rstrip("/").split("/")
    for p in patterns:
        p = p.rstrip("/")
        if p.startswith("**/"):
            if any(fnmatch.fnmatch(x, p[3:]) for x in parts):
                return True
        elif fnmatch.fnmatch(parts[0], p) or fnmatch.fnmatch(path.rstrip("/"), p):
            return True
    return False


def test_dockerignore_keeps_build_trees_out_and_sources_in(df):
    with open(DOCKERIGNORE) as f:
        patterns = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    for tree in ("build", "build-release", "build-asan", ".git", "tests/integration/__pycache__",
                 ".local-stack"):
        assert _ignored(patterns, tree), "%s is sent to the docker daemon" % tree
    for _, c, src in _copy_sources(df):
        assert not _ignored(patterns, src), "line %d copies %s, which .dockerignore excludes" % (c.line, src)


# ------------------------------------------------ runtime libraries

def _dpkg_owner(path):
    """The package owning a library file, through its symlinks too
    (/lib is a symlink to /usr/lib on Debian 12: dpkg knows one spelling)."""
    for p in (path, os.path.realpath(path)):
        for cand in (p, p.replace("/usr/lib/", "/lib/", 1), p.replace("/lib/", "/usr/lib/", 1)):
            r = subprocess.run(["dpkg", "-S", cand], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return r.stdout.decode().split(":", 1)[0].strip()
    raise AssertionError("no Debian package owns %s" % path)


@functools.lru_cache(maxsize=None)
def _ldd_libraries():
    out = subprocess.run(["ldd", LEVEE_BIN], stdout=subprocess.PIPE, check=True).stdout.decode()
    libs = []
    for line in out.splitlines():
        assert "not found" not in line, "ldd: %s" % line
        m = re.search(r"=>\s+(/\S+)", line)
        if m:
            libs.append(m.group(1))
        elif line.strip().startswith("/"):
            libs.append(line.split()[0])  # the dynamic loader
    assert libs, "ldd listed no libraries: is %s dynamically linked?" % LEVEE_BIN
    return tuple(libs)


@functools.lru_cache(maxsize=None)
def _base_image_packages():
    """What debian:bookworm-slim holds: Debian's essential packages and apt
    (debootstrap's minbase), with everything they depend on, resolved here
    against this machine's installed packages (a Debian 12 like the image)."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${db:Status-Abbrev}\t${Essential}\t${Pre-Depends}, ${Depends}"
         "\t${Provides}\n"], stdout=subprocess.PIPE, check=True).stdout.decode()
    deps, provides, essential = {}, {}, []
    for line in out.splitlines():
        name, status, ess, dep, prov = line.split("\t")
        if not status.startswith("ii"):
            continue
        deps[name] = dep
        if ess == "yes":
            essential.append(name)
        for p in prov.split(","):
            p = re.sub(r"\(.*?\)", "", p).strip()
            if p:
                provides.setdefault(p, name)
    pending, seen = essential + ["apt"], set()
    while pending:
        name = pending.pop()
        if name in seen or name not in deps:
            continue
        seen.add(name)
        for alt in deps[name].split(","):
            for cand in (re.sub(r"\(.*?\)|:\w+", "", a).strip() for a in alt.split("|")):
                hit = cand if cand in deps else provides.get(cand)
                if hit:
                    pending.append(hit)
                    break
    assert "libc6" in seen and "apt" in seen, "could not resolve the base image's packages"
    return frozenset(seen)


@functools.lru_cache(maxsize=None)
def needed_runtime_packages():
    """The packages the runtime stage must install: the owners of every
    library ldd lists, less the base image's, plus ca-certificates."""
    base = _base_image_packages()
    return frozenset({_dpkg_owner(lib) for lib in _ldd_libraries()} - base | {"ca-certificates"})


def runtime_package_problems(dockerfile, needed):
    """What is wrong with the runtime stage's package list, as sentences."""
    runtime = dockerfile.stages[-1]
    installed = [p for r in runtime.all("RUN") for p in apt_installs(r)]
    problems = []
    for p in sorted(needed - set(installed)):
        problems.append("the runtime stage does not install %s, which levee needs" % p)
    for p in sorted(set(installed) - needed):
        problems.append("the runtime stage installs %s, which levee does not load" % p)
    if len(installed) != len(set(installed)):
        problems.append("a package is listed twice: %s" % installed)
    return problems


def test_runtime_installs_exactly_the_packages_levee_loads(df):
    needed = needed_runtime_packages()
    assert {"librdkafka1", "libhiredis0.14", "libinih1", "ca-certificates"} <= needed, needed
    assert runtime_package_problems(df, needed) == []


def test_a_missing_library_package_is_caught(df):
    """The check above can fail: drop each needed package from the file in
    turn, and add one levee does not load."""
    needed = needed_runtime_packages()
    with open(DOCKERFILE) as f:
        text = f.read()
    for pkg in sorted(needed):
        cut = re.sub(r"^\s+%s \\\n" % re.escape(pkg), "", text, flags=re.M)
        assert cut != text, "could not find %s on a line of its own" % pkg
        assert runtime_package_problems(Dockerfile(cut), needed) == [
            "the runtime stage does not install %s, which levee needs" % pkg]
    extra = text.replace("    ca-certificates \\\n", "    ca-certificates \\\n    iptables \\\n", 1)
    assert runtime_package_problems(Dockerfile(extra), needed) == [
        "the runtime stage installs iptables, which levee does not load"]


def test_runtime_has_no_iptables_and_init_has_the_rules_script(df):
    runtime = [p for r in df.stage("runtime").all("RUN") for p in apt_installs(r)]
    init = [p for r in df.stage("init").all("RUN") for p in apt_installs(r)]
    assert "iptables" not in runtime and "iptables" in init
    copies = {tuple(c.exec_form()) for c in df.stage("init").all("COPY")}
    assert (TRANSPARENT, "/usr/local/bin/levee-transparent") in copies
    assert df.stage("init").first("ENTRYPOINT").exec_form() == ["/usr/local/bin/levee-transparent"]
    if not os.path.exists(os.path.join(REPO, TRANSPARENT)):
        pytest.skip("%s is not in this branch (the transparent-mode branch adds it)" % TRANSPARENT)
    r = subprocess.run(["bash", "-n", os.path.join(REPO, TRANSPARENT)], stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr.decode()


# ------------------------------------------------- user, volume, command

def test_runs_as_the_shared_non_root_uid(df):
    user = df.stage("runtime").last("USER").args
    assert re.fullmatch(r"\d+:\d+", user), "USER %r: numeric uid:gid, so runAsNonRoot can verify it" % user
    uid, gid = (int(x) for x in user.split(":"))
    assert uid == gid == LEVEE_UID


def test_outbox_is_a_volume_owned_by_levee(df):
    rt = df.stage("runtime")
    volumes = [v for i in rt.all("VOLUME") for v in i.exec_form()]
    # The volume is where levee's default outbox goes, from its key table.
    outbox = defaults()["kafka"]["outbox"]
    assert outbox == OUTBOX
    assert any(outbox == v or outbox.startswith(v.rstrip("/") + "/") for v in volumes), volumes
    # Owned by levee's user before the VOLUME line, so a new volume starts
    # with that owner (Docker copies the image's directory into it).
    vol_line = rt.first("VOLUME").line
    made = [r for r in rt.all("RUN") if r.line < vol_line and re.search(
        r"install -d -o %d -g %d .*%s" % (LEVEE_UID, LEVEE_UID, re.escape(outbox)), r.args)]
    assert made, "no RUN creates %s owned by %d before the VOLUME" % (outbox, LEVEE_UID)


def test_read_only_root_needs_nothing_but_the_volume(df):
    """levee writes only its outbox and stdout/stderr: the image's policy sets
    no log file, so a read-only root filesystem works."""
    rt = df.stage("runtime")
    src = [c.exec_form() for c in rt.all("COPY") if c.exec_form()[-1] == "/etc/levee/policy.ini"]
    assert src, "the runtime stage copies no /etc/levee/policy.ini"
    path = os.path.join(REPO, src[0][0])
    with open(path) as f:
        text = f.read()
    assert not re.search(r"^\s*(access_log|outbox)\s*=", text, re.M), \
        "%s moves a file levee writes: keep it on stdout and the volume" % src[0][0]
    assert defaults()["levee"]["access_log"] == "stdout"


def test_entrypoint_and_default_command_run_the_copied_policy(df):
    rt = df.stage("runtime")
    entry = rt.last("ENTRYPOINT").exec_form()
    cmd = rt.last("CMD").exec_form()
    copied = {c.exec_form()[-1]: c for c in rt.all("COPY")}
    assert entry[0] in copied and copied[entry[0]].flags.get("from") == "build"
    assert cmd[:2] == ["--policy", "/etc/levee/policy.ini"] and cmd[1] in copied
    src = os.path.join(REPO, copied[cmd[1]].exec_form()[0])
    check(src, {"PATH": os.environ.get("PATH", "")})
    # The probe listener the default command opens is the contract's port.
    assert cmd[cmd.index("--probe") + 1] == "0.0.0.0:15002"
    exposed = {int(p.split("/")[0]) for i in rt.all("EXPOSE") for p in i.args.split()}
    assert exposed == {15000, 15001, 15002}


def test_oci_labels(df):
    for name, title in (("runtime", "levee"), ("init", "levee-init")):
        labels = " ".join(i.args for s in df.chain(df.stage(name)) for i in s.all("LABEL"))
        for key in ("title", "description", "version", "base.name"):
            assert "org.opencontainers.image.%s=" % key in labels, (name, key)
        assert 'org.opencontainers.image.title="%s"' % title in labels


# ------------------------------------------------------- build stage

def _install_deps_list(*opts):
    out = subprocess.run(["bash", INSTALL_DEPS, "--list", *opts], stdout=subprocess.PIPE, check=True)
    return out.stdout.decode().split()


def test_build_stage_installs_through_install_deps(df):
    build = df.stage("build")
    copied = [w for c in build.all("COPY") for w in c.exec_form()[:-1]]
    assert "deploy/install-deps.sh" in copied and "deploy/lib.sh" in copied
    runs = [r for r in build.all("RUN") if "install-deps.sh" in r.args]
    assert len(runs) == 1, "the build stage must install through deploy/install-deps.sh, once"
    assert not apt_installs(runs[0]), "packages listed in the Dockerfile drift from install-deps.sh"
    opts = re.findall(r"install-deps\.sh((?:\s+--[a-z-]+)*)", runs[0].args)[0].split()
    pkgs = set(_install_deps_list(*opts))
    # The build packages, and the unit tests' (the stage runs ctest -L unit).
    assert set(_install_deps_list("--build")) <= pkgs
    assert "libcmocka-dev" in pkgs and "redis-server" in pkgs
    assert "ctest --test-dir /build -L unit" in " ".join(r.args for r in build.all("RUN"))


def test_build_packages_hold_the_headers_of_every_runtime_library():
    """For each library package the runtime installs, the -dev package that
    ships its link-time .so is among install-deps.sh's build packages."""
    build = set(_install_deps_list("--build"))
    base = _base_image_packages()
    for lib in _ldd_libraries():
        if _dpkg_owner(lib) in base:
            continue
        stem = os.path.basename(lib).split(".so")[0]
        r = subprocess.run(["dpkg", "-S", "/%s.so" % stem], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        owners = {ln.split(":", 1)[0] for ln in r.stdout.decode().splitlines()
                  if ln.rstrip().endswith("/%s.so" % stem)}
        if not owners:
            continue  # a dependency of a dependency (libssl3 for librdkafka): no link-time .so needed
        assert owners & build, "%s links %s, but none of %s is a build package" % (
            os.path.basename(LEVEE_BIN), lib, sorted(owners))


def test_install_deps_list_rejects_unknown_options():
    r = subprocess.run(["bash", INSTALL_DEPS, "--list", "--frobnicate"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert r.returncode == 2 and b"unknown argument: --frobnicate" in r.stderr



def test_build_stage_copies_enough_to_configure(df, tmp_path):
    """A tree of exactly what the build stage copies into its WORKDIR
    configures with the stage's cmake command: a source file CMakeLists.txt
    names but the Dockerfile forgets fails here, not in a docker build."""
    build = df.stage("build")
    workdir = build.last("WORKDIR").args
    tree = tmp_path / "src"
    tree.mkdir()
    for c in build.all("COPY"):
        *srcs, dest = c.exec_form()
        if c.line < build.last("WORKDIR").line or dest.startswith("/"):
            assert not dest.startswith(workdir), "line %d: a source copied before WORKDIR" % c.line
            continue
        for src in srcs:
            target = tree / dest
            path = os.path.join(REPO, src)
            if os.path.isdir(path):
                shutil.copytree(path, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                if dest.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    target = target / os.path.basename(src)
                shutil.copy2(path, target)
    run = [r for r in build.all("RUN") if r.args.startswith("cmake -S . -B /build")]
    assert run, "the build stage has no `cmake -S . -B /build` step"
    configure = shlex.split(run[0].args.split("&&")[0])
    configure[configure.index("-B") + 1] = str(tmp_path / "build")
    r = subprocess.run(configure, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert r.returncode == 0, "the build stage's sources do not configure:\n%s" % r.stdout.decode()[-3000:]

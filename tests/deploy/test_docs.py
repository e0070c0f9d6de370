"""The documentation's links hold: every relative link in the repository's
Markdown files names a file that exists, and every #anchor into a Markdown
file names one of its headings (GitHub's slugs). A runbook or a README that
points at a renamed page fails here, not in front of an operator."""
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SKIP_DIRS = {".git", "node_modules", "build", ".local-stack"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def markdown_files():
    for d, dirs, files in os.walk(ROOT):
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith("build")]
        for f in files:
            if f.endswith(".md"):
                yield os.path.join(d, f)


def prose_lines(path):
    """The lines outside fenced code blocks, with inline code removed."""
    fenced = False
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if FENCE.match(line.lstrip()):
                fenced = not fenced
                continue
            if not fenced:
                yield n, re.sub(r"`[^`]*`", "", line)


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    seen = {}
    out = set()
    fenced = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if FENCE.match(line.lstrip()):
                fenced = not fenced
                continue
            m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                s = slug(m.group(1))
                k = seen.get(s, 0)
                seen[s] = k + 1
                out.add(s if k == 0 else "%s-%d" % (s, k))
    return out


def links():
    for path in markdown_files():
        for n, line in prose_lines(path):
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto:...
                    continue
                yield path, n, target


def test_there_are_links_to_check():
    assert sum(1 for _ in links()) > 50


@pytest.mark.parametrize("path", sorted(markdown_files()), ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_resolve(path):
    bad = []
    for src, n, target in links():
        if src != path:
            continue
        file_part, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(src), file_part)) if file_part else src
        where = "%s:%d: %s" % (os.path.relpath(src, ROOT), n, target)
        if not os.path.exists(dest):
            bad.append(where + " (no such file)")
        elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
            bad.append(where + " (no such heading)")
    assert not bad, "\n".join(bad)


def test_slugs_follow_github():
    assert slug("Two levees with one `[kafka] instance` name") == "two-levees-with-one-kafka-instance-name"
    assert slug("levee diff") == "levee-diff"
    assert slug("What a write does") == "what-a-write-does"


# Words that look like metric names but are not: CMake targets, a fixture.
NOT_METRICS = {"levee_core", "levee_leaf", "levee_policy", "levee_top", "levee_factory"}


def test_every_metric_the_docs_name_is_in_the_reference():
    """A page that names a metric names one levee exposes: docs/metrics.md
    is held to /metrics by tests/integration/test_metrics_format.py, and the
    other pages are held to docs/metrics.md here (its upgrading table and
    metrics-renames.tsv are where the old names live)."""
    reference = os.path.join(ROOT, "docs", "metrics.md")
    with open(reference, encoding="utf-8") as f:
        current = f.read().split("\n## Upgrading")[0]  # the old names are below
    families = set(re.findall(r"`(levee_[a-z0-9_]+)`", current))
    assert len(families) > 100
    bad = []
    for path in markdown_files():
        if path == reference or os.sep + "build" in path:
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for name in sorted(set(re.findall(r"\blevee_[a-z0-9_]*[a-z0-9]\b", text)) - NOT_METRICS):
            if name not in families and re.sub(r"_(bucket|sum|count)$", "", name) not in families:
                bad.append("%s: %s" % (os.path.relpath(path, ROOT), name))
    assert not bad, "metrics not in docs/metrics.md:\n" + "\n".join(bad)

#!/usr/bin/env python3
"""Checks levee's layering against architecture/layers.json.

    layers.py --root DIR [--built LIB=SRC,SRC,... ...]
    layers.py --self-test

For every .c and .h under proxy/ and policy/:
  - the file belongs to exactly one layer of the table;
  - each #include "..." resolves (the including file's folder, then proxy/,
    then policy/, as the compiler's -I order has it) to a file of its own
    layer or of a layer its layer may include;
  - no #include <...> names a header the layer forbids (the event loop and
    the network clients, for the leaves);
  - no two headers include each other.
With --built, each library's sources (as CMake has them) must be files of a
layer that names that library.

Prints one line per violation, FILE:LINE first, and exits 1 if there is any.
"""
import argparse
import json
import os
import re
import sys
import tempfile

TABLE = "architecture/layers.json"
SCANNED = ("proxy", "policy")
INCLUDE_DIRS = ("proxy", "policy")  # after the including file's own folder
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


class Table:
    def __init__(self, root):
        with open(os.path.join(root, TABLE)) as f:
            data = json.load(f)
        self.layers = data["layers"]
        self.by_name = {l["name"]: l for l in self.layers}
        for l in self.layers:
            for other in l.get("may_include", []):
                if other not in self.by_name:
                    raise SystemExit(f"{TABLE}: layer {l['name']} may include unknown layer {other}")

    def layer_of(self, rel):
        """The layer whose path names `rel` most closely, or None."""
        best, best_len = None, -1
        stem = os.path.splitext(rel)[0]
        for l in self.layers:
            for p in l["paths"]:
                if p.endswith("/"):
                    hit = rel.startswith(p)
                else:
                    hit = stem == p and rel.endswith((".c", ".h"))
                if hit and len(p) > best_len:
                    best, best_len = l, len(p)
        return best

    def allows(self, src, dst):
        return src is dst or dst["name"] in src.get("may_include", [])


def sources(root):
    for top in SCANNED:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, f), root)


def resolve(root, rel, name):
    for d in (os.path.dirname(rel),) + INCLUDE_DIRS:
        cand = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(os.path.join(root, cand)):
            return cand
    return None


def check(root, built):
    table = Table(root)
    errors = []
    includes = {}  # header -> {header it includes: line}
    for rel in sources(root):
        layer = table.layer_of(rel)
        if layer is None:
            errors.append(f"{rel}:1: in no layer of {TABLE}: add its path to one")
            continue
        with open(os.path.join(root, rel), errors="replace") as f:
            lines = f.readlines()
        for n, text in enumerate(lines, 1):
            m = INCLUDE_RE.match(text)
            if not m:
                continue
            kind, name = m.groups()
            if kind == "<":
                for bad in layer.get("forbid_system", []):
                    if name == bad or (bad.endswith("/") and name.startswith(bad)):
                        errors.append(f"{rel}:{n}: includes <{name}>, which layer {layer['name']} "
                                      f"may not use")
                continue
            target = resolve(root, rel, name)
            if target is None:
                errors.append(f'{rel}:{n}: includes "{name}", which is no file of this tree')
                continue
            tl = table.layer_of(target)
            if tl is None:
                if target.startswith(tuple(s + "/" for s in SCANNED)):
                    continue  # reported as "in no layer" on its own
                errors.append(f'{rel}:{n}: includes "{name}" ({target}), outside proxy/ and policy/')
                continue
            if not table.allows(layer, tl):
                below = ", ".join([layer["name"]] + layer.get("may_include", []))
                errors.append(f'{rel}:{n}: includes "{name}" ({target}, layer {tl["name"]}); '
                              f"layer {layer['name']} may include only {below}")
            if rel.endswith(".h") and target.endswith(".h"):
                includes.setdefault(rel, {})[target] = n
    for a, deps in includes.items():
        for b, n in deps.items():
            if a < b and a in includes.get(b, {}):
                errors.append(f"{a}:{n}: includes {b}, which includes it back (line "
                              f"{includes[b][a]}): keep two files from importing each other")
    for spec in built:
        lib, _, srcs = spec.partition("=")
        for src in filter(None, srcs.split(",")):
            path = src if os.path.isabs(src) else os.path.join(root, src)
            rel = os.path.relpath(path, root)
            if not rel.startswith(tuple(s + "/" for s in SCANNED)):
                continue  # test support built into a library, not layered
            layer = table.layer_of(rel)
            if layer is not None and lib not in layer.get("libraries", []):
                errors.append(f"{rel}:1: built into {lib}, but {TABLE} puts it in layer "
                              f"{layer['name']} ({', '.join(layer.get('libraries', []))})")
    return errors


def self_test():
    """The checker on a small tree: each violation it must name, by file:line."""
    table = {"layers": [
        {"name": "top", "libraries": ["libtop"], "paths": ["proxy/main"], "may_include": ["low"]},
        {"name": "mid", "libraries": ["libmid"], "paths": ["proxy/"], "may_include": ["low"]},
        {"name": "low", "libraries": ["liblow"], "paths": ["proxy/low/"], "may_include": [],
         "forbid_system": ["event2/"]},
        {"name": "policy", "libraries": ["libpol"], "paths": ["policy/"], "may_include": []},
    ]}
    files = {
        TABLE: json.dumps(table),
        "proxy/main.c": '#include "mid.h"\n#include "low/a.h"\n',
        "proxy/mid.h": '#include "low/a.h"\n#include "main.h"\n',
        "proxy/main.h": "",
        "proxy/low/a.h": '#include <stdint.h>\n#include "b.h"\n',
        "proxy/low/b.h": '#include "a.h"\n',
        "proxy/low/a.c": '#include "low/a.h"\n\n#include <event2/event.h>\n#include "mid.h"\n',
        "policy/p.c": '#include "nowhere.h"\n',
    }
    expect = [
        # mid.h is below top, which only may include low: a skipped layer is no licence
        'proxy/main.c:1: includes "mid.h" (proxy/mid.h, layer mid)',
        'proxy/mid.h:2: includes "main.h" (proxy/main.h, layer top)',
        "proxy/low/a.c:3: includes <event2/event.h>",
        'proxy/low/a.c:4: includes "mid.h" (proxy/mid.h, layer mid)',
        "proxy/low/a.h:2: includes proxy/low/b.h, which includes it back",
        'policy/p.c:1: includes "nowhere.h", which is no file',
        "proxy/low/a.c:1: built into libmid",
    ]
    with tempfile.TemporaryDirectory() as root:
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        errors = check(root, [f"libmid={root}/proxy/low/a.c", "libtop=proxy/main.c"])
    missing = [e for e in expect if not any(x.startswith(e) for x in errors)]
    extra = [x for x in errors if not any(x.startswith(e) for e in expect)]
    for e in missing:
        print(f"self-test: not reported: {e}")
    for x in extra:
        print(f"self-test: reported wrongly: {x}")
    return 1 if missing or extra else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--built", action="append", default=[], metavar="LIB=SRC,...")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    errors = check(os.path.abspath(args.root), args.built)
    for e in errors:
        print(e)
    if errors:
        print(f"layers: {len(errors)} violation(s) of {TABLE}", file=sys.stderr)
        return 1
    print(f"layers: every include of {', '.join(s + '/' for s in SCANNED)} follows {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

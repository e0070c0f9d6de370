"""A small Dockerfile reader: the instructions deploy/Dockerfile uses, enough
for tests/deploy to check it without Docker.

    df = Dockerfile.load("deploy/Dockerfile")
    rt = df.stage("runtime")            # or df.stages[-1], the default target
    rt.first("USER").args               # "10101:10101"
    rt.all("COPY")[0].flags             # {"from": "build"}

Lines ending in a backslash continue on the next one; comment lines inside
a continuation are dropped (as BuildKit does); the exec form (a JSON array)
is parsed as JSON. Heredocs and parser directives other than comments are
not supported, and an instruction this reader does not know is an error, so
the file cannot grow a construct the tests would silently skip.
"""
import json
import shlex

KNOWN = {"FROM", "RUN", "COPY", "ADD", "WORKDIR", "USER", "VOLUME", "EXPOSE", "ENTRYPOINT",
         "CMD", "LABEL", "ARG", "ENV", "HEALTHCHECK", "STOPSIGNAL", "SHELL"}


class DockerfileError(ValueError):
    pass


class Instruction:
    def __init__(self, line, name, args):
        self.line = line  # where it starts, 1-based
        self.name = name
        self.flags = {}   # --from=build -> {"from": "build"}
        rest = args
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            k, _, v = flag[2:].partition("=")
            self.flags[k] = v
            rest = rest.lstrip()
        self.args = rest

    def exec_form(self):
        """The arguments as a list: JSON in the exec form, else shell words."""
        if self.args.startswith("["):
            try:
                v = json.loads(self.args)
            except ValueError as e:
                raise DockerfileError("line %d: %s: bad JSON array: %s" % (self.line, self.name, e))
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise DockerfileError("line %d: %s: expected an array of strings" % (self.line, self.name))
            return v
        return shlex.split(self.args)

    def __repr__(self):
        return "<%s line %d: %s>" % (self.name, self.line, self.args[:60])


class Stage:
    def __init__(self, instr):
        words = instr.args.split()
        if len(words) == 3 and words[1].lower() == "as":
            self.base, self.name = words[0], words[2]
        elif len(words) == 1:
            self.base, self.name = words[0], None
        else:
            raise DockerfileError("line %d: FROM: expected IMAGE [AS NAME], got %r" % (instr.line, instr.args))
        self.instructions = [instr]

    def all(self, name):
        return [i for i in self.instructions if i.name == name]

    def first(self, name):
        found = self.all(name)
        if not found:
            raise DockerfileError("stage %s has no %s" % (self.name, name))
        return found[0]

    def last(self, name):
        found = self.all(name)
        if not found:
            raise DockerfileError("stage %s has no %s" % (self.name, name))
        return found[-1]


class Dockerfile:
    def __init__(self, text):
        self.instructions = list(_instructions(text))
        self.stages = []
        for i in self.instructions:
            if i.name == "FROM":
                self.stages.append(Stage(i))
            elif i.name == "ARG" and not self.stages:
                continue  # an ARG before the first FROM
            elif not self.stages:
                raise DockerfileError("line %d: %s before the first FROM" % (i.line, i.name))
            else:
                self.stages[-1].instructions.append(i)
        if not self.stages:
            raise DockerfileError("no FROM: not a Dockerfile")

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls(f.read())

    def chain(self, stage):
        """`stage` and the stages it is built FROM, nearest first: what it
        inherits (labels, USER, ENV) comes from these."""
        out = [stage]
        names = {s.name: s for s in self.stages if s.name}
        while out[-1].base in names and names[out[-1].base] not in out:
            out.append(names[out[-1].base])
        return out

    def image(self, stage):
        """The registry image a stage starts from, through stage names."""
        return self.chain(stage)[-1].base

    def stage(self, name):
        for s in self.stages:
            if s.name == name:
                return s
        raise DockerfileError("no stage named %r (have %s)" % (name, [s.name for s in self.stages]))


def _instructions(text):
    buf, start = None, 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.lstrip()
        if stripped.startswith("#"):
            continue  # a comment, also inside a continuation
        if buf is None:
            if not stripped:
                continue
            buf, start = "", n
        elif not stripped:
            continue  # an empty line inside a continuation
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        yield _instruction(start, buf.strip())
        buf = None
    if buf is not None:
        raise DockerfileError("line %d: the file ends inside a continued instruction" % start)


def _instruction(line, text):
    name, _, args = text.partition(" ")
    name = name.upper()
    if name not in KNOWN:
        raise DockerfileError("line %d: unknown instruction %r" % (line, name))
    if not args.strip():
        raise DockerfileError("line %d: %s without arguments" % (line, name))
    return Instruction(line, name, " ".join(args.split()) if not args.lstrip().startswith("[") else args.strip())


def apt_installs(run):
    """The packages one RUN's `apt-get install` commands name (options
    skipped), in order."""
    words = shlex.split(run.args)
    pkgs, i = [], 0
    while i < len(words):
        if words[i] == "apt-get" and i + 1 < len(words):
            j = i + 1
            while j < len(words) and words[j].startswith("-"):
                j += 1
            if j < len(words) and words[j] == "install":
                j += 1
                while j < len(words) and words[j] not in ("&&", ";", "||", "|"):
                    if not words[j].startswith("-"):
                        pkgs.append(words[j])
                    j += 1
            i = j
        else:
            i += 1
    return pkgs

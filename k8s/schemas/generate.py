#!/usr/bin/env python3
"""Writes kubeconform's per-kind JSON schemas from a Kubernetes OpenAPI v2
spec (api/openapi-spec/swagger.json of the k8s.io/kubernetes module).

  k8s/schemas/generate.py SWAGGER_JSON OUT_DIR KIND...

KIND is GROUP/VERSION/Kind, with an empty group for the core API:
"/v1/Service", "apps/v1/Deployment", "policy/v1/PodDisruptionBudget".
Each becomes OUT_DIR/<kind>[-<group>]-<version>.json, lower case, which is
kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` layout (the group's
first label only: "policy", "apps").

Each schema is standalone: the definitions it reaches are copied into its own
"definitions" and the references point there, so kubeconform needs no
network. It is strict: an object that lists its properties admits no other,
so a misspelt or misplaced field is an error, and apiVersion and kind must be
the kind's own. Two of the spec's string formats take numbers too, as the API
server does: int-or-string (ports, maxUnavailable) and quantities (cpu: 1).
"""

import json
import os
import sys

REF = "#/definitions/"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


class SpecError(Exception):
    pass


def parse_kind(text):
    parts = text.split("/")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise SpecError("%s: expected GROUP/VERSION/Kind (empty group for the core API, e.g. /v1/Service)" % text)
    return parts[0], parts[1], parts[2]


def find_definition(defs, group, version, kind):
    """The name of the definition whose x-kubernetes-group-version-kind is
    exactly (group, version, kind)."""
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", ()):
            if (gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) == (group, version, kind):
                return name
    raise SpecError("%s/%s/%s: no such kind in this spec" % (group, version, kind))


def strict_copy(node, reached):
    """A copy of a schema node with local references, strict objects and
    the numeric formats widened; `reached` collects the definitions named."""
    if isinstance(node, list):
        return [strict_copy(x, reached) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref":
            if not value.startswith(REF):
                raise SpecError("reference %s is not to a definition" % value)
            reached.add(value[len(REF):])
            out[key] = value
        elif key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: strict_copy(v, reached) for k, v in value.items()}
        elif key.startswith("x-kubernetes-"):
            continue
        else:
            out[key] = strict_copy(value, reached)
    if out.get("format") == "int-or-string":
        out.pop("type", None)
        out.pop("format", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def standalone(defs, name, group, version, kind):
    reached = set()
    top = strict_copy(defs[name], reached)
    api_version = "%s/%s" % (group, version) if group else version
    top["properties"]["apiVersion"] = {"type": "string", "enum": [api_version]}
    top["properties"]["kind"] = {"type": "string", "enum": [kind]}
    top["required"] = sorted(set(top.get("required", [])) | {"apiVersion", "kind"})
    local = {}
    pending = sorted(reached)
    while pending:
        ref = pending.pop()
        if ref in local:
            continue
        if ref not in defs:
            raise SpecError("%s: reference to %s, which the spec does not define" % (name, ref))
        more = set()
        if ref == QUANTITY:
            local[ref] = {"description": defs[ref].get("description", ""),
                          "oneOf": [{"type": "string"}, {"type": "number"}]}
        elif ref == INT_OR_STRING:
            local[ref] = {"description": defs[ref].get("description", ""),
                          "oneOf": [{"type": "string"}, {"type": "integer"}]}
        else:
            local[ref] = strict_copy(defs[ref], more)
        pending.extend(sorted(more - set(local)))
    top["definitions"] = dict(sorted(local.items()))
    top["$schema"] = "http://json-schema.org/draft-04/schema#"
    return top


def file_name(group, version, kind):
    suffix = "-%s-%s" % (group.split(".")[0], version) if group else "-%s" % version
    return (kind + suffix).lower() + ".json"


def main(argv):
    if len(argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    spec_path, out_dir, kinds = argv[1], argv[2], argv[3:]
    try:
        with open(spec_path) as f:
            spec = json.load(f)
        defs = spec.get("definitions")
        if not isinstance(defs, dict):
            raise SpecError("%s: no \"definitions\": not an OpenAPI v2 spec" % spec_path)
        os.makedirs(out_dir, exist_ok=True)
        for text in kinds:
            group, version, kind = parse_kind(text)
            schema = standalone(defs, find_definition(defs, group, version, kind), group, version, kind)
            path = os.path.join(out_dir, file_name(group, version, kind))
            with open(path, "w") as f:
                json.dump(schema, f, indent=1, sort_keys=True)
                f.write("\n")
            print("%s: %d definitions" % (path, len(schema["definitions"])))
    except (OSError, ValueError, SpecError) as e:
        sys.stderr.write("generate.py: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

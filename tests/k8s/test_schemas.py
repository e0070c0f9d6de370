"""k8s/schemas: the converter from the OpenAPI spec, on a small spec of our
own, and the schemas kept in the repo: standalone, strict, for the kinds
the manifests use."""
import json
import os
import subprocess
import sys

import pytest

from kube import K8S, SCHEMAS, load_module, docs

gen = load_module("levee_schema_gen", os.path.join(K8S, "schemas", "generate.py"))

SPEC = {"definitions": {
    "io.k8s.api.x.v1.Thing": {
        "x-kubernetes-group-version-kind": [{"group": "x.example.io", "version": "v1", "kind": "Thing"}],
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                       "spec": {"$ref": "#/definitions/io.k8s.api.x.v1.ThingSpec"}},
        "type": "object"},
    "io.k8s.api.x.v1.ThingSpec": {
        "properties": {"port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
                       "memory": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
                       "labels": {"additionalProperties": {"type": "string"}, "type": "object",
                                  "x-kubernetes-map-type": "granular"},
                       "self": {"$ref": "#/definitions/io.k8s.api.x.v1.ThingSpec"}},
        "required": ["port"], "type": "object"},
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
    "io.k8s.api.core.v1.Pod": {
        "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Pod"}],
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                       "broken": {"$ref": "#/definitions/io.k8s.api.core.v1.Missing"}},
        "type": "object"},
}}


def test_converter_makes_a_standalone_strict_schema(tmp_path):
    defs = SPEC["definitions"]
    name = gen.find_definition(defs, "x.example.io", "v1", "Thing")
    s = gen.standalone(defs, name, "x.example.io", "v1", "Thing")
    assert s["properties"]["apiVersion"]["enum"] == ["x.example.io/v1"]
    assert s["properties"]["kind"]["enum"] == ["Thing"]
    assert set(s["required"]) == {"apiVersion", "kind"}
    assert s["additionalProperties"] is False
    assert sorted(s["definitions"]) == ["io.k8s.api.x.v1.ThingSpec", "io.k8s.apimachinery.pkg.api.resource.Quantity",
                                        "io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    spec = s["definitions"]["io.k8s.api.x.v1.ThingSpec"]
    assert spec["additionalProperties"] is False
    # a map keeps its own additionalProperties
    assert spec["properties"]["labels"] == {"additionalProperties": {"type": "string"}, "type": "object"}
    assert s["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["oneOf"] == [
        {"type": "string"}, {"type": "integer"}]
    assert {"type": "number"} in s["definitions"]["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"]
    assert gen.file_name("x.example.io", "v1", "Thing") == "thing-x-v1.json"
    assert gen.file_name("", "v1", "Service") == "service-v1.json"


@pytest.mark.parametrize("kind,why", [
    ("x.example.io/v2/Thing", "no such kind"),
    ("/v1/Pod", "which the spec does not define"),
    ("Thing", "expected GROUP/VERSION/Kind"),
])
def test_converter_refuses(tmp_path, kind, why):
    spec = tmp_path / "swagger.json"
    spec.write_text(json.dumps(SPEC))
    r = subprocess.run([sys.executable, os.path.join(K8S, "schemas", "generate.py"), str(spec), str(tmp_path / "out"),
                        kind], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and why in r.stderr, r.stderr


def test_converter_output_validates_with_kubeconform(tmp_path):
    spec = tmp_path / "swagger.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, os.path.join(K8S, "schemas", "generate.py"), str(spec), str(out),
                        "x.example.io/v1/Thing"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    from kube import kubeconform
    loc = str(out / "{{ .ResourceKind }}{{ .KindSuffix }}.json")
    good = "apiVersion: x.example.io/v1\nkind: Thing\nspec:\n  port: http\n  memory: 1\n"
    bad = "apiVersion: x.example.io/v1\nkind: Thing\nspec:\n  prot: 80\n"
    for text, ok in ((good, True), (bad, False)):
        r = subprocess.run([kubeconform(), "-strict", "-schema-location", loc, "-"], input=text,
                           capture_output=True, text=True, timeout=30)
        assert (r.returncode == 0) == ok, (text, r.stdout, r.stderr)


def test_kept_schemas_are_standalone_and_strict():
    for name in os.listdir(SCHEMAS):
        with open(os.path.join(SCHEMAS, name)) as f:
            s = json.load(f)
        text = json.dumps(s)
        for ref in set(part.split('"')[0] for part in text.split('"$ref": "#/definitions/')[1:]):
            assert ref in s["definitions"], "%s: $ref %s is not in the file" % (name, ref)
        assert "http" not in "".join(part.split('"')[0] for part in text.split('"$ref": "')[1:]), name
        assert s["additionalProperties"] is False
        assert s["properties"]["kind"]["enum"], name


def test_every_kind_built_has_a_schema_and_no_schema_is_unused():
    from kube import TARGETS
    kinds = {(d["apiVersion"], d["kind"]) for t in TARGETS for d in docs(t)}
    want = {gen.file_name(*(v.split("/") if "/" in v else ("", v)), k) for v, k in kinds}
    assert want == set(os.listdir(SCHEMAS))

"""The mesh manifests (envoy/istio/, envoy/gateway/): each document against its CRD's schema, and
every filter configuration they carry loaded by the filter's own parser in a real Envoy.

Schemas come from ../shared/schemas/, committed as tests/fixtures/crds/ (the CRDs' `openAPIV3Schema`, converted to JSON Schema the
way the API server reads them: `nullable`, `x-kubernetes-int-or-string`, unknown fields rejected
as `kubectl apply` does by default, except under `x-kubernetes-preserve-unknown-fields`). The CEL
rules (`x-kubernetes-validations`) need Kubernetes' CEL library; the ones these manifests can
break are checked by hand below. Kinds without a CRD in that folder are checked for apiVersion,
kind and metadata.

Istio turns a WasmPlugin into an Envoy Wasm filter like this (pilot/pkg/model/wasm.go):
pluginConfig -> JSON string `configuration`; vmConfig.env HOST -> `host_env_keys`;
failStrategy FAIL_OPEN/FAIL_CLOSE/FAIL_RELOAD -> failure_policy FAIL_OPEN/FAIL_CLOSED/FAIL_RELOAD;
phase (AUTHN, AUTHZ, STATS, then unspecified) and priority (higher first) -> chain order. The
Envoy tests below build the filter chain the same way from the manifests.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness import ROOT, _find_http_filters, as_bundle

# The CRDs the project was given in ../shared/schemas/, committed as test data in
# tests/fixtures/crds/ (CI runs on a clean clone that may have no ../shared). When both exist
# they must be the same files, so the committed copy cannot drift.
SCHEMAS = ROOT / "tests" / "fixtures" / "crds"
_SHARED = ROOT.parent / "shared" / "schemas"
if _SHARED.is_dir():
    _given = {p.name: p.read_bytes() for p in _SHARED.glob("*.yaml")}
    _committed = {p.name: p.read_bytes() for p in SCHEMAS.glob("*.yaml")}
    assert _given == _committed, "tests/fixtures/crds/ differs from ../shared/schemas/: copy them again"
MANIFEST_DIRS = [ROOT / "envoy" / "istio", ROOT / "envoy" / "gateway"]
FILTERS = ["llmobs_correlation", "llmobs_pii_redaction", "llmobs_token_accounting", "llmobs_error_normalization"]
# The bundle's pluginConfig sections, each with the schema of the separate filter's config.
BUNDLE_SECTIONS = {"correlation": "llmobs_correlation", "pii_redaction": "llmobs_pii_redaction",
                   "token_accounting": "llmobs_token_accounting",
                   "error_normalization": "llmobs_error_normalization"}
PHASES = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"]
ISTIO_FAILURE_POLICY = {"FAIL_OPEN": "FAIL_OPEN", "FAIL_CLOSE": "FAIL_CLOSED", "FAIL_RELOAD": "FAIL_RELOAD"}
# Kinds with no CRD in ../shared/schemas: the apiVersions they may carry.
OTHER_KINDS = {
    "Gateway": {"networking.istio.io/v1", "gateway.networking.k8s.io/v1"},
    "VirtualService": {"networking.istio.io/v1"},
    "HTTPRoute": {"gateway.networking.k8s.io/v1"},
    "BackendTLSPolicy": {"gateway.networking.k8s.io/v1"},
    "Backend": {"gateway.envoyproxy.io/v1alpha1"},
    "EnvoyProxy": {"gateway.envoyproxy.io/v1alpha1"},
    "ClientTrafficPolicy": {"gateway.envoyproxy.io/v1alpha1"},
    "BackendTrafficPolicy": {"gateway.envoyproxy.io/v1alpha1"},
    "Secret": {"v1"},
    "ConfigMap": {"v1"},
    "Deployment": {"apps/v1"},
    # Validated against Istio's Telemetry schema through Node (test_the_genai_telemetry_...).
    "Telemetry": {"telemetry.istio.io/v1"},
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# ---------------------------------------------------------------------------------------------
# Schemas

def k8s_to_json_schema(node, top: bool = False):
    """One CRD openAPIV3Schema node as JSON Schema, with the API server's reading of the
    Kubernetes extensions."""
    if isinstance(node, list):
        return [k8s_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: k8s_to_json_schema(sub) for name, sub in value.items()}
        elif key.startswith("x-kubernetes-") or key in ("nullable", "description", "default", "example"):
            continue
        else:
            out[key] = k8s_to_json_schema(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if top:
        # A CRD's schema may leave out the fields every object has.
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    # kubectl apply validates strictly: an unknown field is an error, not silently dropped.
    if ("properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def load_crd_schemas() -> dict:
    """(apiVersion, kind) -> JSON Schema, for every served version of every CRD in the folder."""
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = k8s_to_json_schema(version["schema"]["openAPIV3Schema"], top=True)
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


CRD_SCHEMAS = load_crd_schemas()


def manifest_files() -> list[Path]:
    # kustomization.yaml is Kustomize's own file, not a manifest (rendered below).
    return sorted(p for d in MANIFEST_DIRS for p in d.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[tuple[str, dict]]:
    """(label, document) for every YAML document under the manifest folders."""
    out = []
    for path in manifest_files():
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                out.append((f"{path.relative_to(ROOT)}#{i}", doc))
    return out


DOCS = documents()


def of_kind(kind: str) -> list[dict]:
    return [d for _, d in DOCS if d.get("kind") == kind]


def cel_rule_errors(doc: dict) -> list[str]:
    """The CEL rules of the CRDs (x-kubernetes-validations) that these manifests could break,
    evaluated in Python: jsonschema cannot run CEL."""
    spec, kind, errors = doc.get("spec", {}), doc.get("kind"), []
    if kind == "WasmPlugin":
        if sum(k in spec for k in ("selector", "targetRef", "targetRefs")) > 1:
            errors.append("only one of targetRefs or selector can be set")
        for env in spec.get("vmConfig", {}).get("env", []):
            if env.get("valueFrom") == "HOST" and "value" in env:
                errors.append("value may only be set when valueFrom is INLINE")
        if not re.match(r"^(oci|https?|file)://", spec.get("url", "")):
            errors.append("url must have schema one of [http, https, file, oci]")
    elif kind == "EnvoyExtensionPolicy":
        refs = ("targetRef" in spec) + ("targetRefs" in spec)
        if refs != 1 and not spec.get("targetSelectors"):
            errors.append("either targetRef or targetRefs must be used")
        for ref in spec.get("targetRefs", []) + ([spec["targetRef"]] if "targetRef" in spec else []):
            if ref.get("group") != "gateway.networking.k8s.io":
                errors.append("targetRef group must be gateway.networking.k8s.io")
            if ref.get("kind") not in ("Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "UDPRoute", "TCPRoute", "TLSRoute"):
                errors.append("targetRef kind not supported")
        for wasm in spec.get("wasm", []):
            code = wasm.get("code", {})
            for type_, field in (("HTTP", "http"), ("Image", "image")):
                if (code.get("type") == type_) != (field in code):
                    errors.append(f"If type is {type_}, {field} field needs to be set.")
    elif kind == "ServiceEntry":
        if "workloadSelector" in spec and "endpoints" in spec:
            errors.append("only one of WorkloadSelector or Endpoints can be set")
        if spec.get("resolution", "NONE") == "NONE" and "endpoints" in spec:
            errors.append("endpoints must not be set with resolution NONE")
        ports = spec.get("ports", [])
        for port in ports:
            if not all(0 < port.get(f, 1) <= 65535 for f in ("number", "targetPort")):
                errors.append("port must be between 1-65535")
        if len({p.get("number") for p in ports}) != len(ports):
            errors.append("port number cannot be duplicated")
    return errors


def validation_errors(doc: dict) -> list[str]:
    """Everything wrong with one manifest document, as messages (empty when it is valid)."""
    api_version, kind, meta = doc.get("apiVersion"), doc.get("kind"), doc.get("metadata")
    errors = []
    if not isinstance(meta, dict) or not DNS_SUBDOMAIN.match(str(meta.get("name", ""))):
        errors.append("metadata.name missing or not a DNS subdomain")
    elif not DNS_SUBDOMAIN.match(str(meta.get("namespace", ""))):
        errors.append("metadata.namespace missing: every manifest here is namespaced")
    schema = CRD_SCHEMAS.get((api_version, kind))
    if schema is not None:
        validator = jsonschema.Draft202012Validator(schema)
        errors += [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        errors += cel_rule_errors(doc)
    elif any(k == kind for _, k in CRD_SCHEMAS):
        errors.append(f"{kind} has a CRD in {SCHEMAS}, but not as {api_version}")
    elif api_version not in OTHER_KINDS.get(kind, ()):
        errors.append(f"unknown kind/apiVersion {kind} {api_version}")
    return errors


def test_the_schemas_folder_has_every_crd_the_manifests_use():
    assert {k for _, k in CRD_SCHEMAS} == {"WasmPlugin", "ServiceEntry", "DestinationRule", "EnvoyExtensionPolicy"}
    kinds = {d["kind"] for _, d in DOCS}
    assert {"WasmPlugin", "ServiceEntry", "DestinationRule", "EnvoyExtensionPolicy"} <= kinds


@pytest.mark.parametrize("label,doc", DOCS, ids=[label for label, _ in DOCS])
def test_every_manifest_document_is_valid_for_its_kind(label, doc):
    assert validation_errors(doc) == [], label


def first(kind: str, name: str | None = None) -> dict:
    return copy.deepcopy(next(d for d in of_kind(kind) if name is None or d["metadata"]["name"] == name))


def set_path(doc: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


MUTATIONS = [
    # Envoy spells it FAIL_CLOSED, Istio FAIL_CLOSE: the mistake that is easy to make.
    ("WasmPlugin", "llmobs-pii-redaction", "spec.failStrategy", "FAIL_CLOSED"),
    ("WasmPlugin", "llmobs-pii-redaction", "spec.phase", "AUTHENTICATION"),
    ("WasmPlugin", "llmobs-correlation", "spec.pluginconfig", {"sample_rate": 0.1}),
    ("WasmPlugin", "llmobs-correlation", "spec.priority", "first"),
    ("WasmPlugin", "llmobs-correlation", "spec.sha256", "not-a-digest"),
    ("WasmPlugin", "llmobs-correlation", "spec.match.0.ports.0.number", 70000),
    ("WasmPlugin", "llmobs-pii-redaction", "spec.vmConfig.env.0.value", "inline-key"),
    ("WasmPlugin", "llmobs-correlation", "spec.targetRefs", [{"kind": "Service", "name": "x"}]),
    ("DestinationRule", "llm-openai", "spec.trafficPolicy.portLevelSettings.0.tls.mode", "TLS"),
    ("ServiceEntry", "llm-openai", "spec.resolution", "HOSTNAME"),
    ("ServiceEntry", "llm-openai", "spec.ports.0.targetPort", 70000),
    ("ServiceEntry", "llm-openai", "spec.location", "EXTERNAL"),
    ("EnvoyExtensionPolicy", "llmobs", "spec.wasm.0.failOpen", "no"),
    ("EnvoyExtensionPolicy", "llmobs", "spec.wasm.0.code.type", "HTTP"),
    ("EnvoyExtensionPolicy", "llmobs", "spec.targetRefs.0.kind", "Service"),
]


@pytest.mark.parametrize("kind,name,path,value", MUTATIONS, ids=[f"{m[1]}:{m[2]}" for m in MUTATIONS])
def test_a_manifest_that_violates_its_schema_is_rejected(kind, name, path, value):
    doc = first(kind, name)
    assert validation_errors(doc) == []
    assert validation_errors(set_path(doc, path, value)) != []


def test_a_document_of_an_unknown_kind_or_without_a_name_is_rejected():
    route = first("HTTPRoute")
    assert validation_errors(route) == []
    assert validation_errors({**route, "apiVersion": "gateway.networking.k8s.io/v1beta7"}) != []
    assert validation_errors({**route, "metadata": {"namespace": "llm-gateway"}}) != []
    assert validation_errors({**first("WasmPlugin"), "apiVersion": "extensions.istio.io/v1"}) != []


# ---------------------------------------------------------------------------------------------
# What the pack needs from the manifests

def plugins_by_selector() -> dict:
    groups: dict = {}
    for plugin in of_kind("WasmPlugin"):
        key = json.dumps(plugin["spec"]["selector"]["matchLabels"], sort_keys=True)
        groups.setdefault(key, []).append(plugin)
    return groups


def separate_plugins() -> list[dict]:
    """The four per-filter WasmPlugins, in the order Istio puts them in the chain."""
    plugins = [p for p in of_kind("WasmPlugin") if p["spec"]["pluginName"] in FILTERS]
    return sorted(plugins, key=lambda p: (PHASES.index(p["spec"].get("phase", "UNSPECIFIED_PHASE")),
                                          -p["spec"].get("priority", 0),
                                          p["metadata"]["namespace"], p["metadata"]["name"]))


def contains_redaction(plugin_name: str) -> bool:
    return plugin_name in ("llmobs_pii_redaction", "llmobs_bundle")


def test_istio_orders_the_filters_correlation_redaction_accounting_errors():
    assert [p["spec"]["pluginName"] for p in separate_plugins()] == FILTERS
    # All four on the same workloads and traffic, or the order means nothing.
    assert len({json.dumps([p["spec"]["selector"], p["spec"]["match"]], sort_keys=True) for p in separate_plugins()}) == 1


def test_redaction_fails_closed_and_the_observers_fail_open():
    for plugin in of_kind("WasmPlugin"):
        expected = "FAIL_CLOSE" if contains_redaction(plugin["spec"]["pluginName"]) else "FAIL_OPEN"
        assert plugin["spec"]["failStrategy"] == expected, plugin["metadata"]["name"]
    for policy in of_kind("EnvoyExtensionPolicy"):
        for wasm in policy["spec"]["wasm"]:
            assert wasm["failOpen"] is False, wasm["name"]


def pii_sections() -> list[tuple[dict, list[str]]]:
    """(PII config, host env keys of its VM) for every place a PII config sits."""
    out = []
    for plugin in of_kind("WasmPlugin"):
        cfg = plugin["spec"].get("pluginConfig", {})
        pii = cfg if plugin["spec"]["pluginName"] == "llmobs_pii_redaction" else cfg.get("pii_redaction")
        if pii is not None:
            env = plugin["spec"].get("vmConfig", {}).get("env", [])
            out.append((pii, [e["name"] for e in env if e.get("valueFrom") == "HOST"]))
    for policy in of_kind("EnvoyExtensionPolicy"):
        for wasm in policy["spec"]["wasm"]:
            out.append((wasm["config"]["pii_redaction"], wasm.get("env", {}).get("hostKeys", [])))
    return out


def test_the_pseudonym_key_reaches_the_vm_only_from_the_host_environment():
    sections = pii_sections()
    assert len(sections) == 4  # the PII plugin, the bundle, the egress gateway's bundle, Envoy Gateway
    for pii, host_keys in sections:
        assert set(pii["pseudonym_key"]) == {"env", "id"}, "only the variable's name and the key id"
        assert pii["pseudonym_key"]["env"] in host_keys
    for plugin in of_kind("WasmPlugin"):
        for env in plugin["spec"].get("vmConfig", {}).get("env", []):
            assert env.get("valueFrom") == "HOST", "no inline values in a WasmPlugin's VM environment"
    # The sidecar gets it from the Secret, never as a literal.
    proxy = next(c for d in of_kind("Deployment") for c in d["spec"]["template"]["spec"]["containers"]
                 if c["name"] == "istio-proxy")
    key_env = next(e for e in proxy["env"] if e["name"] == "LLMOBS_PII_KEY")
    assert set(key_env) == {"name", "valueFrom"}
    secret = first("Secret")
    assert key_env["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert "data" not in secret and "stringData" not in secret, "no key material in the repository"


def test_the_wasm_plugins_select_the_labelled_workloads_and_the_llm_egress_gateway():
    deployment = first("Deployment", "chat-backend")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    gateways = {json.dumps(g["spec"]["selector"], sort_keys=True) for g in of_kind("Gateway") if "selector" in g["spec"]}
    for plugin in of_kind("WasmPlugin"):
        selector = plugin["spec"]["selector"]["matchLabels"]
        on_sidecars = selector.items() <= labels.items()
        on_gateway = json.dumps(selector, sort_keys=True) in gateways
        assert on_sidecars != on_gateway, plugin["metadata"]["name"]
        assert all(m["mode"] == "CLIENT" for m in plugin["spec"]["match"])
        if on_sidecars:
            sidecar_ports = {p["number"] for se in of_kind("ServiceEntry") if se["metadata"]["name"].startswith("llm-")
                             and not se["metadata"]["name"].endswith("-egress") for p in se["spec"]["ports"]}
            assert {p["number"] for m in plugin["spec"]["match"] for p in m["ports"]} == sidecar_ports


def test_each_image_url_names_the_module_its_plugin_loads():
    for plugin in of_kind("WasmPlugin"):
        name = plugin["spec"]["pluginName"]
        assert re.fullmatch(rf"oci://registry\.example\.com/llmobs/{name}:\d+\.\d+\.\d+", plugin["spec"]["url"])
    for policy in of_kind("EnvoyExtensionPolicy"):
        for wasm in policy["spec"]["wasm"]:
            assert re.fullmatch(rf"registry\.example\.com/llmobs/{wasm['rootID']}:\d+\.\d+\.\d+", wasm["code"]["image"]["url"])


def test_the_sidecar_variant_originates_tls_for_every_provider_it_declares():
    rules = {dr["spec"]["host"]: dr for dr in of_kind("DestinationRule")}
    sidecar_entries = [se for se in of_kind("ServiceEntry") if not se["metadata"]["name"].endswith("-egress")]
    assert {h for se in sidecar_entries for h in se["spec"]["hosts"]} >= {
        "api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com"}
    for se in sidecar_entries:
        (host,) = se["spec"]["hosts"]
        assert [(p["number"], p["protocol"], p.get("targetPort")) for p in se["spec"]["ports"]] == [(80, "HTTP", 443)]
        (setting,) = [s for s in rules[host]["spec"]["trafficPolicy"]["portLevelSettings"] if s["port"]["number"] == 80]
        assert setting["tls"] == {"mode": "SIMPLE", "sni": host}


def test_the_egress_gateway_variant_routes_through_the_gateway_and_originates_tls_there():
    gateway = first("Gateway", "llm-egressgateway")
    hosts = set(gateway["spec"]["servers"][0]["hosts"])
    services = {d["metadata"]["name"]: d for d in of_kind("VirtualService")}
    for host in hosts:
        vs = services[next(n for n, d in services.items() if d["spec"]["hosts"] == [host] and "gateways" in d["spec"])]
        to_gateway, to_provider = vs["spec"]["http"]
        assert to_gateway["match"][0]["gateways"] == ["mesh"]
        assert to_gateway["route"][0]["destination"]["host"].startswith("llm-egressgateway.")
        assert to_provider["match"][0]["gateways"] == ["llm-egressgateway"]
        assert to_provider["route"][0]["destination"] == {"host": host, "port": {"number": 443}}
        dr = next(d for d in of_kind("DestinationRule") if d["spec"]["host"] == host and d["metadata"]["name"].endswith("-egress"))
        (setting,) = dr["spec"]["trafficPolicy"]["portLevelSettings"]
        assert setting == {"port": {"number": 443}, "tls": {"mode": "SIMPLE", "sni": host}}


def test_the_llm_routes_allow_long_generations_and_leave_retries_to_the_clients():
    for vs in of_kind("VirtualService"):
        for route in vs["spec"]["http"]:
            assert route["timeout"] == "300s" and route["retries"] == {"attempts": 0}, vs["metadata"]["name"]
    for route in of_kind("HTTPRoute"):
        for rule in route["spec"]["rules"]:
            assert rule["timeouts"]["request"] == "300s"


def test_the_redaction_cap_fits_the_proxies_buffer_limits():
    # Istio keeps Envoy's 1 MiB per-connection default; Envoy Gateway's is 32 KiB, raised here.
    for pii, _ in pii_sections():
        assert pii["max_inspected_bytes"] <= 1024 * 1024 // 2
    for policy in of_kind("ClientTrafficPolicy") + of_kind("BackendTrafficPolicy"):
        assert policy["spec"]["connection"]["bufferLimit"] == "1Mi"


def test_the_istio_stats_bootstrap_is_the_packs_stats_fragment():
    configmap = first("ConfigMap", "llmobs-stats-bootstrap")
    shipped = json.loads(configmap["data"]["custom_bootstrap.json"])
    fragment = yaml.safe_load((ROOT / "envoy" / "stats-config.yaml").read_text())
    assert shipped == fragment, ("envoy/istio/stats-bootstrap-configmap.yaml is out of date: regenerate its "
                                 "custom_bootstrap.json with scripts/sync-stats-config")
    annotations = first("Deployment", "chat-backend")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["sidecar.istio.io/bootstrapOverride"] == configmap["metadata"]["name"]


def test_the_envoy_gateway_proxies_merge_the_packs_stats_fragment_into_their_bootstrap():
    # The e2e suite passes envoy/stats-config.yaml with `--config-yaml`, a proto merge like Envoy
    # Gateway's `type: Merge`; equal content means the labels tested there are the Gateway's too.
    proxy = first("EnvoyProxy", "llm-gateway-proxy")
    assert proxy["spec"]["bootstrap"]["type"] == "Merge"
    shipped = yaml.safe_load(proxy["spec"]["bootstrap"]["value"])
    fragment = yaml.safe_load((ROOT / "envoy" / "stats-config.yaml").read_text())
    assert shipped == fragment, ("the EnvoyProxy bootstrap in envoy/gateway/gateway.yaml is out of date: "
                                 "rewrite spec.bootstrap.value with scripts/sync-stats-config")
    gateway = first("Gateway", "llm-gateway")
    assert gateway["spec"]["infrastructure"]["parametersRef"]["name"] == proxy["metadata"]["name"]


# ---------------------------------------------------------------------------------------------
# Evaluation export: the exporter is a bootstrap Wasm service, added through the proxy's
# bootstrap (docs/mesh.md, "Evaluation export in the mesh")

EXPORTER_MODULE = ROOT / "dist" / "llmobs_eval_exporter.wasm"


def exporter_bootstraps() -> dict[str, tuple[dict, dict, list[dict], list[dict]]]:
    """Where -> (bootstrap merged into the proxy's, the pod spec or EnvoyProxy carrying the module,
    its volumes, the proxy container's volume mounts)."""
    configmap = first("ConfigMap", "llmobs-eval-bootstrap")
    workload = first("Deployment", "chat-backend-eval-export")
    pod = workload["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "istio-proxy")
    proxy = first("EnvoyProxy", "llm-gateway-proxy-eval-export")
    deployment = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]
    return {
        "istio": (json.loads(configmap["data"]["custom_bootstrap.json"]), workload,
                  pod["volumes"], sidecar["volumeMounts"]),
        "envoy-gateway": (yaml.safe_load(proxy["spec"]["bootstrap"]["value"]), proxy,
                          deployment["pod"]["volumes"], deployment["container"]["volumeMounts"]),
    }


def test_the_exporter_bootstraps_add_the_exporter_its_cluster_and_the_packs_stats_fragment():
    bootstraps = exporter_bootstraps()
    fragment = yaml.safe_load((ROOT / "envoy" / "stats-config.yaml").read_text())
    assert bootstraps["istio"][0] == bootstraps["envoy-gateway"][0], "one exporter set-up for both meshes"
    for where, (bootstrap, owner, volumes, mounts) in bootstraps.items():
        assert bootstrap["stats_config"] == fragment["stats_config"], \
            f"{where}: the stats fragment is out of date: run scripts/sync-stats-config"
        (service,) = bootstrap["bootstrap_extensions"]
        typed = service["typed_config"]
        assert service["name"] == "envoy.bootstrap.wasm" and typed["singleton"] is True
        vm = typed["config"]["vm_config"]
        # The HTTP filters find the queue by this vm_id (evaluation.exporter_vm_id's default).
        assert vm["vm_id"] == "llmobs_eval_exporter" == typed["config"]["root_id"]
        settings = json.loads(typed["config"]["configuration"]["value"])
        assert [c["name"] for c in bootstrap["static_resources"]["clusters"]] == [settings["cluster"]]
        # The module path is inside the read-only mount of the module's ConfigMap.
        module = Path(vm["code"]["local"]["filename"])
        (mount,) = [m for m in mounts if module.parent == Path(m["mountPath"])]
        assert mount.get("readOnly") is True
        (volume,) = [v for v in volumes if v["name"] == mount["name"]]
        assert volume["configMap"]["name"] == "llmobs-eval-exporter-wasm", where
    workload = bootstraps["istio"][1]
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["sidecar.istio.io/bootstrapOverride"] == "llmobs-eval-bootstrap"
    assert bootstraps["envoy-gateway"][1]["spec"]["bootstrap"]["type"] == "Merge"


def test_the_exporter_module_fits_in_the_configmap_that_carries_it():
    # A ConfigMap holds at most 1 MiB; binaryData is base64, 4 bytes for every 3.
    assert EXPORTER_MODULE.stat().st_size * 4 / 3 < 0.9 * 1024 * 1024


@pytest.mark.parametrize("where", ["istio", "envoy-gateway"])
def test_the_exporter_bootstrap_of_the_manifests_merged_into_envoy_exports_consented_exchanges(where, start_envoy):
    """The manifest's bootstrap merged into a real Envoy's exactly as Istio (custom bootstrap,
    `--config-yaml`) and Envoy Gateway (`type: Merge`) do, only the module path and the
    collector's address pointed at this machine: the exporter starts, and a consented exchange
    reaches a real OTLP/HTTP receiver with the stats tags of the fragment in force."""
    from otlp_receiver import OtlpLogsReceiver

    from harness import enable_evaluation

    bootstrap = copy.deepcopy(exporter_bootstraps()[where][0])
    config = bootstrap["bootstrap_extensions"][0]["typed_config"]["config"]
    config["vm_config"]["code"]["local"]["filename"] = str(EXPORTER_MODULE)
    receiver = OtlpLogsReceiver()
    try:
        (cluster,) = bootstrap["static_resources"]["clusters"]
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        address["socket_address"] = {"address": "127.0.0.1", "port_value": receiver.port}
        envoy = start_envoy(mutate=enable_evaluation, config_yaml=json.dumps(bootstrap))
        status, _ = post_as_provider(envoy.port, "/v1/chat/completions",
                                     {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                                     {"x-llmobs-consent": "eval"})
        assert status == 200
        assert envoy.wait_metric("llmobs_eval_export_records_sent", 1) == 1
        (record,) = receiver.received()
        assert record["resource"]["service.name"] == "llmobs"
        assert record["attributes"]["event.name"] == "llmobs.eval.exchange"
        assert envoy.metric("llmobs_wasm_memory_bytes", plugin="llmobs_eval_exporter") > 0
    finally:
        receiver.stop()


# ---------------------------------------------------------------------------------------------
# Every filter configuration, loaded by the filter itself in Envoy

def chain_from(source: str) -> dict:
    """filter name -> (configuration, failure policy, host env keys), as Istio or Envoy Gateway
    would hand them to Envoy, for one place the manifests configure the pack."""
    if source == "separate WasmPlugins":
        return {p["spec"]["pluginName"]: (p["spec"]["pluginConfig"], ISTIO_FAILURE_POLICY[p["spec"]["failStrategy"]],
                                          [e["name"] for e in p["spec"].get("vmConfig", {}).get("env", [])])
                for p in separate_plugins()}
    if source == "Envoy Gateway":
        (wasm,) = first("EnvoyExtensionPolicy")["spec"]["wasm"]
        config, policy, keys = wasm["config"], "FAIL_OPEN" if wasm["failOpen"] else "FAIL_CLOSED", wasm["env"]["hostKeys"]
    else:
        plugin = first("WasmPlugin", source)
        config = plugin["spec"]["pluginConfig"]
        policy = ISTIO_FAILURE_POLICY[plugin["spec"]["failStrategy"]]
        keys = [e["name"] for e in plugin["spec"]["vmConfig"]["env"]]
    assert set(config) == set(BUNDLE_SECTIONS), "the bundle's config is exactly its four sections"
    # Keyed like the separate filters; apply_chain folds them into the bundle module's sections.
    return {BUNDLE_SECTIONS[section]: (cfg, policy, keys) for section, cfg in config.items()}


SOURCES = ["separate WasmPlugins", "llmobs-bundle", "llmobs-bundle-egress", "Envoy Gateway"]


def distinct_chains() -> list[tuple[str, dict]]:
    """The chains of SOURCES, each distinct set of configurations once per module kind (the
    separate modules, or the bundle module; the first source's failure policies and VM
    environment apply), labelled with the sources it stands for."""
    def configs(chain: dict, source: str) -> tuple:
        return source == SOURCES[0], {name: cfg for name, (cfg, _, _) in chain.items()}

    out: list[tuple[list[str], dict]] = []
    for source in SOURCES:
        chain = chain_from(source)
        same = next((labels for labels, c in out if configs(c, labels[0]) == configs(chain, source)), None)
        if same is not None:
            same.append(source)
        else:
            out.append(([source], chain))
    return [(" + ".join(labels), chain) for labels, chain in out]


def apply_chain(chain: dict, bundle: bool = False):
    """A build_config mutation: the demo's four filters, in the chain's order, each with the
    configuration, failure policy and VM environment the manifests give it; with `bundle`, the
    bundle module carrying them as sections, with the manifest's failure policy and environment."""
    def mutate(config: dict) -> None:
        filters = _find_http_filters(config)
        wasm_filters = {f["typed_config"]["config"]["name"]: f for f in filters if "config" in f.get("typed_config", {})}
        router = [f for f in filters if f["name"] == "envoy.filters.http.router"]
        ordered = [wasm_filters[name] for name in chain]
        for name, (cfg, policy, host_keys) in chain.items():
            wasm = wasm_filters[name]["typed_config"]["config"]
            wasm["configuration"]["value"] = json.dumps(cfg)  # Istio: protomarshal.ToJSON(pluginConfig)
            wasm["failure_policy"] = policy
            wasm["vm_config"].pop("environment_variables", None)
            if host_keys:
                wasm["vm_config"]["environment_variables"] = {"host_env_keys": host_keys}
        filters[:] = ordered + router
        if bundle:
            _, policy, host_keys = next(iter(chain.values()))
            as_bundle(config)
            (wasm,) = [f["typed_config"]["config"] for f in _find_http_filters(config) if "config" in f.get("typed_config", {})]
            assert wasm["name"] == "llmobs_bundle"
            wasm["failure_policy"] = policy
            wasm["vm_config"]["environment_variables"] = {"host_env_keys": host_keys}
    return mutate


def post_as_provider(port: int, path: str, body: dict, headers: dict) -> tuple[int, dict]:
    """A POST with the provider's host name as :authority, as an application behind the sidecar
    sends it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = json.dumps(body).encode()
    conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
    for k, v in {"host": "api.openai.com", "content-type": "application/json",
                 "content-length": str(len(data)), **headers}.items():
        conn.putheader(k, v)
    conn.endheaders(data)
    resp = conn.getresponse()
    resp.read()
    result = resp.status, {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return result


CHAINS = distinct_chains()


@pytest.mark.parametrize("label,chain", CHAINS, ids=[label for label, _ in CHAINS])
def test_every_filter_configuration_in_the_manifests_loads_in_envoy_and_takes_effect(label, chain, start_envoy, fresh_upstream):
    assert list(chain) == FILTERS
    envoy = start_envoy(mutate=apply_chain(chain, bundle=SOURCES[0] not in label))
    correlation, pii, accounting, errors = (chain[name][0] for name in FILTERS)

    status, _ = post_as_provider(envoy.port, "/v1/chat/completions",
                                 {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                                 {"baggage": "tenant=acme,user=bob", accounting["tenant_header"]: "acme"})
    assert status == 200
    # Correlation: the baggage policy for the provider's authority, else everything stripped.
    allowed = [d["allow_keys"] for d in correlation.get("baggage", {}).get("destinations", [])
               if d.get("authority") == "api.openai.com"]
    forwarded = fresh_upstream.seen()[-1]["header_map"].get("baggage")
    assert forwarded == ("tenant=acme" if allowed and "tenant" in allowed[0] else None)
    # PII redaction: the manifest's rule set is the one in force.
    assert envoy.wait_metric("llmobs_pii_rule_set", 1, rule_set_version=pii["rule_set_version"]) == 1
    # Token accounting: the tenant comes from the manifest's header.
    assert envoy.metric("llmobs_token_accounting_tokens", tenant="acme", gen_ai_token_type="output") > 0

    # Error normalization: its retry hint, in the header the manifest names (off by default).
    # A 429's class needs the body (rate limit or exhausted quota), so no class header here.
    fresh_upstream.scenario({"type": "fail", "status": 429, "retry_after": 2, "times": 1})
    status, headers = post_as_provider(envoy.port, "/v1/chat/completions",
                                       {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, {})
    assert status == 429
    assert headers.get(errors["response_headers"]["retry_after_ms"]) == "2000"


@pytest.mark.parametrize("filter_name", FILTERS)
def test_a_configuration_its_filter_rejects_stops_envoy(filter_name, start_envoy):
    cfg, policy, keys = chain_from("separate WasmPlugins")[filter_name]
    # The filter alone (a bad config fails at its own on_configure; the others add only time).
    chain = {filter_name: ({**cfg, "unknown_field_from_a_typo": True}, policy, keys)}
    envoy = start_envoy(mutate=apply_chain(chain), wait_ready=False)
    assert envoy.wait_exit(120) != 0
    assert "invalid configuration: field" in envoy.log_text()


# ---- Kustomize: the bases (envoy/istio, envoy/gateway) and the example overlays ----

KUSTOMIZATIONS = ["envoy/istio", "envoy/gateway", "envoy/kustomize/istio-example", "envoy/kustomize/envoy-gateway-example"]


def render(folder: str) -> list[dict]:
    """`kubectl kustomize folder`: every rendered document."""
    import subprocess
    done = subprocess.run(["kubectl", "kustomize", str(ROOT / folder)], capture_output=True, text=True,
                          timeout=60, check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d is not None]


@pytest.mark.parametrize("folder", KUSTOMIZATIONS)
def test_every_rendered_document_is_valid_for_its_kind(folder):
    docs = render(folder)
    assert docs, folder
    for doc in docs:
        assert validation_errors(doc) == [], (folder, doc.get("kind"), doc["metadata"].get("name"))


def test_the_istio_base_renders_the_shipped_manifests_unchanged():
    shipped = {(d["kind"], d["metadata"]["name"]): d for path in
               ["pseudonym-key-secret.yaml", "stats-bootstrap-configmap.yaml", "wasmplugin-correlation.yaml",
                "wasmplugin-pii-redaction.yaml", "wasmplugin-token-accounting.yaml",
                "wasmplugin-error-normalization.yaml"]
               for d in yaml.safe_load_all((ROOT / "envoy" / "istio" / path).read_text()) if d}
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in render("envoy/istio")}
    assert rendered == shipped


def test_the_istio_overlay_sets_namespace_registry_selector_and_rules(tmp_path):
    import subprocess
    docs = render("envoy/kustomize/istio-example")
    base = {d["metadata"]["name"]: d for d in render("envoy/istio")}
    assert {d["metadata"]["namespace"] for d in docs} == {"team-a"}
    assert {d["kind"] for d in docs} == {"Secret", "ConfigMap", "WasmPlugin"}
    plugins = [d for d in docs if d["kind"] == "WasmPlugin"]
    assert len(plugins) == 4
    for plugin in plugins:
        assert plugin["spec"]["url"].startswith("oci://ghcr.io/acme/llmobs/" + plugin["spec"]["pluginName"] + ":")
        assert plugin["spec"]["sha256"] == base[plugin["metadata"]["name"]]["spec"]["sha256"], "same image"
        assert plugin["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/part-of": "chat",
                                                             "llmobs/egress": "enabled"}
        # Everything else is the base's.
        rest = {k: v for k, v in plugin["spec"].items() if k not in ("url", "selector", "pluginConfig")}
        base_rest = {k: v for k, v in base[plugin["metadata"]["name"]]["spec"].items()
                     if k not in ("url", "selector", "pluginConfig")}
        assert rest == base_rest
    (pii,) = [p for p in plugins if p["spec"]["pluginName"] == "llmobs_pii_redaction"]
    assert [r["entity"] for r in pii["spec"]["pluginConfig"]["custom_rules"]] == ["employee_id", "ticket_id"]
    # The rendered configurations load in the filters' own code (the CLI shares it).
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run([str(ROOT / "dist" / "llmobs"), "config", "check", str(rendered)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("ok: ") == 4


def test_the_envoy_gateway_overlay_sets_registry_and_rules(tmp_path):
    import subprocess
    docs = render("envoy/kustomize/envoy-gateway-example")
    (policy,) = [d for d in docs if d["kind"] == "EnvoyExtensionPolicy"]
    image = policy["spec"]["wasm"][0]["code"]["image"]
    assert image["url"].startswith("ghcr.io/acme/llmobs/llmobs_bundle:")
    assert re.fullmatch(r"[0-9a-f]{64}", image["sha256"])
    rules = policy["spec"]["wasm"][0]["config"]["pii_redaction"]["custom_rules"]
    assert [r["entity"] for r in rules] == ["employee_id", "ticket_id"]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run([str(ROOT / "dist" / "llmobs"), "config", "check", str(rendered)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------
# The GenAI span attributes under Istio's Telemetry API (docs/tracing.md)

ISTIO_SCHEMA = ROOT / "tests" / "istio-schema"


def telemetry_errors(docs: list[dict]) -> list[str | None]:
    """Istio's Telemetry v1 schema, as @kubernetes-models/istio (pinned in
    tests/istio-schema/package-lock.json, installed by scripts/setup) compiled it from the CRD:
    None per valid document, else the message."""
    out = subprocess.run(["node", str(ISTIO_SCHEMA / "validate.mjs")], input="\n".join(json.dumps(d) for d in docs),
                         capture_output=True, text=True, cwd=ISTIO_SCHEMA, timeout=60, check=True).stdout
    return [None if r["ok"] else r["error"] for r in map(json.loads, out.splitlines())]


def test_the_genai_telemetry_is_valid_istio_telemetry_with_the_envoy_fragments_tags():
    [telemetry] = of_kind("Telemetry")
    assert telemetry_errors([telemetry]) == [None]
    fragment = yaml.safe_load((ROOT / "envoy" / "tracing" / "genai-spans.yaml").read_text())
    envoy_tags = {t["tag"]: t["value"] for t in fragment["http_connection_manager"]["tracing"]["custom_tags"]}
    istio_tags = {tag: v["formatter"]["value"] for tag, v in telemetry["spec"]["tracing"][0]["customTags"].items()}
    assert istio_tags == envoy_tags and "gen_ai.provider.name" in istio_tags


def test_a_telemetry_that_violates_istios_schema_is_rejected():
    [telemetry] = of_kind("Telemetry")
    no_value = copy.deepcopy(telemetry)
    no_value["spec"]["tracing"][0]["customTags"]["gen_ai.provider.name"] = {"formatter": {}}
    bad_rate = copy.deepcopy(telemetry)
    bad_rate["spec"]["tracing"][0]["randomSamplingPercentage"] = "all"
    errors = telemetry_errors([no_value, bad_rate])
    assert errors[0] and "formatter" in errors[0] and "value" in errors[0]
    assert errors[1] and "randomSamplingPercentage" in errors[1]

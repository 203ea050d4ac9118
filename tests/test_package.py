"""scripts/package: the OCI images Istio pulls, read back with a real OCI tool (skopeo)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import tarfile

import pytest

from harness import DIST, ROOT

MODULES = sorted(DIST.glob("*.wasm"))


def run_package(out, manifests="none") -> dict[str, str]:
    """Runs scripts/package into `out`; returns module -> digest as the script printed it."""
    done = subprocess.run([str(ROOT / "scripts" / "package"), "--out", str(out), "--manifests", str(manifests)],
                          capture_output=True, text=True, timeout=60, check=True)
    printed = dict(re.findall(r"^package: \S+/(\w+)  (sha256:[0-9a-f]{64})$", done.stdout, re.M))
    return printed


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    assert MODULES, "dist/ has no .wasm: run ./scripts/build"
    out = tmp_path_factory.mktemp("oci")
    return out, run_package(out)


def test_every_built_module_gets_an_image_and_a_line_in_digests_txt(packaged):
    out, printed = packaged
    assert sorted(printed) == [m.stem for m in MODULES]
    listed = {}
    for line in (out / "digests.txt").read_text().splitlines():
        module, version, digest = line.split()
        listed[module] = digest
        assert version == re.search(r'^version = "(.+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    assert listed == printed


@pytest.mark.parametrize("wasm", MODULES, ids=lambda p: p.stem)
def test_skopeo_reads_the_layout_and_reports_the_printed_digest(packaged, wasm):
    out, printed = packaged
    inspected = json.loads(skopeo("inspect", f"oci:{out / wasm.stem}"))
    assert inspected["Digest"] == printed[wasm.stem]
    assert len(inspected["Layers"]) == 1


@pytest.mark.parametrize("wasm", MODULES, ids=lambda p: p.stem)
def test_the_copied_image_is_the_compat_variant_with_the_module_byte_for_byte(packaged, wasm, tmp_path):
    out, printed = packaged
    dest = tmp_path / "copy"
    skopeo("copy", "--quiet", f"oci:{out / wasm.stem}", f"dir:{dest}")
    raw = (dest / "manifest.json").read_bytes()
    manifest = json.loads(raw)
    # skopeo copied the manifest unchanged: its digest is still the one printed.
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == printed[wasm.stem]
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    blob = (dest / layer["digest"].split(":", 1)[1]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        (member,) = tar.getmembers()
        assert member.name == "plugin.wasm"
        assert tar.extractfile(member).read() == wasm.read_bytes()


def test_packaging_twice_gives_the_same_digests(packaged, tmp_path):
    _, printed = packaged
    assert run_package(tmp_path) == printed


def workspace_version() -> str:
    return re.search(r'^version = "(.+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)


def image_refs(manifests) -> list[tuple[str, str, str]]:
    """(file, image url, sha256) of every llmobs image in the Istio and Envoy Gateway manifests."""
    import yaml
    refs = []
    for path in sorted(manifests.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            spec = doc.get("spec") or {}
            if doc.get("kind") == "WasmPlugin":
                refs.append((path.name, spec["url"], spec.get("sha256")))
            if doc.get("kind") == "EnvoyExtensionPolicy":
                for wasm in spec["wasm"]:
                    image = wasm["code"]["image"]
                    refs.append((path.name, image["url"], image.get("sha256")))
    return refs


def test_packaging_pins_every_manifest_to_the_version_and_the_digest_it_built(tmp_path):
    import shutil
    manifests = tmp_path / "envoy"
    shutil.copytree(ROOT / "envoy", manifests)
    printed = run_package(tmp_path / "oci", manifests)
    refs = image_refs(manifests)
    assert len(refs) >= 7, refs
    for name, url, sha256 in refs:
        module, tag = url.rsplit("/", 1)[1].split(":")
        assert tag == workspace_version(), (name, url)
        assert "sha256:" + sha256 == printed[module], (name, module)
    # Pinning again changes nothing (the old pin is replaced, not duplicated).
    before = {p: p.read_text() for p in manifests.rglob("*.yaml")}
    run_package(tmp_path / "oci", manifests)
    assert {p: p.read_text() for p in manifests.rglob("*.yaml")} == before



def test_the_shipped_manifests_are_pinned_to_this_release():
    for name, url, sha256 in image_refs(ROOT / "envoy"):
        assert url.endswith(":" + workspace_version()), (name, url)
        assert re.fullmatch(r"[0-9a-f]{64}", sha256 or ""), (name, "sha256 must be set (scripts/package)")
    # The Kustomize overlays' image references follow the release too.
    overlays = list((ROOT / "envoy" / "kustomize").rglob("*.yaml"))
    refs = [m for p in overlays for m in re.findall(r"^\s*value: \S+/llmobs_\w+:(\S+)$", p.read_text(), re.M)]
    assert refs and set(refs) == {workspace_version()}, refs

"""Validates deploy/k8s against Kubernetes' own schemas (kubernetes-validate, strict: an
unknown field is an error): every object the base kustomization lists, the CPU overlay's
Deployment as its JSON patches make it, and the other manifests. Kinds from operators' CRDs
(CloudNativePG's Cluster) have no schema there and are only checked for their identity.

Usage: python validate_deploy.py DEPLOY_K8S_DIR KUBERNETES_VERSION
"""

import copy
import sys
from pathlib import Path

import jsonpatch
import kubernetes_validate
import yaml

# Custom resources whose schemas kubernetes-validate does not carry.
CUSTOM_KINDS = {("postgresql.cnpg.io/v1", "Cluster")}


def documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def check(resource, where, version):
    key = (resource.get("apiVersion"), resource.get("kind"))
    name = resource.get("metadata", {}).get("name")
    if not name:
        raise SystemExit(f"{where}: {key[1]} without metadata.name")
    if key in CUSTOM_KINDS:
        print(f"ok (custom resource, identity only): {where}: {key[1]}/{name}")
        return
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        raise SystemExit(f"{where}: {key[1]}/{name}: {e.message} at {list(e.path)}")
    except kubernetes_validate.SchemaNotFoundError:
        raise SystemExit(f"{where}: no schema for {key} in Kubernetes {version}")
    print(f"ok: {where}: {key[1]}/{name}")


def main():
    root, version = Path(sys.argv[1]), sys.argv[2]
    base = yaml.safe_load((root / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = [root / r for r in base["resources"]]
    checked = set()
    for path in listed:
        for resource in documents(path):
            check(resource, path, version)
        checked.add(path.resolve())
    # The CPU overlay: its patches applied to the base objects they target.
    overlay_dir = root / "cpu"
    overlay = yaml.safe_load((overlay_dir / "kustomization.yaml").read_text(encoding="utf-8"))
    objects = [r for path in listed for r in documents(path)]
    for patch in overlay.get("patches", []):
        target = patch["target"]
        matches = [
            o
            for o in objects
            if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]
        ]
        if len(matches) != 1:
            raise SystemExit(f"cpu overlay: {target} matches {len(matches)} objects")
        patched = jsonpatch.apply_patch(copy.deepcopy(matches[0]), yaml.safe_load(patch["patch"]))
        check(patched, overlay_dir / "kustomization.yaml", version)
    # Everything else under deploy/k8s (applied on its own).
    for path in sorted(root.rglob("*.yaml")):
        if path.name == "kustomization.yaml" or path.resolve() in checked:
            continue
        for resource in documents(path):
            check(resource, path, version)


if __name__ == "__main__":
    main()

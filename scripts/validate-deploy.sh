#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/k8s against Kubernetes' schemas
# (scripts/validate_deploy.py: strict, the CPU overlay included). Its tools come from PyPI
# into a virtual environment in helora's cache (made once; changing the pins remakes it).
#
#   bash scripts/validate-deploy.sh [KUBERNETES_VERSION]    default 1.33
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-common.sh

PACKAGES=(kubernetes-validate==1.37.0 jsonpatch==1.48 PyYAML==6.0.4)
version=${1:-1.33}

command -v python3 >/dev/null 2>&1 || die "python3 not found"
venv="$(helora_cache_dir)/deploy-venv"
marker="$venv/.installed"
if [[ ! -f $marker || "$(cat "$marker")" != "${PACKAGES[*]}" ]]; then
    echo "validate-deploy: installing ${PACKAGES[*]} into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}"
    echo "${PACKAGES[*]}" >"$marker"
fi
"$venv/bin/python" scripts/validate_deploy.py deploy/k8s "$version"

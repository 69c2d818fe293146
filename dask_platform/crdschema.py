"""Validate custom resources (Argo CD, KEDA, prometheus-operator) against their CRD schemas, offline.

kubernetes-validate knows only Kubernetes' own kinds; the CRD schemas come from the npm packages
@kubernetes-models/argo-cd, -/keda and -/prometheus-operator (``RepoTree.crd_dir``,
scripts/crd/, installed by ``scripts/dev`` with npm ci).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

CUSTOM_GROUPS = ("argoproj.io/", "keda.sh/", "monitoring.coreos.com/")


class SchemaToolMissing(RuntimeError):
    """node or the npm packages are not installed."""


def is_custom(obj: dict[str, Any]) -> bool:
    return obj.get("apiVersion", "").startswith(CUSTOM_GROUPS)


def validate_custom(crd_dir: Path, objects: list[dict[str, Any]]) -> list[list[str]]:
    """Per object, the CRD schema errors (an empty list: valid)."""
    if not objects:
        return []
    node = shutil.which("node")
    if not node or not (crd_dir / "node_modules").is_dir():
        raise SchemaToolMissing("node and scripts/crd/node_modules are needed (scripts/dev setup installs them)")
    proc = subprocess.run(
        [node, str(crd_dir / "validate.mjs")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        cwd=crd_dir,
        check=True,
    )
    return [r["errors"] for r in json.loads(proc.stdout)]

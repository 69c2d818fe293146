"""Finding helm: a recent one on PATH is used, an old one is not, and the bundled one is checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dask_platform import helmbin


def fake_helm(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "helm"
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def test_parse_version():
    assert helmbin.parse_version("v3.17.2+gcc0bbbd") == (3, 17, 2)
    assert helmbin.parse_version("garbage") is None


def test_recent_helm_on_path_is_used(tmp_path: Path, monkeypatch):
    path = fake_helm(tmp_path / "bin", "v3.18.1")
    monkeypatch.delenv("HELM", raising=False)
    monkeypatch.setenv("PATH", f"{path.parent}{os.pathsep}{os.environ['PATH']}")
    assert helmbin.find_helm() == path


def test_old_helm_on_path_is_not_used(tmp_path: Path, monkeypatch):
    path = fake_helm(tmp_path / "bin", "v3.10.0")
    monkeypatch.delenv("HELM", raising=False)
    monkeypatch.setenv("PATH", f"{path.parent}{os.pathsep}{os.environ['PATH']}")
    found = helmbin.find_helm()
    assert found != path
    assert helmbin.helm_version(found) == (3, 17, 2)
    assert helmbin.sha256_of(found) == helmbin.BUNDLED.helm_sha256


def test_bundled_binary_with_wrong_pin_is_refused(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(helmbin, "TOOLS_DIR", tmp_path / "tools")
    wrong = helmbin.BundledTools(helm_sha256="0" * 64, helm_version="wrong-pin")
    with pytest.raises(helmbin.ToolError, match="sha256"):
        helmbin.ensure_bundled(wrong)
    assert not (tmp_path / "tools" / "helm-wrong-pin").exists()

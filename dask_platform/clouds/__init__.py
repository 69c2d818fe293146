"""Each cloud in one place: dask_platform/clouds/<cloud>.py (with its node groups in <cloud>.yaml) provides one
``Cloud`` (base.py lists its fields); generic code asks ``cloud(name)`` and never compares cloud names
(tests/test_lint.py). Adding a cloud: docs/clouds.md.
"""

from __future__ import annotations

from dask_platform.clouds import aws, azure, gcp, minikube
from dask_platform.clouds.base import Cloud

CLOUDS: dict[str, Cloud] = {c.name: c for c in (aws.CLOUD, gcp.CLOUD, azure.CLOUD, minikube.CLOUD)}


def cloud(name: str) -> Cloud:
    """The cloud called ``name`` (KeyError naming the known ones otherwise)."""
    try:
        return CLOUDS[name]
    except KeyError:
        raise KeyError(f"unknown cloud {name!r}: expected one of {', '.join(CLOUDS)}") from None

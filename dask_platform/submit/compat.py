"""Which package versions must agree between the client, the scheduler and the workers, and a table of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobs.runtime import VERSIONED_PACKAGES

COMPARED = ("python", *VERSIONED_PACKAGES)


def is_critical(package: str) -> bool:
    """A difference in this package breaks pickling between client and cluster."""
    return package == "python" or VERSIONED_PACKAGES.get(package, False)


@dataclass(frozen=True)
class VersionReport:
    rows: list[tuple[str, str, str, str]]  # package, client, scheduler, workers (a set, comma-joined)
    critical: list[str]  # packages whose mismatch breaks pickling
    minor: list[str]  # other differences

    def table(self) -> str:
        header = ("package", "client", "scheduler", "workers")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(4)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        for row in self.rows:
            mark = "  <-- differs" if row[0] in self.critical + self.minor else ""
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + mark)
        return "\n".join(lines)


def _short_python(version: str | None) -> str:
    return ".".join((version or "-").split(".")[:3])


def version_table(versions: dict[str, Any]) -> VersionReport:
    """Compare the output of ``Client.get_versions(packages=...)``: python by major.minor.micro, packages exactly."""

    def pkgs(entry: dict[str, Any]) -> dict[str, str]:
        packages = dict(entry.get("packages", {}))
        packages["python"] = _short_python(packages.get("python"))
        return {k: str(v) if v is not None else "-" for k, v in packages.items()}

    client = pkgs(versions["client"])
    scheduler = pkgs(versions["scheduler"])
    workers = [pkgs(w) for w in versions.get("workers", {}).values()]
    rows, critical, minor = [], [], []
    for name in COMPARED:
        worker_values = sorted({w.get(name, "-") for w in workers})
        values = {client.get(name, "-"), scheduler.get(name, "-"), *worker_values}  # no workers: nothing to compare
        worker_values = worker_values or ["-"]
        if name == "python":  # pickles cross patch releases of one minor
            values = {".".join(v.split(".")[:2]) for v in values}
        rows.append((name, client.get(name, "-"), scheduler.get(name, "-"), ", ".join(worker_values)))
        if len(values) > 1:
            (critical if is_critical(name) else minor).append(name)
    return VersionReport(rows, critical, minor)


def remote_versions(address: str, timeout_s: float) -> dict[str, Any]:
    """What ``Client.get_versions`` returns, asked without a Client: the scheduler's ``versions`` handler and its
    ``broadcast`` to the workers, which every distributed release has answered with the same arguments. Used when
    a Client cannot even start (an older scheduler refuses a newer client's first call)."""
    import asyncio

    from distributed.core import rpc
    from distributed.versions import get_versions

    packages = list(VERSIONED_PACKAGES)

    async def ask() -> dict[str, Any]:
        async with rpc(address, timeout=timeout_s) as scheduler:
            versions = await asyncio.wait_for(scheduler.versions(packages=packages), timeout_s)
            workers = await asyncio.wait_for(
                scheduler.broadcast(msg={"op": "versions", "packages": packages}), timeout_s
            )
        return {"client": get_versions(packages=packages), "scheduler": versions, "workers": workers}

    return asyncio.run(ask())

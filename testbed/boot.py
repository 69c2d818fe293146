"""Boot the Dask cluster a rendered manifest folder describes, as local processes.

The scheduler and worker containers' command, args and environment are taken from the rendered Deployments and
run as they would in their pods, with only what a kubelet and cluster DNS would provide translated:
- Service names resolve to 127.0.0.1, and each container port gets a free local port (the pod's IP and ports);
- ``--host=127.0.0.1`` is added (a pod advertises its own IP; here that is the loopback address);
- ``$(VAR)`` references in args expand from the container's env (fieldRef metadata.name -> the pod name);
- volume mount paths (/scratch, /tmp) become folders of a scratch directory;
- PYTHONPATH is a folder with another release of the jobs package (the image carries none; see ``image_site``).
Everything else (nthreads, memory limit, worker resources, scheduler address, ports' roles) is the manifest's.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed import CHECKOUT
from testbed.daskproc import free_port, image_site, wait_for_port

BIN = Path(sys.executable).parent


@dataclass
class Pod:
    name: str
    labels: dict[str, str]
    process: subprocess.Popen
    ports: dict[int, int]  # local port -> container port


@dataclass
class Booted:
    scheduler_address: str
    services: dict[str, dict[int, int]]  # Service name -> {service port: local port}
    processes: list[subprocess.Popen] = field(default_factory=list)
    workers: int = 0
    pods: dict[str, Pod] = field(default_factory=dict)

    def resolve(self, address: str) -> str:
        """tcp://<service>:<port> as a pod would dial it -> the local address."""
        match = re.fullmatch(r"(\w+://)?([^:/]+):(\d+)(/.*)?", address)
        if not match or match.group(2) not in self.services:
            raise ValueError(f"{address}: no Service of that name in the manifests")
        scheme, host, port, rest = match.groups()
        return f"{scheme or ''}127.0.0.1:{self.services[host][int(port)]}{rest or ''}"


def load_objects(rendered: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(rendered.glob("*.yaml"))]


def container_env(container: dict[str, Any], pod_name: str, mounts: dict[str, str]) -> dict[str, str]:
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = mounts.get(item["value"], item["value"])
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
    return env


def expand(arg: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


@contextlib.contextmanager
def boot(rendered: Path, workdir: Path, worker_limit: int | None = None) -> Iterator[Booted]:
    """Start the scheduler and every worker replica of ``rendered`` and wait until the workers joined."""
    objects = load_objects(rendered)
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    scheduler = next(
        d
        for d in deployments.values()
        if d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "scheduler"
    )
    workers = [
        d
        for d in deployments.values()
        if d["spec"]["template"]["metadata"]["labels"].get("dask-platform/role") == "worker"
    ]

    # Local ports: one per container port of the scheduler pod; Services map their port -> that local port.
    sched_container = scheduler["spec"]["template"]["spec"]["containers"][0]
    sched_ports = {p["containerPort"]: free_port() for p in sched_container.get("ports", [])}
    named = {p["name"]: p["containerPort"] for p in sched_container.get("ports", [])}
    booted_services: dict[str, dict[int, int]] = {}
    for name, svc in services.items():
        selector = svc["spec"]["selector"]
        if selector.items() <= scheduler["spec"]["template"]["metadata"]["labels"].items():
            booted_services[name] = {
                p["port"]: sched_ports[named.get(p["targetPort"], p["targetPort"])] for p in svc["spec"]["ports"]
            }
    scheduler_service = next(iter(booted_services))
    comm_port = next(p["port"] for p in services[scheduler_service]["spec"]["ports"] if p["name"] == "tcp-comm")
    booted = Booted(f"tcp://127.0.0.1:{booted_services[scheduler_service][comm_port]}", booted_services)

    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    # Job code other than the client's (not this checkout's editable install, which no pod has): it must upload.
    base_env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    base_env["PYTHONPATH"] = str(image_site(workdir / "opt-dask-platform"))
    # The image's Dask configuration: docker/Dockerfile copies docker/dask.yaml to /etc/dask/, which Dask reads at
    # start-up; here it is a folder of its own named by DASK_CONFIG, which Dask reads the same way.
    etc_dask = workdir / "etc-dask"
    etc_dask.mkdir(parents=True, exist_ok=True)
    (etc_dask / "dask.yaml").write_text((CHECKOUT / "docker" / "dask.yaml").read_text())
    base_env["DASK_CONFIG"] = str(etc_dask)

    def start(deployment: dict[str, Any], pod_name: str, ports: dict[int, int]) -> subprocess.Popen:
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        pod_dir = workdir / pod_name
        mounts = {}
        for mount in container.get("volumeMounts", []):
            local = pod_dir / mount["mountPath"].strip("/").replace("/", "_")
            local.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"]] = str(local)
        env = container_env(container, pod_name, mounts)
        args = []
        for arg in container.get("args", []):
            arg = expand(arg, env)
            for mount, local in mounts.items():
                arg = arg.replace(f"={mount}", f"={local}")
            for port, local_port in ports.items():
                arg = re.sub(
                    rf"^(--[\w-]+=)(:?){port}$",
                    rf"\g<1>127.0.0.1:{local_port}" if "address" in arg else rf"\g<1>{local_port}",
                    arg,
                )
            if re.fullmatch(r"\w+://[^:/]+:\d+", arg):
                arg = booted.resolve(arg)
            args.append(arg)
        args.append("--host=127.0.0.1")
        command = [str(BIN / container["command"][0]), *container["command"][1:], *args]
        log = (workdir / f"{pod_name}.log").open("w")
        proc_env = {**base_env, **env, "PATH": path, "HOME": str(pod_dir)}
        proc = subprocess.Popen(command, cwd=pod_dir, env=proc_env, stdout=log, stderr=subprocess.STDOUT)
        booted.processes.append(proc)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        booted.pods[pod_name] = Pod(pod_name, labels, proc, {local: cp for cp, local in ports.items()})
        return proc

    try:
        sched_name = f"{scheduler['metadata']['name']}-0"
        sched_proc = start(scheduler, sched_name, sched_ports)
        local_comm = int(booted.scheduler_address.rsplit(":", 1)[1])
        wait_for_port(local_comm, sched_proc, workdir / f"{sched_name}.log", timeout=60)
        for dep in workers:
            container = dep["spec"]["template"]["spec"]["containers"][0]
            replicas = dep["spec"]["replicas"] if worker_limit is None else min(worker_limit, dep["spec"]["replicas"])
            for i in range(replicas):
                ports = {p["containerPort"]: free_port() for p in container.get("ports", [])}
                start(dep, f"{dep['metadata']['name']}-{i}", ports)
                booted.workers += 1
        from distributed import Client

        with Client(booted.scheduler_address, timeout="30s") as client:
            client.wait_for_workers(booted.workers, timeout=120)
        yield booted
    finally:
        for proc in reversed(booted.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in booted.processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

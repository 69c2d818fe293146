"""Start and stop the single-node test cluster: the side effects (files, processes, routes, iptables, sysctls).

`scripts/dev node up` builds nothing itself: the binaries come from scripts/kube-build.sh, the Debian packages
from scripts/dev. It writes the PKI and configuration, protects the network, and starts containerd, etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and the DNS stand-in, each as its
own session with a pid file, then waits for the node to be Ready. `down` deletes the workloads while kube-proxy
still runs, stops every process, and undoes every change to the machine, the unreachable routes last.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from testbed import CHECKOUT
from testbed.node import config as cfg
from testbed.node.config import NODE_NAME, Layout, Network

Echo = Callable[[str], None]
# Kernel settings kubelet and kube-proxy change; saved at `up`, restored at `down`.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "kernel.panic",
    "kernel.panic_on_oops",
    "vm.overcommit_memory",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
)


def run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


# --- processes ---------------------------------------------------------------------------------------------


def start_process(
    layout: Layout, name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start ``cmd`` in its own session (it outlives this command), logging to logs/<name>.log."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    with (layout.logs / f"{name}.log").open("a") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    (layout.run / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def running(layout: Layout, name: str) -> int | None:
    path = layout.run / f"{name}.pid"
    if not path.exists():
        return None
    pid = int(path.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def stop_process(layout: Layout, name: str, timeout: float = 20) -> None:
    pid = running(layout, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline and _alive(pid):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    (layout.run / f"{name}.pid").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie of ours counts as gone
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            os.waitpid(pid, os.WNOHANG)
            return False
    return True


def wait_for(what: str, check: Callable[[], bool], timeout: float, layout: Layout, log: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    tail = (layout.logs / f"{log}.log").read_text()[-2500:] if (layout.logs / f"{log}.log").exists() else ""
    raise UserError(f"{what} not ready after {timeout:.0f} s; end of logs/{log}.log:\n{tail}")


# --- network safety ------------------------------------------------------------------------------------------


def default_interfaces() -> list[str]:
    """The interfaces that lead off this machine (those of default routes)."""
    routes = json.loads(run("ip", "-j", "route", "show", "default").stdout or "[]")
    return sorted({r["dev"] for r in routes if "dev" in r})


def protect_network(net: Network) -> None:
    """Unreachable routes for every node range, and a guard chain that drops (and counts) any packet of those
    ranges leaving through an interface that leads off the machine. Set before anything starts."""
    for cidr in net.guarded:
        run("ip", "route", "replace", "unreachable", cidr, "metric", "4000")
    run("iptables", "-w", "-N", net.guard_chain, check=False)
    run("iptables", "-w", "-F", net.guard_chain)
    for dev in default_interfaces():
        for cidr in net.guarded:
            run("iptables", "-w", "-A", net.guard_chain, "-o", dev, "-d", cidr, "-j", "DROP")
            run("iptables", "-w", "-A", net.guard_chain, "-o", dev, "-s", cidr, "-j", "DROP")
    for chain in ("OUTPUT", "FORWARD"):
        if run("iptables", "-w", "-C", chain, "-j", net.guard_chain, check=False).returncode != 0:
            run("iptables", "-w", "-I", chain, "1", "-j", net.guard_chain)


def guard_counters(net: Network) -> int:
    """Packets the guard chain dropped: each one would have left the machine."""
    out = run("iptables", "-w", "-L", net.guard_chain, "-n", "-v", "-x", check=False).stdout
    return sum(int(line.split()[0]) for line in out.splitlines()[2:] if line.split() and line.split()[0].isdigit())


def unprotect_network(net: Network) -> None:
    for chain in ("OUTPUT", "FORWARD"):
        while run("iptables", "-w", "-D", chain, "-j", net.guard_chain, check=False).returncode == 0:
            pass
    run("iptables", "-w", "-F", net.guard_chain, check=False)
    run("iptables", "-w", "-X", net.guard_chain, check=False)
    for cidr in net.guarded:
        run("ip", "route", "del", "unreachable", cidr, check=False)


def add_node_address(net: Network) -> None:
    run("ip", "addr", "replace", f"{net.node_ip}/32", "dev", "lo")


def save_sysctls(layout: Layout) -> None:
    path = layout.state / "sysctl.json"
    if path.exists():  # a node that was not torn down: keep the values from before it
        return
    values = {}
    for key in SYSCTLS:
        proc = run("sysctl", "-n", key, check=False)
        if proc.returncode == 0:
            values[key] = proc.stdout.strip()
    path.write_text(json.dumps(values, indent=2))
    run("sysctl", "-w", "net.ipv4.ip_forward=1")


def restore_sysctls(layout: Layout) -> None:
    path = layout.state / "sysctl.json"
    if path.exists():
        for key, value in json.loads(path.read_text()).items():
            run("sysctl", "-w", f"{key}={value}", check=False)
        path.unlink()


def remove_node_network(net: Network) -> None:
    """The bridge, the node's address, pod network namespaces, and the chains kube-proxy and CNI made."""
    for line in run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0]
        if name.startswith("cni-"):
            run("ip", "netns", "del", name, check=False)
    run("ip", "link", "del", net.bridge, check=False)
    run("ip", "addr", "del", f"{net.node_ip}/32", "dev", "lo", check=False)
    for table in ("filter", "nat", "mangle"):
        rules = run("iptables-save", "-t", table, check=False).stdout.splitlines()
        chains = [r[1:].split()[0] for r in rules if r.startswith(":") and r[1:].startswith(("KUBE-", "CNI-"))]
        for rule in rules:
            if rule.startswith("-A ") and any(f"-j {c}" in rule for c in chains):
                run("iptables", "-w", "-t", table, "-D", *shlex.split(rule[3:]), check=False)  # quoted comments
        for chain in chains:
            run("iptables", "-w", "-t", table, "-F", chain, check=False)
        for chain in chains:
            run("iptables", "-w", "-t", table, "-X", chain, check=False)


def unmount_under(*roots: Path) -> None:
    """Unmount everything mounted below ``roots`` (deepest first)."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    inside = [m for m in mounts if any(m == str(r) or m.startswith(f"{r}/") for r in roots)]
    for mount in sorted(set(inside), key=len, reverse=True):
        run("umount", "-l", mount, check=False)


# --- PKI and configuration --------------------------------------------------------------------------------------


def make_pki(net: Network, layout: Layout) -> None:
    """A CA, the apiserver's and kubelet's serving certificates, the apiserver's client certificate for the
    kubelet, and the service-account key pair (openssl; a few seconds)."""
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    days = "30"
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(pki / "ca.key"),
        "-out",
        str(pki / "ca.crt"),
        "-days",
        days,
        "-subj",
        "/CN=dask-platform-node-ca",
    )
    svc_names = "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
    certs = {
        "apiserver": ("/CN=kube-apiserver", f"subjectAltName=IP:{net.node_ip},IP:{net.service_ip},{svc_names}"),
        "kubelet": (f"/CN={NODE_NAME}", f"subjectAltName=IP:{net.node_ip},DNS:{NODE_NAME}"),
        "apiserver-kubelet-client": ("/O=system:masters/CN=kube-apiserver-kubelet-client", None),
    }
    for name, (subject, san) in certs.items():
        key, csr, crt = (str(pki / f"{name}.{ext}") for ext in ("key", "csr", "crt"))
        extra = ["-addext", san] if san else []
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", subject, *extra)
        run(
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            str(pki / "ca.crt"),
            "-CAkey",
            str(pki / "ca.key"),
            "-CAcreateserial",
            "-out",
            crt,
            "-days",
            days,
            "-copy_extensions",
            "copy",
        )
    run("openssl", "genrsa", "-out", str(pki / "sa.key"), "2048")
    run("openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def write_configs(net: Network, layout: Layout, sandbox_image: str) -> None:
    tokens = {name: secrets.token_hex(16) for name in cfg.IDENTITIES}
    (layout.state / "tokens.csv").write_text(cfg.build_token_file(tokens))
    server = f"https://{net.node_ip}:{net.apiserver_port}"
    for name, (user, _) in cfg.IDENTITIES.items():
        kubeconfig = cfg.build_kubeconfig(server, layout.pki / "ca.crt", tokens[name], user)
        path = layout.kubeconfig if name == "admin" else layout.component_kubeconfig(name)
        path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
        path.chmod(0o600)
    (layout.state / "containerd.toml").write_text(cfg.build_containerd_config(layout, sandbox_image))
    (layout.state / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
    (layout.state / "cni" / "net.d" / "10-dask-node.conflist").write_text(cfg.build_cni_conflist(net, layout))
    (layout.state / "kubelet.yaml").write_text(cfg.build_kubelet_config(net, layout))
    (layout.state / "kube-proxy.yaml").write_text(cfg.build_kube_proxy_config(net, layout))
    # Pods with dnsPolicy Default get this: the DNS stand-in, never the host's resolvers.
    (layout.state / "resolv.conf").write_text(f"nameserver {net.node_ip}\n")
    (layout.state / "dns").mkdir(exist_ok=True)


# --- up and down ---------------------------------------------------------------------------------------------


def default_layout() -> Layout:
    """State outside any checkout (a fresh clone reuses the images), binaries from scripts/kube-build.sh."""
    state = Path(os.environ.get("DASK_PLATFORM_NODE_STATE", "/var/lib/dask-platform-node"))
    run_dir = Path(os.environ.get("DASK_PLATFORM_NODE_RUN", "/run/dask-platform-node"))
    script = RepoTree.checkout().root / "scripts" / "kube-build.sh"
    proc = subprocess.run(["bash", str(script), "all"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"scripts/kube-build.sh all failed:\n{proc.stderr[-3000:]}")
    return Layout(state, run_dir, Path(proc.stdout.strip().splitlines()[-1]))


def _https_ok(url: str, ca: Path, token: str | None = None) -> bool:
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, context=context, timeout=3) as response:
        return response.status == 200


def _admin_token(layout: Layout) -> str:
    return yaml.safe_load(layout.kubeconfig.read_text())["users"][0]["user"]["token"]


def start_runtime(net: Network, layout: Layout, echo: Echo) -> None:
    """containerd with the node's CRI settings, and the pause image in it."""
    from testbed.node import images

    images.build_pause(layout, echo)
    start_process(layout, "containerd", ["containerd", "--config", str(layout.state / "containerd.toml")])
    wait_for("containerd", layout.containerd_socket.exists, 30, layout, "containerd")
    images.import_image(layout, "pause")


def start_control_plane(net: Network, layout: Layout) -> None:
    commands = cfg.control_plane_commands(net, layout)
    start_process(layout, "etcd", commands["etcd"])
    health = f"http://127.0.0.1:{net.etcd_port}/health"
    wait_for("etcd", lambda: b'"true"' in urllib.request.urlopen(health, timeout=3).read(), 30, layout, "etcd")
    start_process(layout, "kube-apiserver", commands["kube-apiserver"])
    readyz = f"https://{net.node_ip}:{net.apiserver_port}/readyz"
    wait_for(
        "kube-apiserver",
        lambda: _https_ok(readyz, layout.pki / "ca.crt", _admin_token(layout)),
        90,
        layout,
        "kube-apiserver",
    )
    for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
        start_process(layout, name, commands[name])


def start_dns(net: Network, layout: Layout) -> None:
    """The DNS stand-in: dnsmasq on the node address, fed by testbed.node.dns."""
    import sys

    from testbed.node import dns

    hosts = layout.state / "dns"
    (hosts / "services").write_text("")
    start_process(layout, "dnsmasq", dns.dnsmasq_command(net.node_ip, hosts, layout.run / "dnsmasq.own.pid"))
    updater = [sys.executable, "-m", "testbed.node.dns", str(layout.component_kubeconfig("dns")), str(hosts)]
    # The test bed is not installed (it is not part of the product): `-m` finds it from the checkout's root.
    start_process(layout, "dns-stand-in", updater, cwd=CHECKOUT)


def api_client(layout: Layout):
    from kubernetes import config

    return config.new_client_from_config(config_file=str(layout.kubeconfig))


def node_ready(layout: Layout) -> bool:
    from kubernetes import client

    core = client.CoreV1Api(api_client(layout))
    node = core.read_node(NODE_NAME)
    ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    return ready and bool(core.list_namespaced_service_account("default").items)


def up(net: Network, layout: Layout, echo: Echo, platform: tuple[RepoTree, str] | None = None) -> Path:
    """Start the node (tearing down a previous one first), with the platform image (tree, image name) built
    from docker/Dockerfile and imported when ``platform`` is given; returns the admin kubeconfig."""
    if layout.run.exists() or (layout.state / "sysctl.json").exists():
        echo("a node was started before (running, or stopped without `down`): tearing it down first")
        down(net, layout, echo)
    started = time.time()
    for folder in (layout.state, layout.run, layout.state / "images"):
        folder.mkdir(parents=True, exist_ok=True)
    for stale in ("etcd", "kubelet", "cni/ipam", "dns", "logs"):
        subprocess.run(["rm", "-rf", str(layout.state / stale)], check=True)
    protect_network(net)  # before anything can send to the node's ranges
    add_node_address(net)
    save_sysctls(layout)
    make_pki(net, layout)
    write_configs(net, layout, "localhost/dask-platform-node/pause:1")
    if platform:
        from testbed.node import images

        images.build_platform(*platform[:1], layout, platform[1], echo)
    start_runtime(net, layout, echo)
    if platform:
        images.import_image(layout, "platform")
    start_control_plane(net, layout)
    start_dns(net, layout)
    wait_for("the node", lambda: node_ready(layout), 120, layout, "kubelet")
    echo(f"node {NODE_NAME} Ready in {time.time() - started:.0f} s; KUBECONFIG={layout.kubeconfig}")
    return layout.kubeconfig


def delete_workloads(layout: Layout, echo: Echo, timeout: float = 180) -> None:
    """Delete every namespace but the system ones, and wait until their pods are gone (kube-proxy still runs, so
    a preStop hook that talks to a Service still reaches it)."""
    from kubernetes import client

    core = client.CoreV1Api(api_client(layout))
    keep = {"default", "kube-system", "kube-public", "kube-node-lease"}
    for ns in core.list_namespace().items:
        if ns.metadata.name not in keep:
            core.delete_namespace(ns.metadata.name)
    core.delete_collection_namespaced_pod("default")
    deadline = time.time() + timeout
    while time.time() < deadline:
        pods = core.list_pod_for_all_namespaces().items
        if not pods:
            return
        time.sleep(1)
    echo(f"{len(pods)} pods still there after {timeout:.0f} s; stopping anyway")


def remove_containers(layout: Layout) -> None:
    """Kill and delete every container containerd still runs for the node."""
    if not layout.containerd_socket.exists() or not running(layout, "containerd"):
        return
    ctr = ["ctr", "--address", str(layout.containerd_socket), "-n", "k8s.io"]
    for cid in run(*ctr, "containers", "ls", "-q", check=False).stdout.split():
        run(*ctr, "tasks", "kill", "-s", "SIGKILL", cid, check=False)
        time.sleep(0.2)
        run(*ctr, "tasks", "delete", "-f", cid, check=False)
        run(*ctr, "containers", "delete", cid, check=False)


def down(net: Network, layout: Layout, echo: Echo) -> int:
    """Stop everything the node started and undo its changes to the machine; safe to run twice. Returns how many
    packets the network guard dropped over the node's life (each would have left the machine): 0 expected."""
    if running(layout, "kube-apiserver") and running(layout, "kubelet"):
        with contextlib.suppress(Exception):
            delete_workloads(layout, echo)
    for name in ("dns-stand-in", "dnsmasq", "kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"):
        stop_process(layout, name)
    remove_containers(layout)
    for name in ("kube-apiserver", "etcd", "containerd"):
        stop_process(layout, name)
    unmount_under(layout.state / "kubelet", layout.state / "containerd", layout.run)
    remove_node_network(net)
    restore_sysctls(layout)
    subprocess.run(["rm", "-rf", str(layout.run), str(layout.state / "kubelet"), str(layout.state / "etcd")])
    drops = guard_counters(net)
    unprotect_network(net)  # last: until here the ranges stay unroutable
    echo("node down: processes stopped, mounts, links, netns, iptables chains, sysctls and routes restored")
    if drops:
        echo(f"warning: the network guard dropped {drops} packets that would have left this machine")
    return drops


def leftovers(net: Network, layout: Layout) -> list[str]:
    """What of the node is still on the machine (empty after a complete `down`)."""
    out = []
    for table in ("filter", "nat", "mangle"):
        saved = run("iptables-save", "-t", table, check=False).stdout
        out += [
            f"iptables {table}: {line}"
            for line in saved.splitlines()
            if any(mark in line for mark in ("KUBE-", "CNI-", net.guard_chain))
        ]
    routes = run("ip", "route", "show", "table", "all", check=False).stdout
    out += [f"route: {line}" for line in routes.splitlines() if any(c.split("/")[0] in line for c in net.guarded)]
    out += [f"address on lo: {net.node_ip}"] if net.node_ip in run("ip", "addr", "show", "lo").stdout else []
    out += [f"link: {net.bridge}"] if run("ip", "link", "show", net.bridge, check=False).returncode == 0 else []
    out += [f"netns: {n}" for n in run("ip", "netns", "list", check=False).stdout.split() if n.startswith("cni-")]
    mounts = Path("/proc/mounts").read_text()
    out += [f"mount: {m}" for m in mounts.split() if m.startswith((str(layout.state), str(layout.run)))]
    out += [
        f"process: {n}" for n in ("containerd", "etcd", "kube-apiserver", "kubelet", "kube-proxy") if running(layout, n)
    ]
    return out


def status(net: Network, layout: Layout) -> dict[str, object]:
    names = (
        "containerd",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "dnsmasq",
        "dns-stand-in",
    )
    return {
        "processes": {n: running(layout, n) for n in names},
        "guard_drops": guard_counters(net),
        "kubeconfig": str(layout.kubeconfig),
    }

"""The test node's DNS stand-in: Debian has no CoreDNS or kube-dns, so dnsmasq answers for cluster.local from a
hosts file that this loop rewrites from the Services every 2 seconds. Only A records of Service ClusterIPs (no SRV,
headless or pod records, up to 2 s late); names outside cluster.local are refused, never forwarded.

    python -m testbed.node.dns KUBECONFIG HOSTS_DIR     (started and stopped by `python -m testbed.node`)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from testbed.node.config import CLUSTER_DOMAIN


def hosts_lines(services: list[tuple[str, str, str | None]]) -> list[str]:
    """'<ClusterIP> <name>.<namespace>.svc.cluster.local' for every (name, namespace, ClusterIP) with an IP."""
    return sorted(
        f"{ip} {name}.{namespace}.svc.{CLUSTER_DOMAIN}" for name, namespace, ip in services if ip and ip != "None"
    )


def dnsmasq_command(listen: str, hosts_dir: Path, pid_file: Path) -> list[str]:
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--no-resolv",  # no upstream servers: nothing is forwarded off this machine
        "--no-hosts",
        f"--listen-address={listen}",
        "--bind-interfaces",
        f"--hostsdir={hosts_dir}",
        f"--local=/{CLUSTER_DOMAIN}/",
        f"--pid-file={pid_file}",
        "--user=root",
        "--log-facility=-",
    ]


def main(kubeconfig: str, hosts_dir: str) -> None:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    target = Path(hosts_dir) / "services"
    last = None
    while True:
        try:
            items = api.list_service_for_all_namespaces().items
            services = [(s.metadata.name, s.metadata.namespace, s.spec.cluster_ip) for s in items]
            text = "\n".join(hosts_lines(services)) + "\n"
            if text != last:
                tmp = target.with_suffix(".tmp")
                tmp.write_text(text)
                os.replace(tmp, target)
                last = text
        except Exception as exc:  # the apiserver restarting: try again
            print(f"dns stand-in: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        time.sleep(2)


if __name__ == "__main__":
    main(*sys.argv[1:3])

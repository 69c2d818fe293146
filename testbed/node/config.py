"""What the single-node test cluster is made of, as data: addresses, folders, and each component's configuration
and command line. Pure functions; ``testbed.node.lifecycle`` writes and starts them.

Every address is on this machine: the node's own address sits on the loopback link, pods live in network namespaces
on a local bridge, and Service IPs are virtual (kube-proxy's rules). While the node exists, the service and pod
ranges also carry `unreachable` routes and a guard chain drops and counts anything of theirs that would leave
through another interface, so a missing kube-proxy rule can never send a packet off the machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NODE_NAME = "dask-node"
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Network:
    """The node's addresses (all private, all on this machine)."""

    # A second address on the loopback link (these machines have no dummy links): the apiserver, kubelet and
    # the DNS stand-in listen here, and pods reach it through the bridge like any address of the host.
    node_ip: str = "10.250.0.1"
    bridge: str = "dpcni0"
    pod_cidr: str = "10.244.0.0/24"
    service_cidr: str = "10.96.0.0/24"
    # Made unroutable beyond this machine for the node's whole life (more specific local routes still win).
    guarded: tuple[str, ...] = ("10.96.0.0/16", "10.244.0.0/16", "10.250.0.0/24")
    guard_chain: str = "DPNODE-GUARD"
    etcd_port: int = 23790
    etcd_peer_port: int = 23800
    apiserver_port: int = 6443

    @property
    def service_ip(self) -> str:
        """The in-cluster `kubernetes` Service (the first address of the service range)."""
        base, _ = self.service_cidr.split("/")
        return base.rsplit(".", 1)[0] + ".1"


@dataclass(frozen=True)
class Layout:
    """Where the node keeps its state (outside any checkout), and its binaries."""

    state: Path  # persistent: PKI, etcd data, containerd's images, kubelet's root, logs
    run: Path  # sockets and pid files
    bin: Path  # kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, etcd

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd.sock"

    def component_kubeconfig(self, component: str) -> Path:
        return self.state / f"{component}.kubeconfig"


# Static tokens of the control plane's own clients (the node is rebuilt from nothing at every start).
IDENTITIES = {
    "admin": ("admin", "system:masters"),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
    "controller-manager": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
    "kube-proxy": ("system:kube-proxy", ""),
    "dns": ("dask-platform:dns-stand-in", "system:masters"),
}


def build_token_file(tokens: dict[str, str]) -> str:
    """kube-apiserver's --token-auth-file: token,user,uid,"groups"."""
    lines = []
    for name, (user, group) in IDENTITIES.items():
        lines.append(f'{tokens[name]},{user},{name},"{group}"' if group else f"{tokens[name]},{user},{name}")
    return "\n".join(lines) + "\n"


def build_kubeconfig(server: str, ca: Path, token: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NODE_NAME, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": NODE_NAME, "context": {"cluster": NODE_NAME, "user": user, "namespace": "default"}}],
        "current-context": NODE_NAME,
    }


def build_containerd_config(layout: Layout, sandbox_image: str) -> str:
    """containerd's CRI settings that this kind of machine needs (facts from a trial run, shared/real-node.md):
    restrict_oom_score_adj (no CAP_SYS_RESOURCE here), cgroupfs, overlayfs, CNI plugins in /usr/lib/cni, and a
    sandbox image that exists locally (there is no registry)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{layout.state / "containerd"}"
state = "{layout.run / "containerd"}"

[grpc]
  address = "{layout.containerd_socket}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{layout.state / "cni" / "net.d"}"
"""


def build_cni_conflist(net: Network, layout: Layout) -> str:
    """A bridge with host-local addresses; no masquerading (pods have no business beyond this machine)."""
    doc = {
        "cniVersion": "0.4.0",
        "name": "dask-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": net.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def build_kubelet_config(net: Network, layout: Layout) -> str:
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": net.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [net.node_ip],  # the DNS stand-in (dnsmasq), see lifecycle.start_dns
        "resolvConf": str(layout.state / "resolv.conf"),
        "tlsCertFile": str(layout.pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(layout.pki / "kubelet.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(layout.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "serializeImagePulls": False,
        # Read a pod's ConfigMaps and Secrets with a GET when it starts: the watch-based cache of 1.20 times out on
        # a node that has just come up ("failed to sync configmap cache"), a FailedMount that only costs a retry.
        "configMapAndSecretChangeDetectionStrategy": "Get",
        # A test node on a shared disk: never evict the test's pods for disk pressure.
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "makeIPTablesUtilChains": True,
        "maxPods": 40,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def build_kube_proxy_config(net: Network, layout: Layout) -> str:
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(layout.component_kubeconfig("kube-proxy"))},
        "mode": "iptables",
        "clusterCIDR": net.pod_cidr,
        "hostnameOverride": NODE_NAME,
        "bindAddress": net.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{net.node_ip}/32"],
        # Leave the machine's conntrack settings alone (0: do not change).
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def etcd_command(net: Network, layout: Layout) -> list[str]:
    client_url = f"http://127.0.0.1:{net.etcd_port}"
    peer_url = f"http://127.0.0.1:{net.etcd_peer_port}"
    return [
        str(layout.bin / "etcd"),
        f"--data-dir={layout.state / 'etcd'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}",
    ]


def apiserver_command(net: Network, layout: Layout) -> list[str]:
    pki = layout.pki
    return [
        str(layout.bin / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{net.etcd_port}",
        f"--bind-address={net.node_ip}",
        f"--advertise-address={net.node_ip}",
        f"--secure-port={net.apiserver_port}",
        "--insecure-port=0",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--token-auth-file={layout.state / 'tokens.csv'}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-cluster-ip-range={net.service_cidr}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def control_plane_commands(net: Network, layout: Layout) -> dict[str, list[str]]:
    """The command line of each process, in start order."""
    pki, b = layout.pki, layout.bin
    return {
        "etcd": etcd_command(net, layout),
        "kube-apiserver": apiserver_command(net, layout),
        "kube-controller-manager": [
            str(b / "kube-controller-manager"),
            f"--kubeconfig={layout.component_kubeconfig('controller-manager')}",
            "--port=0",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-cluster-ip-range={net.service_cidr}",
        ],
        "kube-scheduler": [
            str(b / "kube-scheduler"),
            f"--kubeconfig={layout.component_kubeconfig('scheduler')}",
            "--port=0",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ],
        "kubelet": [
            str(b / "kubelet"),
            f"--config={layout.state / 'kubelet.yaml'}",
            f"--kubeconfig={layout.component_kubeconfig('kubelet')}",
            "--container-runtime=remote",
            f"--container-runtime-endpoint=unix://{layout.containerd_socket}",
            f"--root-dir={layout.state / 'kubelet'}",  # absolute: a relative one exits ("cannot find mount point")
            f"--cert-dir={layout.pki}",
            f"--node-ip={net.node_ip}",
            f"--hostname-override={NODE_NAME}",
        ],
        "kube-proxy": [str(b / "kube-proxy"), f"--config={layout.state / 'kube-proxy.yaml'}"],
    }

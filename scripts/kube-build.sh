#!/usr/bin/env bash
# Build the Kubernetes binaries this project runs without a cloud, once per machine, from Debian's packages only:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy  compiled from bookworm's
#       "kubernetes" source package (it vendors every Go dependency) with bookworm's Go;
#   etcd                                                                        unpacked from bookworm's etcd-server.
# They are cached outside any checkout, keyed by the Debian versions, so a fresh clone (CI) on the same machine
# reuses them: $DASK_PLATFORM_KUBE_CACHE, default /var/cache/dask-platform/kubernetes/k8s-<ver>-etcd-<ver>/.
#
#   scripts/kube-build.sh apiserver   kube-apiserver + etcd (what the API-server tests need; ~5 min the first time)
#   scripts/kube-build.sh all         all five + etcd (the single-node cluster; ~15 min the first time)
#
# Prints the folder on stdout. Needs root on first use (apt-get install golang-go rsync make).
# Debian's mirror is the one this machine's apt is configured with (never a host name written here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${DASK_PLATFORM_KUBE_CACHE:-/var/cache/dask-platform/kubernetes}"
WHAT="${1:-all}"
case "$WHAT" in
  apiserver) BINARIES=(kube-apiserver) ;;
  all) BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy) ;;
  *) echo "usage: $0 apiserver|all" >&2; exit 2 ;;
esac

log() { printf '[kube-build] %s\n' "$*" >&2; }

complete() {  # complete FOLDER: every wanted binary and etcd are there
  local bin
  for bin in "${BINARIES[@]}" etcd; do [ -x "$1/$bin" ] || return 1; done
}

for cached in "$CACHE_ROOT"/k8s-*; do
  if complete "$cached"; then echo "$cached"; exit 0; fi
done

work="$(mktemp -d "${TMPDIR:-/tmp}/kube-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/sources" "$work/out"

# A private apt configuration with bookworm's deb-src, from the Debian entry of this machine's own apt sources,
# so /etc/apt stays as it is.
bash "$ROOT/scripts/apt-sources.sh" bookworm > "$work/apt/sources/bookworm-src.sources"
APT_OPTS=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/apt/sources"
          -o "Dir::State::Lists=$work/apt/lists" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
log "reading Debian's package lists (private apt config)"
apt-get "${APT_OPTS[@]}" update -qq

K8S_VERSION="$(apt-cache "${APT_OPTS[@]}" showsrc kubernetes | awk '/^Version:/ {print $2; exit}')"
ETCD_VERSION="$(apt-cache "${APT_OPTS[@]}" policy etcd-server | awk '/Candidate:/ {print $2; exit}')"
[ -n "$K8S_VERSION" ] && [ -n "$ETCD_VERSION" ] || { log "Debian has no kubernetes source or etcd-server"; exit 1; }
case "$K8S_VERSION" in 1.20.*) ;; *) log "unexpected kubernetes source version $K8S_VERSION"; exit 1;; esac
CACHE="$CACHE_ROOT/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"
if [ -d "$CACHE" ]; then cp -a "$CACHE/." "$work/out/"; fi  # keep what an earlier, smaller build made

missing=()
for bin in "${BINARIES[@]}"; do [ -x "$work/out/$bin" ] || missing+=("$bin"); done
if [ "${#missing[@]}" -gt 0 ]; then
  need=()
  for tool in go rsync make; do command -v "$tool" >/dev/null || need+=("$tool"); done
  if [ "${#need[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { log "need root to apt-get install golang-go rsync make"; exit 2; }
    log "installing golang-go rsync make"
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq golang-go rsync make >/dev/null
  fi
  cd "$work"
  log "fetching the kubernetes source package ($K8S_VERSION)"
  apt-get "${APT_OPTS[@]}" source -qq --download-only "kubernetes=$K8S_VERSION" >/dev/null
  dpkg-source -x --no-check kubernetes_*.dsc src >/dev/null
  cd src
  mkdir -p .go/src/k8s.io
  ln -sfn ../../.. .go/src/k8s.io/kubernetes
  targets=()
  for bin in "${missing[@]}"; do targets+=("cmd/$bin"); done
  log "building ${missing[*]} (minutes on 2 cores)"
  GOPATH="$PWD/.go" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 GO111MODULE=off GOCACHE="$work/gocache" \
    make WHAT="${targets[*]}" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
  for bin in "${missing[@]}"; do cp "_output/bin/$bin" "$work/out/"; done
fi

if [ ! -x "$work/out/etcd" ]; then
  cd "$work"
  log "fetching etcd-server ($ETCD_VERSION)"
  apt-get "${APT_OPTS[@]}" download -qq "etcd-server=$ETCD_VERSION" >/dev/null
  dpkg -x etcd-server_*.deb etcd-root
  cp etcd-root/usr/bin/etcd "$work/out/"
fi

mkdir -p "$CACHE_ROOT"
rm -rf "$CACHE.tmp" && mv "$work/out" "$CACHE.tmp"
rm -rf "$CACHE" && mv "$CACHE.tmp" "$CACHE"
log "binaries in $CACHE"
echo "$CACHE"

#!/usr/bin/env bash
# Provide a real kube-apiserver and etcd for the tests, without Docker or downloads from outside Debian:
#   - $KUBEBUILDER_ASSETS (the envtest convention) when it holds kube-apiserver and etcd: printed as is;
#   - otherwise .cache/envtest/<version>/, built once: kube-apiserver compiled from Debian bookworm's
#     "kubernetes" source package (which vendors its Go dependencies) with bookworm's Go, and etcd taken from
#     bookworm's etcd-server package (unpacked, never started as a service).
# Prints the assets folder on stdout. Needs root for apt-get install (golang-go, rsync, make) on first use.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${DASK_PLATFORM_ENVTEST_CACHE:-$ROOT/.cache/envtest}"

log() { printf '[envtest] %s\n' "$*" >&2; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
# A build is kept per Debian version pair: k8s-<kubernetes source version>-etcd-<etcd-server version>.
for cached in "$CACHE_ROOT"/k8s-*; do
  if [ -x "$cached/kube-apiserver" ] && [ -x "$cached/etcd" ]; then echo "$cached"; exit 0; fi
done

work="$(mktemp -d "${TMPDIR:-/tmp}/envtest-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/sources" "$work/out"

# A private apt configuration with bookworm's deb-src, so the machine's /etc/apt stays as it is.
cat > "$work/apt/sources/bookworm-src.sources" <<'EOF'
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
APT_OPTS=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/apt/sources"
          -o "Dir::State::Lists=$work/apt/lists" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
log "reading Debian's package lists (private apt config)"
apt-get "${APT_OPTS[@]}" update -qq

K8S_SOURCE_VERSION="$(apt-cache "${APT_OPTS[@]}" showsrc kubernetes | awk '/^Version:/ {print $2; exit}')"
ETCD_VERSION="$(apt-cache "${APT_OPTS[@]}" policy etcd-server | awk '/Candidate:/ {print $2; exit}')"
[ -n "$K8S_SOURCE_VERSION" ] && [ -n "$ETCD_VERSION" ] || { log "Debian has no kubernetes source or etcd-server"; exit 1; }
case "$K8S_SOURCE_VERSION" in 1.20.*) ;; *) log "unexpected kubernetes source version $K8S_SOURCE_VERSION"; exit 1;; esac
CACHE="$CACHE_ROOT/k8s-${K8S_SOURCE_VERSION}-etcd-${ETCD_VERSION}"

need=()
for tool in go rsync make; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { log "need root to apt-get install golang-go rsync make"; exit 2; }
  log "installing golang-go rsync make"
  DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq golang-go rsync make >/dev/null
fi

cd "$work"
log "fetching the kubernetes source package ($K8S_SOURCE_VERSION)"
apt-get "${APT_OPTS[@]}" source -qq --download-only "kubernetes=$K8S_SOURCE_VERSION" >/dev/null
dpkg-source -x --no-check kubernetes_*.dsc src >/dev/null
cd src
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
log "building kube-apiserver (a few minutes on 2 cores)"
GOPATH="$PWD/.go" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 GO111MODULE=off \
  make WHAT=cmd/kube-apiserver >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
cp _output/bin/kube-apiserver "$work/out/"

cd "$work"
log "fetching etcd-server ($ETCD_VERSION)"
apt-get "${APT_OPTS[@]}" download -qq "etcd-server=$ETCD_VERSION" >/dev/null
dpkg -x etcd-server_*.deb etcd-root
cp etcd-root/usr/bin/etcd "$work/out/"

mkdir -p "$(dirname "$CACHE")"
rm -rf "$CACHE.tmp" && mv "$work/out" "$CACHE.tmp" && mv "$CACHE.tmp" "$CACHE"
log "assets in $CACHE"
echo "$CACHE"

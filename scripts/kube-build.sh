#!/usr/bin/env bash
# Build the Kubernetes binaries this project runs without a cloud, once per machine, from Debian's packages only:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy  compiled from bookworm's
#       "kubernetes" source package (it vendors every Go dependency) with bookworm's Go;
#   etcd                                                                        unpacked from bookworm's etcd-server.
# They are cached outside any checkout, keyed by the Debian versions of every input, so a fresh clone (CI) on the
# same machine reuses them: $DASK_PLATFORM_KUBE_CACHE, default
# /var/cache/dask-platform/kubernetes/k8s-<ver>-etcd-<ver>-reflect2-<ver>-jsoniter-<ver>/.
#
# Custom resources: the source vendors github.com/modern-go/reflect2 v1.0.1 and github.com/json-iterator/go v1.1.10
# (its vendor/modules.txt), whose map iteration reaches into Go runtime internals that changed in Go 1.18
# (modern-go/reflect2#26); built with bookworm's Go 1.19, the apiserver then crashes encoding any custom resource.
# Upstream's fix is reflect2 v1.0.2 with json-iterator v1.1.12 (kubernetes/kubernetes#104949, Kubernetes 1.23).
# Bookworm packages exactly those (golang-github-modern-go-reflect2-dev 1.0.2, golang-github-json-iterator-go-dev
# 1.1.12): their Go sources replace the vendored copies before the build. The build runs in GOPATH mode
# (hack/lib/init.sh exports GO111MODULE=off), where vendor/modules.txt is not read, so it is left as shipped
# (changing it without go.mod would make a module-mode build refuse the tree as inconsistently vendored).
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

# Without asking apt: a complete folder whose name records the vendored-JSON fix. Folders of older builds
# (k8s-<ver>-etcd-<ver>, without the fix) are never reused; they are left alone, not deleted.
for cached in "$CACHE_ROOT"/k8s-*-etcd-*-reflect2-*-jsoniter-*; do
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
candidate() { apt-cache "${APT_OPTS[@]}" policy "$1" | awk '/Candidate:/ {print $2; exit}'; }
ETCD_VERSION="$(candidate etcd-server)"
REFLECT2_VERSION="$(candidate golang-github-modern-go-reflect2-dev)"
JSONITER_VERSION="$(candidate golang-github-json-iterator-go-dev)"
[ -n "$K8S_VERSION" ] && [ -n "$ETCD_VERSION" ] || { log "Debian has no kubernetes source or etcd-server"; exit 1; }
case "$K8S_VERSION" in 1.20.*) ;; *) log "unexpected kubernetes source version $K8S_VERSION"; exit 1;; esac
# The fix needs at least reflect2 1.0.2 and json-iterator 1.1.12 (the versions of kubernetes/kubernetes#104949).
case "$REFLECT2_VERSION" in 1.0.[2-9]*|1.[1-9]*) ;; *) log "need reflect2 >= 1.0.2, Debian has '$REFLECT2_VERSION'"; exit 1;; esac
case "$JSONITER_VERSION" in 1.1.1[2-9]*|1.[2-9]*) ;; *) log "need json-iterator >= 1.1.12, Debian has '$JSONITER_VERSION'"; exit 1;; esac
CACHE="$CACHE_ROOT/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-reflect2-${REFLECT2_VERSION}-jsoniter-${JSONITER_VERSION}"
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
  log "replacing vendored reflect2 and json-iterator with Debian's $REFLECT2_VERSION and $JSONITER_VERSION"
  apt-get "${APT_OPTS[@]}" download -qq "golang-github-modern-go-reflect2-dev=$REFLECT2_VERSION" \
    "golang-github-json-iterator-go-dev=$JSONITER_VERSION" >/dev/null
  for deb in golang-github-modern-go-reflect2-dev_*.deb golang-github-json-iterator-go-dev_*.deb; do
    dpkg -x "$deb" gocode
  done
  for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
    vendored="src/vendor/$pkg"
    [ -d "$vendored" ] && [ -d "gocode/usr/share/gocode/src/$pkg" ] || { log "no $pkg to replace"; exit 1; }
    log "  vendor/$pkg: $(awk -v p="$pkg" '$1 == "#" && $2 == p && $3 ~ /^v/ {print $3; exit}' src/vendor/modules.txt)"
    # The package's own files only: the old version's files go (reflect2 1.0.2 renamed its go1.x files), its test
    # packages (json-iterator's *_tests folders, extra/) are not vendored and not copied.
    find "$vendored" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
    find "gocode/usr/share/gocode/src/$pkg" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' -o -name go.mod \) \
      ! -name '*_test.go' -exec cp {} "$vendored/" \;
  done
  [ -f src/vendor/github.com/modern-go/reflect2/go_above_118.go ] || { log "reflect2 without Go 1.18 support"; exit 1; }
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

printf 'kubernetes source %s\netcd-server %s\nvendor/github.com/modern-go/reflect2 from golang-github-modern-go-reflect2-dev %s\nvendor/github.com/json-iterator/go from golang-github-json-iterator-go-dev %s\n' \
  "$K8S_VERSION" "$ETCD_VERSION" "$REFLECT2_VERSION" "$JSONITER_VERSION" > "$work/out/INPUTS"
mkdir -p "$CACHE_ROOT"
rm -rf "$CACHE.tmp" && mv "$work/out" "$CACHE.tmp"
rm -rf "$CACHE" && mv "$CACHE.tmp" "$CACHE"
log "binaries in $CACHE"
echo "$CACHE"

#!/usr/bin/env bash
# A real kube-apiserver and etcd for the API-server tests, without Docker or downloads from outside Debian:
#   - $KUBEBUILDER_ASSETS (the envtest convention) when it holds kube-apiserver and etcd: printed as is;
#   - otherwise the machine-wide cache of scripts/kube-build.sh (built once from Debian's packages).
# Prints the folder holding both on stdout.
set -euo pipefail
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
exec bash "$(dirname "${BASH_SOURCE[0]}")/kube-build.sh" apiserver

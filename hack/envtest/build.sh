#!/usr/bin/env bash
# Builds the test control plane (etcd and kube-apiserver) from the Go module
# proxy into $1 (default bin/k8s/<version>), once: an existing build is kept.
#
# Both build with the operator's settings (Makefile `binaries`): no
# -trimpath, and GOEXPERIMENT, GOFLAGS and CGO_ENABLED as the Makefile
# exports them. With those, and the module versions
# hack/check-shared-modules.sh keeps aligned, the standard library and the
# roughly 850 Kubernetes and other packages that kube-apiserver and etcd
# share with the operator compile once for all of them. The two build one
# after the other: go build already keeps every core busy, and two builds
# side by side would compile the shared packages twice.
set -euo pipefail
export GOEXPERIMENT=jsonv2
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=1.37.2
etcd_version=3.6.16
out=${1:-$here/../../bin/k8s/$k8s_version-etcd$etcd_version}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ ! -x "$out/kube-apiserver" ]; then
	echo "building kube-apiserver v$k8s_version into $out (several minutes, once)"
	minor=${k8s_version#*.}; minor=${minor%%.*}
	ld=""
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $pkg.gitVersion=v$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	(cd "$here/kube-apiserver" && go build -tags selinux -ldflags "-s -w $ld" -o "$out/kube-apiserver.tmp" .)
	mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
fi

if [ ! -x "$out/etcd" ]; then
	echo "building etcd v$etcd_version into $out"
	(cd "$here/etcd" && go build -ldflags "-s -w" -o "$out/etcd.tmp" .)
	mv "$out/etcd.tmp" "$out/etcd"
fi
echo "$out"

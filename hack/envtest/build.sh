#!/usr/bin/env bash
# Builds the test control plane (etcd and kube-apiserver) from the Go module
# proxy into $1 (default bin/k8s/<version>), once: an existing build is kept.
set -euo pipefail
# The control plane needs no Go experiments; building without them keeps
# the binaries identical to a plain build.
unset GOEXPERIMENT
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=1.37.2
etcd_version=3.6.16
out=${1:-$here/../../bin/k8s/$k8s_version-etcd$etcd_version}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The two build at the same time: each one's single-threaded link overlaps
# the other's compiling.
pids=()
if [ ! -x "$out/etcd" ]; then
	echo "building etcd v$etcd_version into $out"
	(cd "$here/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" . && mv "$out/etcd.tmp" "$out/etcd") &
	pids+=($!)
fi

if [ ! -x "$out/kube-apiserver" ]; then
	echo "building kube-apiserver v$k8s_version into $out (several minutes, once)"
	minor=${k8s_version#*.}; minor=${minor%%.*}
	ld=""
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $pkg.gitVersion=v$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	(cd "$here/kube-apiserver" && CGO_ENABLED=0 go build -trimpath -tags selinux,notest,grpcnotrace \
		-ldflags "-s -w $ld" -o "$out/kube-apiserver.tmp" . && mv "$out/kube-apiserver.tmp" "$out/kube-apiserver") &
	pids+=($!)
fi
for pid in ${pids[@]+"${pids[@]}"}; do
	wait "$pid"
done
echo "$out"

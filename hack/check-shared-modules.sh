#!/usr/bin/env bash
# Fails when a module whose packages two of the locally built binaries (the
# operator and playground, kube-apiserver, etcd) both compile resolves to
# different versions in their modules. Aligned, and built with the same
# settings, those packages compile once for all (see hack/envtest/build.sh);
# one differing version recompiles everything that imports it, and a
# newcomer's first `make run` takes minutes longer. etcd's own modules
# (go.etcd.io/...) are the exception: the etcd server pins its versions of
# its API and storage, and kube-apiserver's client and Trivy's DB others.
# It lists packages with the go command's settings of the environment, as
# the Makefile exports them (GOFLAGS with the build tags).
set -euo pipefail
export GOEXPERIMENT=jsonv2
cd "$(dirname "$0")/.."
format='{{if not .Standard}}{{with .Module}}{{.Path}} {{with .Replace}}{{.Version}}{{else}}{{.Version}}{{end}}{{end}}{{end}}'
modules() { # dir, then go list arguments
	(cd "$1" && shift && go list -deps -f "$format" "$@" | grep -v '^go\.etcd\.io/' | sort -u)
}
operator=$(modules . . ./hack/playground)
apiserver=$(modules hack/envtest/kube-apiserver -tags selinux .)
etcd=$(modules hack/envtest/etcd .)
compare() { # name, list, name, list
	awk -v a="$1" -v b="$3" 'NR == FNR { if (NF == 2) v[$1] = $2; next }
		NF == 2 && ($1 in v) && v[$1] != $2 { printf "  %s: %s %s, %s %s\n", $1, a, v[$1], b, $2 }' \
		<(echo "$2") <(echo "$4")
}
mismatch=$(compare operator "$operator" kube-apiserver "$apiserver"; compare operator "$operator" etcd "$etcd"; compare kube-apiserver "$apiserver" etcd "$etcd")
if [ -n "$mismatch" ]; then
	echo "modules that the local binaries share resolve to different versions:"
	echo "$mismatch"
	echo "align them: raise the lower side with go get (in ., hack/envtest/kube-apiserver or hack/envtest/etcd), then go mod tidy"
	exit 1
fi

#!/usr/bin/env bash
# Fails when a module whose packages both the operator and the test control
# plane's kube-apiserver build resolves to different versions in the two
# modules. Aligned, those packages compile once for both (see
# hack/envtest/build.sh); one differing version recompiles everything that
# imports it, and a newcomer's first `make run` takes minutes longer.
set -euo pipefail
export GOEXPERIMENT=jsonv2
cd "$(dirname "$0")/.."
format='{{if not .Standard}}{{with .Module}}{{.Path}} {{with .Replace}}{{.Version}}{{else}}{{.Version}}{{end}}{{end}}{{end}}'
operator=$(go list -deps -f "$format" . ./hack/playground | sort -u)
apiserver=$(cd hack/envtest/kube-apiserver && go list -deps -tags selinux -f "$format" . | sort -u)
mismatch=$(awk 'NR == FNR { if (NF == 2) op[$1] = $2; next }
	NF == 2 && ($1 in op) && op[$1] != $2 { printf "  %s: operator %s, kube-apiserver %s\n", $1, op[$1], $2 }' \
	<(echo "$operator") <(echo "$apiserver"))
if [ -n "$mismatch" ]; then
	echo "modules the operator and kube-apiserver share resolve to different versions:"
	echo "$mismatch"
	echo "align them: raise the lower side with go get (in . or hack/envtest/kube-apiserver), then go mod tidy"
	exit 1
fi

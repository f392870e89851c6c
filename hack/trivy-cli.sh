#!/usr/bin/env bash
# Builds the trivy CLI from the Go module proxy into $1 (default
# bin/trivy-<version>), once: an existing build is kept. The version is the
# one hack/trivy-cli/go.mod requires, which matches the library plinth links.
# Tests comparing plinth's findings with the CLI's run when PLINTH_TRIVY_CLI
# points at the result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1 == "require" && $2 == "github.com/aquasecurity/trivy" {print $3}' "$here/trivy-cli/go.mod")
out=${1:-$here/../bin/trivy-$version}
mkdir -p "$(dirname "$out")"
if [ ! -x "$out" ]; then
	echo "building trivy $version into $out (a few minutes, once)" >&2
	(cd "$here/trivy-cli" && GOEXPERIMENT=jsonv2 CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X github.com/aquasecurity/trivy/pkg/version/app.ver=${version#v}" \
		-o "$out.tmp" github.com/aquasecurity/trivy/cmd/trivy && mv "$out.tmp" "$out")
fi
echo "$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

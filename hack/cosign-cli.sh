#!/usr/bin/env bash
# Builds the cosign CLI from the Go module proxy into $1 (default
# bin/cosign-<version>), once: an existing build is kept. The version is the
# one hack/cosign-cli/go.mod requires, which matches the library plinth links.
# Tests checking that the cosign CLI verifies what plinth signs and attests
# run when PLINTH_COSIGN_CLI points at the result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1 == "require" && $2 == "github.com/sigstore/cosign/v2" {print $3}' "$here/cosign-cli/go.mod")
out=${1:-$here/../bin/cosign-$version}
mkdir -p "$(dirname "$out")"
if [ ! -x "$out" ]; then
	echo "building cosign $version into $out (a minute or more, once)" >&2
	(cd "$here/cosign-cli" && CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$version" \
		-o "$out.tmp" github.com/sigstore/cosign/v2/cmd/cosign && mv "$out.tmp" "$out")
fi
echo "$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

#!/usr/bin/env bash
# Builds Flux's image-reflector-controller from the Go module proxy into $1
# (default bin/image-reflector-controller-<version>), once: an existing build
# is kept. The version is the one hack/flux-irc/go.mod requires. The cold
# start benchmark (test/scale) runs plinth and this controller side by side
# when PLINTH_FLUX_IRC points at the result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
module=github.com/fluxcd/image-reflector-controller
version=$(awk -v m="$module" '($1 == "require" && $2 == m) {print $3} ($1 == m) {print $2}' "$here/flux-irc/go.mod")
if [ -z "$version" ]; then
	echo "hack/flux-irc/go.mod requires no $module" >&2
	exit 1
fi
out=${1:-$here/../bin/image-reflector-controller-$version}
mkdir -p "$(dirname "$out")"
if [ ! -x "$out" ]; then
	echo "building image-reflector-controller $version into $out (a few minutes, once)" >&2
	(cd "$here/flux-irc" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
		-o "$out.tmp" "$module" && mv "$out.tmp" "$out")
fi
echo "$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

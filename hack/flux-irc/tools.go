//go:build tools

// Package fluxirc pins Flux's image-reflector-controller, whose main package
// hack/flux-irc.sh builds; the import keeps `go mod tidy` from dropping it.
package fluxirc

import _ "github.com/fluxcd/image-reflector-controller"

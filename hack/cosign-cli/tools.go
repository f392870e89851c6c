//go:build tools

// Package cosigncli pins the cosign CLI version that hack/cosign-cli.sh
// builds, for checking that the cosign CLI verifies the signatures and
// attestations plinth writes.
package cosigncli

import _ "github.com/sigstore/cosign/v2/cmd/cosign"

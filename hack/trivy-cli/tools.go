//go:build tools

// Package trivycli pins the trivy CLI version that hack/trivy-cli.sh
// builds, for comparing plinth's in-process scans with the CLI's.
package trivycli

import _ "github.com/aquasecurity/trivy/cmd/trivy"

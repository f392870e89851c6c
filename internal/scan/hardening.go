package scan

// ImageFacts are the facts of one platform image that hardening checks
// read. They are
// recorded whatever the policy asks, so a policy change is judged again
// from the report without downloading anything.
type ImageFacts struct {
	// Platform is the platform of the image, as os/arch or os/arch/variant.
	Platform string `json:"platform"`
	// User is the user of the image config, as written there ("" when
	// unset).
	User string `json:"user,omitempty"`
	// CompressedSize is the sum of the compressed layer sizes of the
	// manifest, in bytes.
	CompressedSize int64 `json:"compressedSize"`
	// Annotations of the platform's manifest.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Setuid lists the files of the final filesystem with the setuid or
	// setgid bit, sorted by path. Files deleted by a later layer are gone.
	Setuid []SetuidFile `json:"setuid,omitempty"`
	// Executables lists the regular files of the final filesystem under
	// the usual bin directories (ExecutableDirs), sorted, as absolute
	// paths.
	Executables []string `json:"executables,omitempty"`
}

// SetuidFile is a file with the setuid or setgid bit.
type SetuidFile struct {
	// Path is the absolute path in the image.
	Path string `json:"path"`
	// Setuid is true when the setuid bit is set.
	Setuid bool `json:"setuid,omitempty"`
	// Setgid is true when the setgid bit is set.
	Setgid bool `json:"setgid,omitempty"`
}

// ExecutableDirs are the directories whose regular files are recorded in
// ImageFacts.Executables.
var ExecutableDirs = []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"}

// SecretFinding is a secret found in a layer. It names the rule and the
// file, never the secret itself.
type SecretFinding struct {
	// RuleID is the secret rule that matched, such as aws-access-key-id.
	RuleID string `json:"ruleID"`
	// Category of the rule, such as AWS.
	Category string `json:"category,omitempty"`
	// Severity of the rule: CRITICAL, HIGH, MEDIUM or LOW.
	Severity string `json:"severity,omitempty"`
	// Title describes the rule.
	Title string `json:"title,omitempty"`
	// Path is the absolute path of the file in the image.
	Path string `json:"path"`
	// Line is the first line of the match.
	Line int `json:"line,omitempty"`
	// Layer is the diffID of the layer holding the file.
	Layer string `json:"layer,omitempty"`
	// Platforms lists the platforms the secret was found on, sorted.
	Platforms []string `json:"platforms,omitempty"`
}

// SkippedFile is a file the secret scanner did not read because it is
// larger than the configured limit.
type SkippedFile struct {
	// Path is the absolute path of the file in the image.
	Path string `json:"path"`
	// Size is its size in bytes.
	Size int64 `json:"size"`
	// Layer is the diffID of the layer holding the file.
	Layer string `json:"layer,omitempty"`
}

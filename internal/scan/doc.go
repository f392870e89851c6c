// Package scan defines how plinth asks for a vulnerability scan: the
// Scanner interface, its Request and Report, and the errors callers act on.
//
// This package is plain Go and does not link Trivy, so reconcilers and
// their tests depend on it cheaply. The implementation, with Trivy as a
// library and the vulnerability DB manager, is in the trivy subpackage;
// only main wires it in.
package scan

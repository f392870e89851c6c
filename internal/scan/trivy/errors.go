package trivy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan"
)

// DBError says why the vulnerability DB could not be updated. The previous
// DB, if any, stays in use.
type DBError struct {
	// Reason is a stable, short description, such as "UnexpectedMediaType".
	Reason string
	Err    error
}

func (e *DBError) Error() string {
	if e.Err == nil {
		return "vulnerability database update failed: " + e.Reason
	}
	return "vulnerability database update failed: " + e.Reason + ": " + e.Err.Error()
}

func (e *DBError) Unwrap() error { return e.Err }

func dbErr(reason string, err error) error { return &DBError{Reason: reason, Err: err} }

func dbErrf(reason, format string, args ...any) error {
	return &DBError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// classifyRegistry turns a failure of the registry operation op into a
// *scan.Error. Failures plinth's registry transport already classified
// keep their kind and message.
func classifyRegistry(op string, err error) error {
	var se *scan.Error
	if errors.As(err, &se) {
		return err
	}
	var re *registry.Error
	if errors.As(err, &re) {
		return &scan.Error{Kind: scan.ErrorKind(re.Kind), Message: op + ": " + re.Error(), Err: err}
	}
	return scan.RegistryError(op, err)
}

// Stable is the error's message without URLs, addresses or credentials,
// for status and health reports: the reason, and the cause when it is a
// registry failure (classified) or a check of plinth's own.
func (e *DBError) Stable() string {
	msg := "vulnerability database update failed: " + e.Reason
	if d := stableDetail(e.Err); d != "" {
		msg += ": " + d
	}
	return msg
}

func stableDetail(err error) string {
	if err == nil {
		return ""
	}
	var (
		te *transport.Error
		ue *url.Error
		ne net.Error
		re *registry.Error
	)
	if errors.As(err, &te) || errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &re) {
		return classifyRegistry("reaching the DB repository", err).Error()
	}
	if s := err.Error(); !strings.Contains(s, "://") && !strings.Contains(s, "@") {
		return s
	}
	return ""
}

// stableError is the stable message of any DB failure.
func stableError(err error) string {
	if err == nil {
		return ""
	}
	var de *DBError
	if errors.As(err, &de) {
		return de.Stable()
	}
	return "vulnerability database update failed"
}

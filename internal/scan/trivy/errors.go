package trivy

import "fmt"

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

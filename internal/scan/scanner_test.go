package scan

import (
	"errors"
	"fmt"
	"testing"
)

func TestLimitErrorMatchesSentinel(t *testing.T) {
	var err error = fmt.Errorf("scanning: %w", &LimitError{Limit: LimitLayerCount, Platform: "linux/amd64", Value: 200, Max: 128})
	if !errors.Is(err, ErrLayerLimitExceeded) {
		t.Errorf("errors.Is(%v, ErrLayerLimitExceeded) = false", err)
	}
	var le *LimitError
	if !errors.As(err, &le) || le.Value != 200 {
		t.Errorf("errors.As: %+v", le)
	}
	if errors.Is(err, ErrDBUnavailable) {
		t.Error("a limit error matches ErrDBUnavailable")
	}
}

func TestFindingFixable(t *testing.T) {
	if (Finding{FixedVersion: "1.2.5-r1"}).Fixable() != true || (Finding{}).Fixable() != false {
		t.Error("Fixable() is wrong")
	}
}

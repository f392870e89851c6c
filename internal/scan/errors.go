package scan

import (
	"errors"
	"fmt"
)

// ErrDBUnavailable is returned by Scan while no vulnerability DB is loaded.
var ErrDBUnavailable = errors.New("vulnerability database is not available")

// ErrNoMatchingPlatform is returned when an index has no image for any of
// the requested platforms. Retrying does not help.
var ErrNoMatchingPlatform = errors.New("image has no manifest for the requested platforms")

// ErrLayerLimitExceeded matches (with errors.Is) every *LimitError.
var ErrLayerLimitExceeded = errors.New("image exceeds scan limits")

// Limit names the limit an image broke.
type Limit string

// Limits an image can break. All but LimitUncompressedSize are checked
// from manifests before any layer is downloaded; that one while a layer is
// inflated for analysis.
const (
	LimitLayerCount       Limit = "LayerCount"
	LimitLayerSize        Limit = "LayerSize"
	LimitTotalSize        Limit = "TotalSize"
	LimitUncompressedSize Limit = "UncompressedSize"
)

// LimitError says an image is too large to scan under the configured
// limits. Retrying does not help: the user must change the image or the
// limits.
type LimitError struct {
	// Limit is the limit that was exceeded.
	Limit Limit
	// Platform is the platform whose manifest broke the limit.
	Platform string
	// Value is the observed value: a count or a size in bytes.
	Value int64
	// Max is the configured limit.
	Max int64
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case LimitLayerCount:
		return fmt.Sprintf("image for %s has %d layers, more than the limit of %d", e.Platform, e.Value, e.Max)
	case LimitLayerSize:
		return fmt.Sprintf("image for %s has a layer of %d bytes, more than the limit of %d", e.Platform, e.Value, e.Max)
	case LimitUncompressedSize:
		return fmt.Sprintf("image for %s has a layer that inflates to more than %d bytes", e.Platform, e.Max)
	default:
		return fmt.Sprintf("image for %s has %d bytes of layers, more than the limit of %d", e.Platform, e.Value, e.Max)
	}
}

// Is makes errors.Is(err, ErrLayerLimitExceeded) true.
func (e *LimitError) Is(target error) bool { return target == ErrLayerLimitExceeded }

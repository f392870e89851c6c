package controllers

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	"github.com/plinth-dev/plinth/internal/metrics"
)

// Reasons of the vulnerability DB's events.
const (
	// VulnDBUpdateFailedReason: an update of the DB failed after the last
	// one succeeded; the loaded DB stays in use.
	VulnDBUpdateFailedReason = "VulnDBUpdateFailed"
	// VulnDBUpdateRecoveredReason: an update succeeded after failures.
	VulnDBUpdateRecoveredReason = "VulnDBUpdateRecovered"
)

// VulnDBHealth makes the vulnerability DB's updates visible without
// reading logs: every attempt is counted in metrics, and a warning Event is
// raised on the object Regarding (the operator's Pod) when updates start
// failing, and a normal one when they recover. Events come on transitions
// only, never once per failed attempt.
type VulnDBHealth struct {
	Recorder  events.EventRecorder
	Regarding runtime.Object
	Metrics   *metrics.Metrics
	// Describe turns an update error into a stable message without URLs or
	// credentials.
	Describe func(error) string

	mu      sync.Mutex
	failing bool
}

// Observe records one update attempt that ended at now; wire it to the DB
// manager's OnUpdate.
func (h *VulnDBHealth) Observe(err error, now time.Time) {
	h.Metrics.ObserveDBUpdate(err, now)
	h.mu.Lock()
	was := h.failing
	h.failing = err != nil
	h.mu.Unlock()
	if h.Recorder == nil || h.Regarding == nil || was == (err != nil) {
		return
	}
	if err != nil {
		msg := "error"
		if h.Describe != nil {
			msg = h.Describe(err)
		}
		h.Recorder.Eventf(h.Regarding, nil, corev1.EventTypeWarning, VulnDBUpdateFailedReason, "UpdateVulnDB",
			"Cannot update the vulnerability DB, the loaded one stays in use: %s", msg)
		return
	}
	h.Recorder.Eventf(h.Regarding, nil, corev1.EventTypeNormal, VulnDBUpdateRecoveredReason, "UpdateVulnDB",
		"The vulnerability DB updates again")
}

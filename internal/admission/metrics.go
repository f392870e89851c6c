package admission

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the webhook's decisions and times its answers.
type Metrics struct {
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
}

// NewMetrics registers the webhook's metrics with reg. Every series of
// plinth_admission_decisions_total starts at zero, so that dashboards and
// alerts see it before the first request.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plinth_admission_decisions_total",
			Help: "Admission requests checked, by the namespace's mode, the worst base class among the request's images (approved, superseded, unapproved, unknown) and the decision (allow, warn, deny).",
		}, []string{"mode", "class", "decision"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "plinth_admission_duration_seconds",
			Help:    "Time the webhook took to answer a checked request, by the namespace's mode.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"mode"}),
	}
	for _, mode := range Modes {
		for _, c := range classes {
			for _, d := range decisions {
				m.decisions.WithLabelValues(string(mode), c, d)
			}
		}
		m.duration.WithLabelValues(string(mode))
	}
	reg.MustRegister(m.decisions, m.duration)
	return m
}

// observe counts one decision.
func (m *Metrics) observe(mode Mode, d decision, took time.Duration) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(string(mode), d.Class, d.Decision).Inc()
	m.duration.WithLabelValues(string(mode)).Observe(took.Seconds())
}

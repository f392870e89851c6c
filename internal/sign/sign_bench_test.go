package sign

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPublish prints the cost of publishing to a loopback registry:
// "changed" signs a new digest and attaches its three attestations,
// "unchanged" re-publishes the same input (the steady state of a
// re-judge that changes nothing). pushes/op counts PUT, POST and PATCH
// requests, requests/op all requests.
func BenchmarkPublish(b *testing.B) {
	key := testKey(b)
	p := testPublication(judged.Add(24 * time.Hour))

	b.Run("changed", func(b *testing.B) {
		e := newPublishEnv(b)
		var s Signer
		b.StopTimer()
		for i := 0; i < b.N; i++ {
			image := e.push("base/bench", "changed-"+strconv.Itoa(i))
			e.reg.ResetCounts()
			w := e.writes.Load()
			b.StartTimer()
			got, err := s.Publish(context.Background(), image, key, p, e.registry())
			b.StopTimer()
			if err != nil || !got.Changed {
				b.Fatalf("publish: %+v, %v", got, err)
			}
			b.ReportMetric(float64(e.writes.Load()-w), "pushes/op")
			b.ReportMetric(float64(e.reg.Requests()), "requests/op")
		}
	})

	b.Run("unchanged", func(b *testing.B) {
		e := newPublishEnv(b)
		image := e.push("base/bench", "unchanged")
		var s Signer
		if _, err := s.Publish(context.Background(), image, key, p, e.registry()); err != nil {
			b.Fatal(err)
		}
		e.reg.ResetCounts()
		w := e.writes.Load()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			got, err := s.Publish(context.Background(), image, key, p, e.registry())
			if err != nil || got.Changed {
				b.Fatalf("publish: %+v, %v", got, err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(e.writes.Load()-w)/float64(b.N), "pushes/op")
		b.ReportMetric(float64(e.reg.Requests())/float64(b.N), "requests/op")
	})
}

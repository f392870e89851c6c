package main

import (
	"slices"
	"strings"
	"testing"
)

func TestMetricsFlags(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		want    []string
		wantErr string
	}{
		{"", []string{"--metrics-bind-address=0"}, ""},
		{"127.0.0.1:8080", []string{"--metrics-bind-address=127.0.0.1:8080", "--metrics-secure=false"}, ""},
		{"localhost:9090", []string{"--metrics-bind-address=localhost:9090", "--metrics-secure=false"}, ""},
		{"[::1]:8080", []string{"--metrics-bind-address=[::1]:8080", "--metrics-secure=false"}, ""},
		{"0.0.0.0:8080", nil, "loopback"},
		{":8080", nil, "loopback"},
		{"192.168.1.5:8080", nil, "loopback"},
		{"127.0.0.1", nil, "missing port"},
		{"127.0.0.1:0", nil, "needs a port"},
	} {
		got, err := metricsFlags(tc.addr)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("metricsFlags(%q) error = %v, want one saying %q", tc.addr, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("metricsFlags(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
}

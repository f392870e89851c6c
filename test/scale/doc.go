// Package scale measures plinth at catalog scale: a real API server
// (envtest), the operator's controllers and a registry on loopback. It
// holds benchmarks only; run them with `make bench`.
package scale

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// runOperator runs the operator binary until ctx ends, then stops it with
// SIGTERM. env is added to the playground's environment. The operator
// serves its metrics over plain HTTP on metricsAddr, a loopback address,
// or not at all when metricsAddr is empty.
func runOperator(ctx context.Context, operator, metricsAddr string, env []string, args ...string) error {
	if _, err := os.Stat(operator); err != nil {
		return fmt.Errorf("operator binary %s not found: run `make build` first", operator)
	}
	flags, err := metricsFlags(metricsAddr)
	if err != nil {
		return err
	}
	if metricsAddr != "" {
		fmt.Printf("The operator's metrics: http://%s/metrics\n", metricsAddr)
	}
	cmd := exec.Command(operator, append(append(flags, "--health-probe-bind-address=0"), args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = operatorProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the operator: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return fmt.Errorf("the operator exited: %w", err)
	case <-ctx.Done():
	}
	fmt.Println("\nStopping.")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return nil
}

// metricsFlags returns the operator's flags that serve its metrics on addr:
// plain HTTP, so only on a loopback address; none when addr is empty.
func metricsFlags(addr string) ([]string, error) {
	if addr == "" {
		return []string{"--metrics-bind-address=0"}, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics-address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-metrics-address %q: serves plain HTTP, so the host must be a loopback address such as 127.0.0.1", addr)
	}
	if port == "" || port == "0" {
		return nil, fmt.Errorf("-metrics-address %q: needs a port", addr)
	}
	return []string{"--metrics-bind-address=" + addr, "--metrics-secure=false"}, nil
}

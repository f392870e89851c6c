package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// runOperator runs the operator binary until ctx ends, then stops it with
// SIGTERM. env is added to the playground's environment.
func runOperator(ctx context.Context, operator string, env []string, args ...string) error {
	if _, err := os.Stat(operator); err != nil {
		return fmt.Errorf("operator binary %s not found: run `make build` first", operator)
	}
	cmd := exec.Command(operator, append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}, args...)...)
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

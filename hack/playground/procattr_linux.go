//go:build linux

package main

import "syscall"

// operatorProcAttr ties the operator's life to the playground's: Linux sends
// it SIGTERM when the playground dies, even when the playground is killed.
func operatorProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

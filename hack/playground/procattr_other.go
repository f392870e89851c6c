//go:build !linux

package main

import "syscall"

// operatorProcAttr returns nil: only Linux can signal a child when its parent
// dies. Elsewhere Ctrl-C in the terminal reaches both processes, and the
// playground stops the operator whenever it exits by itself.
func operatorProcAttr() *syscall.SysProcAttr { return nil }

// Package policy decides, as a pure function of what plinth observed and the
// time, whether a base image is approved and whether it is stale. It does no
// I/O and reads no clock of its own, so every rule is tested with a fixed
// time.
package policy

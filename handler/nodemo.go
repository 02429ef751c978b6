//go:build !demo

package main

import "errors"

// startDemo is in the demo binary only (`make demo`, -tags demo): the
// deployed binary carries no fakes.
func startDemo() (*demoWorld, error) {
	return nil, errors.New("this binary has no demo: `make demo` builds and runs one (bin/handler-demo)")
}

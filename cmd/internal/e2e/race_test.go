//go:build race

package e2e

// raceEnabled is true when the tests run with -race; the binaries they
// build are then built with -race too, so a data race in a service fails
// the test that started it.
const raceEnabled = true

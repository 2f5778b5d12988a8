//go:build race

package demo

// raceEnabled: the race detector slows the stand-in sink about tenfold, so
// TestEndToEnd polls ten times less.
const raceEnabled = true

package demo

import "testing"

// TestCaughtUp: start-up ends once every factory's backlog of the mark's
// moment is stored, not when the sink's lag first reads 0 (a gateway that
// has not produced yet adds nothing to the lag).
func TestCaughtUp(t *testing.T) {
	mark := Stats{Factories: map[string]FactoryStats{
		"plant-a": {Polled: 100, Stored: 10},
		"plant-b": {Polled: 90},
		"plant-c": {Polled: 0}, // its devices not answering yet
	}}
	for _, tc := range []struct {
		name string
		now  map[string]FactoryStats
		want bool
	}{
		{"the first gateway's backlog stored, the second's not produced yet",
			map[string]FactoryStats{"plant-a": {Polled: 140, Stored: 130}, "plant-b": {Polled: 130}}, false},
		{"one sample of the second's backlog missing",
			map[string]FactoryStats{"plant-a": {Polled: 140, Stored: 130}, "plant-b": {Polled: 130, Stored: 89}}, false},
		{"every backlog stored",
			map[string]FactoryStats{"plant-a": {Polled: 140, Stored: 100}, "plant-b": {Polled: 130, Stored: 90}}, true},
	} {
		if got := (Stats{Factories: tc.now}).CaughtUp(mark); got != tc.want {
			t.Errorf("%s: CaughtUp %v, want %v", tc.name, got, tc.want)
		}
	}
}

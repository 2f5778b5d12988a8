package modbus

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestDueHeap checks the due heap against sorting: over random heaps,
// reschedulings of the top device, pushes and removals, the top is always
// the device with the earliest due time (ties: the least id), and taking
// the top again and again gives every device in (due, id) order.
func TestDueHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	base := time.Unix(1_764_550_000, 0)
	due := func(spread int) time.Time { return base.Add(time.Duration(rng.IntN(spread)) * time.Millisecond) }
	byDue := func(a, b *device) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	}
	check := func(h dueHeap, what string) {
		t.Helper()
		want := make([]*device, len(h))
		for i, e := range h {
			want[i] = e.d
		}
		slices.SortFunc(want, byDue)
		if len(h) > 0 && h[0].d != want[0] {
			t.Fatalf("%s: top %s due %v, want %s due %v", what, h[0].d.ID, h[0].d.due, want[0].ID, want[0].due)
		}
		// Drain a copy: every device, in order.
		c := slices.Clone(h)
		for i, w := range want {
			if c[0].d != w {
				t.Fatalf("%s: %dth out %s, want %s", what, i, c[0].d.ID, w.ID)
			}
			c[0] = c[len(c)-1]
			c = c[:len(c)-1]
			if len(c) > 0 {
				c.down(0)
			}
		}
	}
	serial := 0
	newDevice := func(spread int) *device {
		serial++
		// Ids not in creation order, so rank is not insertion order.
		return &device{Device: Device{ID: fmt.Sprintf("d%03d-%d", rng.IntN(1000), serial)}, due: due(spread)}
	}
	for n := 1; n < 200; n++ {
		var h dueHeap
		for range n {
			h.push(newDevice(50))
		}
		h.init()
		check(h, fmt.Sprintf("heap of %d", n))
		for step := range 40 {
			switch rng.IntN(8) {
			case 0: // Change adds a device
				h.push(newDevice(100))
				h.init()
			case 1: // Change removes one
				if len(h) > 1 {
					h.remove(h[rng.IntN(len(h))].d)
					h.init()
				}
			default: // the top is polled and due later
				h[0].d.due = h[0].d.due.Add(time.Duration(1+rng.IntN(60)) * time.Millisecond)
				h.rescheduled()
			}
			check(h, fmt.Sprintf("heap of %d, step %d", n, step))
		}
	}
}

package modbus

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestDueHeapFix checks that dueHeap.fix moves devices exactly as
// heap.Fix does, over random heaps and due time changes.
func TestDueHeapFix(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	base := time.Unix(1_764_550_000, 0)
	for n := 1; n < 300; n++ {
		a, b := make(dueHeap, n), make(dueHeap, n)
		for i := range n {
			due := base.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
			a[i] = &device{Device: Device{ID: fmt.Sprintf("d%03d", i)}, due: due, index: i}
			b[i] = &device{Device: Device{ID: fmt.Sprintf("d%03d", i)}, due: due, index: i}
		}
		heap.Init(&a)
		heap.Init(&b)
		for range 20 {
			i := rng.IntN(n)
			due := base.Add(time.Duration(rng.IntN(100)-25) * time.Millisecond)
			a[i].due, b[i].due = due, due
			heap.Fix(&a, i)
			b.fix(i)
			for k := range a {
				if a[k].ID != b[k].ID || a[k].index != k || b[k].index != k {
					t.Fatalf("heap of %d: at %d heap.Fix has %s, fix %s", n, k, a[k].ID, b[k].ID)
				}
			}
		}
	}
}

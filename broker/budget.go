package broker

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// budget is a broker-wide byte semaphore: queued.max.request.bytes for
// request bodies being read or handled, queued.max.response.bytes for fetch
// responses built but not yet written. Bytes are taken as grants and given
// back by releasing them.
//
// Waiters are served in arrival order, and a taker that does not wait
// (tryAcquire, acquireUpTo) gets nothing while anyone waits, so a large
// request is not starved by a stream of small ones. Nothing is held while
// waiting, so two budgets cannot deadlock each other. All methods are safe
// for concurrent use.
type budget struct {
	capacity int64
	gauge    prometheus.Gauge // bytes in use
	freed    notifier         // broadcast whenever bytes are released

	mu      sync.Mutex
	used    int64
	waiters []*budgetWaiter // in arrival order
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when the bytes are granted
}

func newBudget(capacity int64, gauge prometheus.Gauge) *budget {
	return &budget{capacity: capacity, gauge: gauge}
}

// A grant holds bytes of a budget until release. Its zero value holds
// nothing. A grant belongs to one goroutine at a time; release gives the
// bytes back exactly once however often it is called.
type grant struct {
	b *budget
	n int64
}

// release gives the grant's bytes back to its budget.
func (g *grant) release() {
	if g.n > 0 {
		g.b.release(g.n)
	}
	g.n = 0
}

// grow adds extra bytes to the grant if the budget has them free now.
func (g *grant) grow(extra int64) bool {
	if extra <= 0 {
		return true
	}
	if !g.b.take(extra) {
		return false
	}
	g.n += extra
	return true
}

// growAll makes the grant hold the whole budget if nothing else holds any
// of it and nobody waits: the only way to serve one item larger than the
// budget without stalling its consumer forever.
func (g *grant) growAll() bool {
	b := g.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 || b.used != g.n {
		return false
	}
	b.add(b.capacity - g.n)
	g.n = b.capacity
	return true
}

// shrink gives back the grant's bytes beyond n.
func (g *grant) shrink(n int64) {
	if n < g.n {
		g.b.release(g.n - n)
		g.n = n
	}
}

// tryAcquire grants n bytes if they are free now and nobody waits.
func (b *budget) tryAcquire(n int64) (grant, bool) {
	if !b.take(n) {
		return grant{}, false
	}
	return grant{b, n}, true
}

// acquire grants n bytes, waiting in line until they are free or ctx is
// done. n beyond the capacity could never be granted: that is an error, not
// a wait.
func (b *budget) acquire(ctx context.Context, n int64) (grant, error) {
	if n > b.capacity {
		return grant{}, fmt.Errorf("%d bytes exceed the whole budget of %d", n, b.capacity)
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.capacity {
		b.add(n)
		b.mu.Unlock()
		return grant{b, n}, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return grant{b, n}, nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	select {
	case <-w.ready:
		// Granted while ctx ended: give the bytes back.
		b.add(-n)
	default:
		for i, o := range b.waiters {
			if o == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
	}
	// Leaving the head of the line may let those behind go.
	b.grantWaiters()
	b.mu.Unlock()
	b.freed.broadcast()
	return grant{}, ctx.Err()
}

// acquireUpTo grants as many of n bytes as are free now (possibly none)
// without waiting (none while anyone waits). It also returns the bytes
// that were free, for free to tell later whether any were freed since.
func (b *budget) acquireUpTo(n int64) (grant, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	free := b.capacity - b.used
	if len(b.waiters) > 0 {
		return grant{b: b}, free
	}
	n = max(min(n, free), 0)
	b.add(n)
	return grant{b, n}, free
}

// released returns a channel closed at the next release of bytes.
func (b *budget) released() <-chan struct{} { return b.freed.wait() }

// free returns the bytes not granted.
func (b *budget) free() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.capacity - b.used
}

// inUse returns the bytes granted and not yet released.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 || b.used+n > b.capacity {
		return false
	}
	b.add(n)
	return true
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.add(-n)
	if b.used < 0 {
		b.mu.Unlock()
		panic("broker: budget released more bytes than were granted")
	}
	b.grantWaiters()
	b.mu.Unlock()
	b.freed.broadcast()
}

// grantWaiters grants the bytes of the waiters at the head of the line that
// fit. The caller holds mu.
func (b *budget) grantWaiters() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.capacity {
		w := b.waiters[0]
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		b.add(w.n)
		close(w.ready)
	}
}

// add changes the bytes in use. The caller holds mu.
func (b *budget) add(n int64) {
	b.used += n
	b.gauge.Set(float64(b.used))
}

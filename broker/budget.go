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
// request is not starved by a stream of small ones. The exception are
// passing takers (small control requests): one may take free bytes past
// the line, or be granted them while it waits behind others, as long as
// the waiter at the head of the line could not be granted even if every
// passing grant were given back. So one large request waiting for bytes
// that others hold does not stop every client's small requests, and it
// waits for passing grants only while others hold bytes it needs anyway:
// once those are given back, passing takers queue behind it, and it waits
// at most for the passing grants already made. Nothing is held while
// waiting, so two budgets cannot deadlock each other. All methods are safe
// for concurrent use.
type budget struct {
	capacity int64
	gauge    prometheus.Gauge // bytes in use
	freed    notifier         // broadcast whenever bytes are released

	mu      sync.Mutex
	used    int64
	passing int64           // of used, the bytes of passing grants
	waiters []*budgetWaiter // in arrival order
}

type budgetWaiter struct {
	n       int64
	passing bool          // may be granted past the line
	ready   chan struct{} // closed when the bytes are granted
}

func newBudget(capacity int64, gauge prometheus.Gauge) *budget {
	return &budget{capacity: capacity, gauge: gauge}
}

// A grant holds bytes of a budget until release. Its zero value holds
// nothing. A grant belongs to one goroutine at a time; release gives the
// bytes back exactly once however often it is called.
type grant struct {
	b       *budget
	n       int64
	passing bool // granted to a passing taker
}

// release gives the grant's bytes back to its budget.
func (g *grant) release() {
	if g.n > 0 {
		g.b.release(g.n, g.passing)
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
		g.b.release(g.n-n, g.passing)
		g.n = n
	}
}

// tryAcquire grants n bytes if they are free now and nobody waits (or,
// for a passing taker, if it may pass those who wait).
func (b *budget) tryAcquire(n int64, passing bool) (grant, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.fits(n, passing) {
		return grant{}, false
	}
	b.use(n, passing)
	return grant{b, n, passing}, true
}

// acquire grants n bytes, waiting in line until they are free or ctx is
// done; a passing taker may be granted them past the line (see budget).
// n beyond the capacity could never be granted: that is an error, not a
// wait.
func (b *budget) acquire(ctx context.Context, n int64, passing bool) (grant, error) {
	if n > b.capacity {
		return grant{}, fmt.Errorf("%d bytes exceed the whole budget of %d", n, b.capacity)
	}
	b.mu.Lock()
	if b.fits(n, passing) {
		b.use(n, passing)
		b.mu.Unlock()
		return grant{b, n, passing}, nil
	}
	w := &budgetWaiter{n: n, passing: passing, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return grant{b, n, passing}, nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	select {
	case <-w.ready:
		// Granted while ctx ended: give the bytes back.
		b.use(-n, passing)
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
	return grant{b: b, n: n}, free
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
	if !b.fits(n, false) {
		return false
	}
	b.add(n)
	return true
}

func (b *budget) release(n int64, passing bool) {
	b.mu.Lock()
	b.use(-n, passing)
	if b.used < 0 || b.passing < 0 {
		b.mu.Unlock()
		panic("broker: budget released more bytes than were granted")
	}
	b.grantWaiters()
	b.mu.Unlock()
	b.freed.broadcast()
}

// fits tells whether n bytes may be granted now to a taker not in line:
// they are free, and nobody waits or the taker may pass those who wait.
// The caller holds mu.
func (b *budget) fits(n int64, passing bool) bool {
	if b.used+n > b.capacity {
		return false
	}
	return len(b.waiters) == 0 || passing && b.mayPass()
}

// mayPass tells whether a passing taker may be granted bytes before the
// waiter at the head of the line: only while that waiter could not be
// granted even if every passing grant were given back. The caller holds mu
// and there is a waiter.
func (b *budget) mayPass() bool {
	return b.used-b.passing+b.waiters[0].n > b.capacity
}

// grantWaiters grants the bytes of the waiters at the head of the line that
// fit, then those of passing waiters further back that may pass. The
// caller holds mu.
func (b *budget) grantWaiters() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.capacity {
		w := b.waiters[0]
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		b.use(w.n, w.passing)
		close(w.ready)
	}
	for i := 1; i < len(b.waiters); {
		w := b.waiters[i]
		if !w.passing || b.used+w.n > b.capacity || !b.mayPass() {
			i++
			continue
		}
		b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
		b.use(w.n, true)
		close(w.ready)
	}
}

// use changes the bytes in use by n, those of passing grants too if
// passing. The caller holds mu.
func (b *budget) use(n int64, passing bool) {
	if passing {
		b.passing += n
	}
	b.add(n)
}

// add changes the bytes in use. The caller holds mu.
func (b *budget) add(n int64) {
	b.used += n
	b.gauge.Set(float64(b.used))
}

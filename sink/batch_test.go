package sink

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

// gatedStore is the sink's store with its sample writes recorded (the
// documents of each Write call) and, while hold is armed, the next Write
// held until the test releases it.
type gatedStore struct {
	store
	mu      sync.Mutex
	writes  []int
	hold    bool
	entered chan struct{} // closed when the held write has started
	release chan struct{} // closed by the test to let it go on
}

func newGatedStore(st store) *gatedStore {
	return &gatedStore{store: st, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedStore) Write(ctx context.Context, coll string, docs []mongots.Doc) (mongots.WriteResult, error) {
	g.mu.Lock()
	g.writes = append(g.writes, len(docs))
	held := g.hold
	g.hold = false
	g.mu.Unlock()
	if held {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return mongots.WriteResult{}, ctx.Err()
		}
	}
	return g.store.Write(ctx, coll, docs)
}

// sizes returns the documents of each Write so far.
func (g *gatedStore) sizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.writes)
}

// TestBatchNoWait: with batch.max_wait unset (0, the default) a sample is
// written as soon as it comes, in a batch of its own, while no write is
// in progress, even with max_records far from reached: it waits for no
// timer (the test waits less than a 1-minute max_wait would). The
// samples that come while a write is in progress (held here) are
// written together, as the next batch: batches grow with the load.
func TestBatchNoWait(t *testing.T) {
	addr := startBroker(t)
	topic := testFactory + ".press"
	createTopics(t, addr, map[string]int32{topic: 1, topic + ".dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	d := openDB(t, cfg)
	p := newProducer(t, addr)
	var gate *gatedStore
	startSinkOn(t, cfg, func(st store) store {
		gate = newGatedStore(st)
		gate.hold = true
		return gate
	})
	p.produce(t, sampleRecord(testSample("press", "press-01", 0)))
	waitClosed(t, "the lone sample's write to start", gate.entered)
	// While it is held, ten samples come in one produce request.
	p.produce(t, stream([]string{"press"}, 1, 1, 11)...)
	close(gate.release)
	waitFor(t, "every sample stored", func() bool { return d.count(topic) == 11 })
	sizes := gate.sizes()
	if len(sizes) < 2 || sizes[0] != 1 {
		t.Fatalf("writes of %v documents: want the lone sample written alone first", sizes)
	}
	if rest := sizes[1:]; len(rest) > 2 || slices.Max(rest) < 5 {
		t.Fatalf("writes of %v documents: want the ten samples that came during the first write in one or two writes", sizes)
	}
	t.Logf("writes of %v documents", sizes)
}

// TestBatchMaxWait: with batch.max_wait set a batch waits for more
// records after its first, until max_wait or max_records: two samples
// produced one after the other are written together.
func TestBatchMaxWait(t *testing.T) {
	addr := startBroker(t)
	topic := testFactory + ".press"
	createTopics(t, addr, map[string]int32{topic: 1, topic + ".dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.Batch.MaxWait, cfg.Batch.MaxRecords = time.Minute, 2
	d := openDB(t, cfg)
	p := newProducer(t, addr)
	var gate *gatedStore
	startSinkOn(t, cfg, func(st store) store {
		gate = newGatedStore(st)
		return gate
	})
	p.produce(t, sampleRecord(testSample("press", "press-01", 0)))
	p.produce(t, sampleRecord(testSample("press", "press-01", 1)))
	waitFor(t, "both samples stored", func() bool { return d.count(topic) == 2 })
	if sizes := gate.sizes(); !slices.Equal(sizes, []int{2}) {
		t.Fatalf("writes of %v documents, want one of 2", sizes)
	}
}

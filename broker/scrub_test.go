package broker

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// signalHandler is a slog text handler into a buffer that closes done at
// the first record with message msg.
type signalHandler struct {
	slog.Handler
	msg  string
	once *sync.Once
	done chan struct{}
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Message == h.msg {
		h.once.Do(func() { close(h.done) })
	}
	return err
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.Handler = h.Handler.WithAttrs(as)
	return h
}

func (h signalHandler) WithGroup(name string) slog.Handler {
	h.Handler = h.Handler.WithGroup(name)
	return h
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestScrubOnStart damages a closed segment of one partition of a stopped
// broker and starts it with scrub_on_start: the scrub logs the damaged
// range with its file and byte at error level and counts it for that
// partition only, while the broker serves.
func TestScrubOnStart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	addr := b.Addr().String()
	createTopic(t, addr, "scrubbed", 2, map[string]*string{"segment.bytes": ptr("2048")})
	c := dialRaw(t, addr)
	for i := 0; i < 20; i++ {
		for p := int32(0); p < 2; p++ {
			got := producePartition(c.roundTrip(produceReq(7, -1, "scrubbed", p, makeBatch(testBatch{records: 2, timestamp: int64(i), value: make([]byte, 300)}))))
			if got.ErrorCode != 0 {
				t.Fatalf("produce: %d", got.ErrorCode)
			}
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "scrubbed-0", "*.log"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %v", segs)
	}
	victim := segs[1]
	raw, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	firstSize := 12 + int(beInt32(raw[8:]))
	raw[firstSize-1] ^= 0x5a // the first batch's last record byte
	if err := os.WriteFile(victim, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	h := signalHandler{Handler: slog.NewTextHandler(logs, nil), msg: "scrub finished", once: &sync.Once{}, done: make(chan struct{})}
	b = startBroker(t, dir, func(cfg *Config) {
		cfg.ScrubOnStart = true
		cfg.Logger = slog.New(h)
	})
	select {
	case <-h.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("no scrub summary within 60s:\n%s", logs)
	}
	if got := counterValue(t, b.metrics.scrubCorruptRanges.WithLabelValues("scrubbed", "0")); got != 1 {
		t.Fatalf("scrub counted %v damaged ranges in partition 0, want 1\n%s", got, logs)
	}
	if got := counterValue(t, b.metrics.scrubCorruptRanges.WithLabelValues("scrubbed", "1")); got != 0 {
		t.Fatalf("scrub counted %v damaged ranges in partition 1, want 0", got)
	}
	out := logs.String()
	for _, want := range []string{"level=ERROR", `msg="scrub found a damaged range`, "file=" + victim, "pos=0", "topic=scrubbed", "partition=0",
		`msg="scrub finished"`, "damaged_ranges=1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("logs lack %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "scrub found a damaged range"); n != 1 {
		t.Fatalf("%d damaged-range lines, want 1:\n%s", n, out)
	}
}

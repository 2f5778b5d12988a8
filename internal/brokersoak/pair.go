package brokersoak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pairGroup is the consumer group of the pair's consumer.
const pairGroup = "soak-pair"

// pos is a record's place in the log: topic index, partition, offset.
type pos struct {
	topic     int
	partition int32
	offset    int64
}

// rec is what a record carries: its key's index and sequence number.
type rec struct {
	key int
	seq int64
}

// ledger holds the records the broker acknowledged and those the
// consumer read. It is safe for concurrent use.
type ledger struct {
	topics []string

	mu          sync.Mutex
	acked       map[pos]rec
	ackedOrder  []pos // for picking old offsets at random
	consumed    map[pos]rec
	redelivered int            // records consumed again at an offset already consumed
	produced    int            // records handed to the producer
	failed      int            // records the producer gave up on (not acknowledged)
	buffered    int            // records not offered because the producer's buffer was full
	failures    map[string]int // producer errors by message
	// consumeErrors counts the consumer's fetch errors by message.
	consumeErrors map[string]int
}

func newLedger(topics []string) *ledger {
	return &ledger{topics: topics, acked: map[pos]rec{}, consumed: map[pos]rec{}, failures: map[string]int{}, consumeErrors: map[string]int{}}
}

func (l *ledger) topicIndex(name string) int { return slices.Index(l.topics, name) }

// randomAcked returns up to n acknowledged positions in the older half of
// what was acknowledged, chosen by rng.
func (l *ledger) randomAcked(rng *rand.Rand, n int) []pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	half := len(l.ackedOrder) / 2
	if half == 0 {
		return nil
	}
	out := make([]pos, 0, n)
	for range n {
		out = append(out, l.ackedOrder[rng.IntN(half)])
	}
	return out
}

// unconsumed counts acknowledged records the consumer has not read.
func (l *ledger) unconsumed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for p := range l.acked {
		if _, ok := l.consumed[p]; !ok {
			n++
		}
	}
	return n
}

func (l *ledger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// keyName and value encode a record; parseRecord decodes it.
func keyName(k int) string { return fmt.Sprintf("dev-%04d", k) }

func value(seq int64, size int) []byte {
	v := []byte(strconv.FormatInt(seq, 10) + " ")
	for len(v) < size {
		v = append(v, 'x')
	}
	return v
}

func parseRecord(key, val []byte) (rec, error) {
	k, ok := strings.CutPrefix(string(key), "dev-")
	if !ok {
		return rec{}, fmt.Errorf("key %q is not the soak's", key)
	}
	ki, err := strconv.Atoi(k)
	if err != nil {
		return rec{}, fmt.Errorf("key %q: %v", key, err)
	}
	s, _, ok := strings.Cut(string(val), " ")
	if !ok {
		return rec{}, fmt.Errorf("value of key %q holds no sequence number", key)
	}
	seq, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return rec{}, fmt.Errorf("value of key %q: %v", key, err)
	}
	return rec{key: ki, seq: seq}, nil
}

// produce offers cfg.Rate records a second, keyed by cycling through
// cfg.Keys keys, each key always to the same topic, until stop is closed;
// then it flushes (bounded by cfg.DrainTimeout) and closes the client.
// Acknowledged records go to the ledger.
func produce(ctx context.Context, addr string, cfg Config, l *ledger, stop <-chan struct{}) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(2*time.Minute),
		kgo.ClientID("brokersoak-producer"),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	seqs := make([]int64, cfg.Keys)
	const tick = 10 * time.Millisecond
	perTick := float64(cfg.Rate) * tick.Seconds()
	var owed float64
	next := 0
	t := time.NewTicker(tick)
	defer t.Stop()
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-ctx.Done():
			break loop
		case <-t.C:
		}
		owed += perTick
		for ; owed >= 1; owed-- {
			k := next
			next = (next + 1) % cfg.Keys
			topic := l.topics[k%len(l.topics)]
			r := &kgo.Record{Topic: topic, Key: []byte(keyName(k)), Value: value(seqs[k], cfg.ValueBytes)}
			seq := seqs[k]
			l.mu.Lock()
			l.produced++
			l.mu.Unlock()
			// The record's context is not ctx: records already buffered
			// are delivered or fail on their own after stop.
			cl.TryProduce(context.Background(), r, func(r *kgo.Record, err error) {
				l.mu.Lock()
				defer l.mu.Unlock()
				switch {
				case errors.Is(err, kgo.ErrMaxBuffered):
					l.buffered++
					l.produced--
				case err != nil:
					l.failed++
					l.failures[err.Error()]++
				default:
					p := pos{topic: l.topicIndex(r.Topic), partition: r.Partition, offset: r.Offset}
					l.acked[p] = rec{key: k, seq: seq}
					l.ackedOrder = append(l.ackedOrder, p)
				}
			})
			seqs[k]++
		}
	}
	fctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return fmt.Errorf("producer flush: %w (records still unacknowledged after %v)", err, cfg.DrainTimeout)
	}
	return nil
}

// consume reads the pair's topics as member of pairGroup into the ledger
// until done is closed and every acknowledged record has been read, or
// until done has been closed for cfg.DrainTimeout.
func consume(ctx context.Context, addr string, cfg Config, l *ledger, done <-chan struct{}) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(pairGroup),
		kgo.ConsumeTopics(l.topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.ClientID("brokersoak-consumer"),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	var drainBy time.Time
	var firstErr error
	for {
		select {
		case <-done:
			if drainBy.IsZero() {
				drainBy = time.Now().Add(cfg.DrainTimeout)
			}
		default:
		}
		if !drainBy.IsZero() {
			if l.unconsumed() == 0 {
				return firstErr
			}
			if time.Now().After(drainBy) {
				return errors.Join(firstErr, fmt.Errorf("consumer: %d acknowledged records still unread %v after the producer stopped", l.unconsumed(), cfg.DrainTimeout))
			}
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.mu.Lock()
		fs.EachError(func(t string, p int32, err error) {
			// Errors while hostile clients hold the broker's limits are
			// expected and retried by the client: counted, not fatal.
			if !errors.Is(err, context.DeadlineExceeded) {
				l.consumeErrors[err.Error()]++
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			rc, err := parseRecord(r.Key, r.Value)
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("consumer: %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
				}
				return
			}
			p := pos{topic: l.topicIndex(r.Topic), partition: r.Partition, offset: r.Offset}
			if _, ok := l.consumed[p]; ok {
				l.redelivered++
			}
			l.consumed[p] = rc
		})
		l.mu.Unlock()
	}
}

// LogCheck is what a final read of every partition from its start found.
type LogCheck struct {
	Records    int // records read
	Missing    int // acknowledged records absent from the log
	Mismatched int // acknowledged offsets holding another key or sequence
	Duplicates int // records whose key and sequence appear at an earlier offset too
	Reorders   int // records whose sequence is below an earlier one of the same key
}

// checkLog reads every partition of the pair's topics from its start to
// its end offset (bounded by cfg.DrainTimeout) and checks the ledger's
// acknowledged records against it.
func checkLog(ctx context.Context, addr string, cfg Config, l *ledger) (LogCheck, error) {
	var lc LogCheck
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("brokersoak-check"))
	if err != nil {
		return lc, err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.DrainTimeout)
	defer cancel()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, l.topics...)
	if err != nil {
		return lc, fmt.Errorf("final read: list end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return lc, fmt.Errorf("final read: list end offsets: %w", err)
	}
	remaining := 0
	starts := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if starts[o.Topic] == nil {
			starts[o.Topic] = map[int32]kgo.Offset{}
		}
		starts[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		remaining += int(o.Offset) // the log start is 0: no retention runs
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(starts), kgo.ClientID("brokersoak-check"),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return lc, err
	}
	defer cl.Close()
	log := map[pos]rec{}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return lc, fmt.Errorf("final read: %d records of the log unread within %v", remaining, cfg.DrainTimeout)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("final read: %s/%d: %w", t, p, err) })
		if ferr != nil {
			return lc, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			o, ok := ends.Lookup(r.Topic, r.Partition)
			if !ok || r.Offset >= o.Offset {
				return
			}
			rc, err := parseRecord(r.Key, r.Value)
			if err != nil {
				rc = rec{key: -1, seq: -1}
			}
			p := pos{topic: l.topicIndex(r.Topic), partition: r.Partition, offset: r.Offset}
			if _, seen := log[p]; !seen {
				log[p] = rc
				remaining--
			}
		})
	}
	lc.Records = len(log)

	l.mu.Lock()
	for p, want := range l.acked {
		got, ok := log[p]
		switch {
		case !ok:
			lc.Missing++
		case got != want:
			lc.Mismatched++
		}
	}
	l.mu.Unlock()

	// Duplicates and reorders, per partition in offset order.
	positions := make([]pos, 0, len(log))
	for p := range log {
		positions = append(positions, p)
	}
	slices.SortFunc(positions, func(a, b pos) int {
		if a.topic != b.topic {
			return a.topic - b.topic
		}
		if a.partition != b.partition {
			return int(a.partition - b.partition)
		}
		return int(a.offset - b.offset)
	})
	seen := map[rec]bool{}
	lastSeq := map[int]int64{}
	for _, p := range positions {
		r := log[p]
		if r.key < 0 {
			continue
		}
		if seen[r] {
			lc.Duplicates++
		}
		seen[r] = true
		if last, ok := lastSeq[r.key]; ok && r.seq < last {
			lc.Reorders++
		}
		lastSeq[r.key] = max(lastSeq[r.key], r.seq)
	}
	return lc, nil
}

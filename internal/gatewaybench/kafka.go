package gatewaybench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicPartitions is the partitions of every topic the tools produce to.
// One, so that counting a window's records is one end offset per tool.
const topicPartitions = 1

// kafkaAdmin is this process's client of the broker child: it creates the
// topics, reads their end offsets and reads a window's records back.
type kafkaAdmin struct {
	addr      string
	cl        *kgo.Client
	adm       *kadm.Client
	closeOnce sync.Once
}

func newKafkaAdmin(addr string) (*kafkaAdmin, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	return &kafkaAdmin{addr: addr, cl: cl, adm: kadm.NewClient(cl)}, nil
}

// Close closes the client. It is idempotent.
func (k *kafkaAdmin) Close() { k.closeOnce.Do(k.cl.Close) }

// createTopic creates topic with topicPartitions partitions.
func (k *kafkaAdmin) createTopic(ctx context.Context, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := k.adm.CreateTopic(ctx, topicPartitions, 1, nil, topic); err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// endOffset returns the sum of topic's partitions' end offsets: the
// records the broker has acknowledged to it.
func (k *kafkaAdmin) endOffset(ctx context.Context, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	offs, err := k.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	if err := offs.Error(); err != nil {
		return 0, err
	}
	var n int64
	for p := range int32(topicPartitions) {
		o, ok := offs.Lookup(topic, p)
		if !ok {
			return 0, fmt.Errorf("%s: no end offset for partition %d", topic, p)
		}
		n += o.Offset
	}
	return n, nil
}

// windowRecords is what a window's records say, read back from the broker:
// the records whose timestamp (the sample's time) falls in the window.
type windowRecords struct {
	Read      int64          // records read, in the window or not
	Records   int64          // records in the window
	Keys      map[string]int // records in the window per key (device)
	NoKey     int64          // records in the window without a key
	MinPerKey int
	MaxPerKey int
	First     []byte // the value of the first record in the window
}

// readWindow reads partition 0 of topic from offset from up to (not
// including) to and counts the records whose timestamp is in [t0, t1),
// per key.
func (k *kafkaAdmin) readWindow(ctx context.Context, topic string, from, to int64, t0, t1 time.Time) (windowRecords, error) {
	w := windowRecords{Keys: map[string]int{}}
	if to <= from {
		return w, nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxBytes(64<<20),
	)
	if err != nil {
		return w, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for next := from; next < to; {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return w, fmt.Errorf("read %s %d..%d: stopped at %d: %w", topic, from, to, next, err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return w, fmt.Errorf("read %s: %v", topic, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset < from || r.Offset >= to {
				return
			}
			next = max(next, r.Offset+1)
			w.Read++
			if r.Timestamp.Before(t0) || !r.Timestamp.Before(t1) {
				return
			}
			if w.Records == 0 {
				w.First = append([]byte(nil), r.Value...)
			}
			w.Records++
			if len(r.Key) == 0 {
				w.NoKey++
				return
			}
			w.Keys[string(r.Key)]++
		})
	}
	first := true
	for _, n := range w.Keys {
		if first {
			w.MinPerKey, w.MaxPerKey, first = n, n, false
		}
		w.MinPerKey, w.MaxPerKey = min(w.MinPerKey, n), max(w.MaxPerKey, n)
	}
	return w, nil
}

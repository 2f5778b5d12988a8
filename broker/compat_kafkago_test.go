package broker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaGoClientID is the client id of every kafka-go client in these tests.
const kafkaGoClientID = "compat-kafka-go"

// TestKafkaGoCompat runs the compatibility scenarios with segmentio/kafka-go:
// its balancers against Kafka's murmur2 mapping; a Writer (acks=all;
// kafka-go has no idempotent producer) with every codec, read back by a
// partition Reader; a group Reader committing synchronously with
// CommitMessages, rebalancing as a member joins and leaves, with the range
// and round-robin balancers (kafka-go joins with JoinGroup v2 at most and
// never handles MEMBER_ID_REQUIRED); and a broker restart while the group
// consumes and the Writer writes.
func TestKafkaGoCompat(t *testing.T) {
	vs := newNegotiatedVersions()
	b, dir := startCompatBroker(t, vs)
	addr := b.Addr().String()
	defer vs.report(t, kafkaGoClientID)

	t.Run("partitioner", testKafkaGoBalancers)
	t.Run("empty fetch", func(t *testing.T) { testKafkaGoEmptyFetch(t, addr) })
	t.Run("codecs", func(t *testing.T) {
		runCompatCodecs(t, kafkaGoClient(kafka.RangeGroupBalancer{}), addr)
	})
	t.Run("group", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			balancer kafka.GroupBalancer
		}{
			{"range", kafka.RangeGroupBalancer{}},
			{"round-robin", kafka.RoundRobinGroupBalancer{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := "kafka-go-group-" + tc.name
				runCompatGroup(t, kafkaGoClient(tc.balancer), addr, name, name)
			})
		}
		// kafka-go never handles MEMBER_ID_REQUIRED, which the broker
		// returns only from JoinGroup v4 on: kafka-go must stay below.
		if v, ok := vs.of(kafkaGoClientID)["JoinGroup"]; !ok || v >= 4 {
			t.Errorf("kafka-go joined with JoinGroup v%d (used: %v), want v0-3", v, ok)
		}
	})
	// Last: it replaces the broker.
	t.Run("restart", func(t *testing.T) {
		runCompatRestart(t, kafkaGoClient(kafka.RangeGroupBalancer{}), vs, b, dir, "kafka-go-restart", "kafka-go-restart")
	})
}

// testKafkaGoEmptyFetch long-polls an empty partition, raw at every Fetch
// version (kafka-go uses v10) and with a kafka-go partition Reader. kafka-go
// requires each partition's record set size to equal the bytes left: an
// empty set must be sent as length 0, never as null (-1), or kafka-go
// reports "the size of the message set in a fetch response doesn't match",
// closes its connection and backs off on every poll that times out empty.
// Kafka and kfake send an empty, non-null record set.
func testKafkaGoEmptyFetch(t *testing.T, addr string) {
	const topic = "kafka-go-empty"
	createTopic(t, addr, topic, 1, nil)

	// Every Fetch version the broker serves; kafka-go uses v10.
	var nullAt []int16
	c := dialRaw(t, addr)
	for v := int16(4); v <= 12; v++ {
		req := kmsg.NewPtrFetchRequest()
		req.Version = v
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 10, 1, 1<<20
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = 1<<20, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := c.roundTrip(req).(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch v%d response: %+v", v, resp)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
			t.Fatalf("fetch v%d of an empty partition: error %d, %d record bytes", v, p.ErrorCode, len(p.RecordBatches))
		}
		if p.RecordBatches == nil {
			nullAt = append(nullAt, v)
		}
	}

	var mu sync.Mutex
	var sizeErrors []string
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   []string{addr},
		Topic:     topic,
		Partition: 0,
		Dialer:    kafkaGoDialer(),
		MinBytes:  1,
		MaxBytes:  1 << 20,
		MaxWait:   100 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) {
			if msg := fmt.Sprintf(format, args...); strings.Contains(msg, "message set size") {
				mu.Lock()
				sizeErrors = append(sizeErrors, msg)
				mu.Unlock()
			}
		}),
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if m, err := r.ReadMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read from an empty partition: %v %+v", err, m)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(nullAt) > 0 || len(sizeErrors) > 0 {
		t.Errorf("Fetch answered a partition without data with null records (versions %v; Kafka and kfake send an empty set); kafka-go reconnected %d times in 1s: %v",
			nullAt, len(sizeErrors), sizeErrors[:min(1, len(sizeErrors))])
	}
}

// testKafkaGoBalancers finds which kafka-go balancers map keys as Kafka's
// default partitioner (murmur2) does.
func testKafkaGoBalancers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kafka.Balancer
		kafka    bool // maps keys as Kafka's murmur2 partitioner
	}{
		{"Murmur2Balancer", &kafka.Murmur2Balancer{}, true},
		{"Hash (FNV-1a, sarama's default)", &kafka.Hash{}, false},
		{"ReferenceHash (FNV-1a, Java's abs)", &kafka.ReferenceHash{}, false},
		{"CRC32Balancer (librdkafka consistent)", &kafka.CRC32Balancer{}, false},
	} {
		match, total := partitionerMatch(t, func(key string, n int) int32 {
			ps := make([]int, n)
			for i := range ps {
				ps[i] = i
			}
			return int32(tc.balancer.Balance(kafka.Message{Key: []byte(key)}, ps...))
		})
		t.Logf("%s: %d of %d keys on Kafka's murmur2 partition", tc.name, match, total)
		if tc.kafka && match != total {
			t.Errorf("%s maps %d of %d keys as Kafka's murmur2 does, want all", tc.name, match, total)
		}
		if !tc.kafka && match == total {
			t.Errorf("%s maps every key as Kafka's murmur2 does; it was expected to differ", tc.name)
		}
	}
}

func kafkaGoCodec(t *testing.T, name string) kafka.Compression {
	t.Helper()
	switch name {
	case "none":
		return 0
	case "gzip":
		return kafka.Gzip
	case "snappy":
		return kafka.Snappy
	case "lz4":
		return kafka.Lz4
	case "zstd":
		return kafka.Zstd
	}
	t.Fatalf("kafka-go has no codec %q", name)
	return 0
}

func kafkaGoDialer() *kafka.Dialer {
	return &kafka.Dialer{ClientID: kafkaGoClientID, Timeout: 5 * time.Second}
}

func kafkaGoRecord(m kafka.Message) compatRecord {
	r := compatRecord{key: string(m.Key), value: string(m.Value), partition: int32(m.Partition), offset: m.Offset, headers: map[string]string{}}
	for _, h := range m.Headers {
		r.headers[h.Key] = string(h.Value)
	}
	return r
}

// kafkaGoClient adapts kafka-go: a Writer (acks=all, murmur2 balancer,
// retrying for a while), a partition Reader per partition for reading back,
// and a group Reader with balancer that commits each processed message
// synchronously (CommitInterval 0).
func kafkaGoClient(balancer kafka.GroupBalancer) compatClient {
	return compatClient{
		id:     kafkaGoClientID,
		codecs: []string{"none", "gzip", "snappy", "lz4", "zstd"},
		producer: func(t *testing.T, addr, topic, codec string) func(context.Context, []compatRecord) error {
			w := &kafka.Writer{
				Addr:            kafka.TCP(addr),
				Topic:           topic,
				Balancer:        &kafka.Murmur2Balancer{},
				RequiredAcks:    kafka.RequireAll,
				Compression:     kafkaGoCodec(t, codec),
				BatchSize:       100,
				BatchTimeout:    5 * time.Millisecond,
				MaxAttempts:     50,
				WriteBackoffMin: 50 * time.Millisecond,
				WriteBackoffMax: 500 * time.Millisecond,
				ReadTimeout:     10 * time.Second,
				WriteTimeout:    10 * time.Second,
				Transport:       &kafka.Transport{ClientID: kafkaGoClientID, DialTimeout: 2 * time.Second},
			}
			t.Cleanup(func() { w.Close() })
			return func(ctx context.Context, recs []compatRecord) error {
				msgs := make([]kafka.Message, len(recs))
				for i, r := range recs {
					msgs[i] = kafka.Message{Key: []byte(r.key), Value: []byte(r.value)}
					for k, v := range r.headers {
						msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: k, Value: []byte(v)})
					}
				}
				return w.WriteMessages(ctx, msgs...)
			}
		},
		read: func(t *testing.T, addr, topic string, ends map[int32]int64) []compatRecord {
			var out []compatRecord
			for p := int32(0); p < int32(len(ends)); p++ {
				if ends[p] == 0 {
					continue
				}
				r := kafka.NewReader(kafka.ReaderConfig{
					Brokers:   []string{addr},
					Topic:     topic,
					Partition: int(p),
					Dialer:    kafkaGoDialer(),
					MinBytes:  1,
					MaxBytes:  1 << 20,
					MaxWait:   200 * time.Millisecond,
				})
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				for next := int64(0); next < ends[p]; {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						t.Fatalf("kafka-go read %s/%d at offset %d of %d: %v", topic, p, next, ends[p], err)
					}
					out = append(out, kafkaGoRecord(m))
					next = m.Offset + 1
				}
				cancel()
				r.Close()
			}
			return out
		},
		member: func(t *testing.T, addr, topic, group, name string, l *groupLedger) func() {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers:           []string{addr},
				GroupID:           group,
				Topic:             topic,
				Dialer:            kafkaGoDialer(),
				MinBytes:          1,
				MaxBytes:          1 << 20,
				MaxWait:           250 * time.Millisecond,
				GroupBalancers:    []kafka.GroupBalancer{balancer},
				HeartbeatInterval: 300 * time.Millisecond,
				SessionTimeout:    6 * time.Second,
				RebalanceTimeout:  10 * time.Second,
				JoinGroupBackoff:  200 * time.Millisecond,
				CommitInterval:    0, // CommitMessages commits before it returns
				StartOffset:       kafka.FirstOffset,
				ReadBackoffMin:    50 * time.Millisecond,
				ReadBackoffMax:    500 * time.Millisecond,
				MaxAttempts:       50,
				Logger:            kafka.LoggerFunc(func(format string, args ...any) { kafkaGoAssignment(l, name, format, args) }),
				ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) {
					l.note("kafka-go %s: "+strings.TrimSpace(format), append([]any{name}, args...)...)
				}),
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				// kafka-go can hand out, after a rebalance, messages it
				// fetched before it (its queue is not drained:
				// segmentio/kafka-go#1398), and CommitMessages commits
				// whatever offset it is given under the current
				// generation (it also ignores the error codes in
				// OffsetCommit responses), so a late message would move
				// the committed offset backwards, its own or that of
				// the partition's new owner. As an application should,
				// the member commits only partitions it holds now, and
				// never below its own last commit of a partition.
				highest := map[int]int64{}
				for {
					m, err := r.FetchMessage(ctx)
					if err != nil {
						if ctx.Err() != nil {
							return
						}
						l.note("kafka-go %s: fetch: %v", name, err)
						time.Sleep(50 * time.Millisecond)
						continue
					}
					l.process(name, int32(m.Partition), m.Offset, string(m.Value))
					if !l.holds(name, int32(m.Partition)) {
						l.note("kafka-go %s: not committing %d/%d, a partition it does not hold now", name, m.Partition, m.Offset+1)
						continue
					}
					if h, ok := highest[m.Partition]; ok && m.Offset < h {
						l.note("kafka-go %s: not committing %d/%d, below its commit of %d", name, m.Partition, m.Offset+1, h+1)
						continue
					}
					highest[m.Partition] = m.Offset
					cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
					if err := r.CommitMessages(cctx, m); err != nil {
						l.note("kafka-go %s: commit %d/%d: %v", name, m.Partition, m.Offset, err)
					}
					ccancel()
				}
			}()
			var once sync.Once
			leave := func() {
				once.Do(func() {
					// Stop processing after the message in hand is
					// committed, then leave the group.
					cancel()
					<-done
					if err := r.Close(); err != nil && !errors.Is(err, context.Canceled) {
						l.note("kafka-go %s: close: %v", name, err)
					}
				})
			}
			t.Cleanup(leave)
			return leave
		},
	}
}

// kafkaGoAssignment follows a group Reader's assignment through its log:
// the Reader logs the partitions it subscribes to when a generation starts
// and stops its commit loop when the generation ends. The subscription is a
// map keyed by an unexported struct, read by reflection.
func kafkaGoAssignment(l *groupLedger, member, format string, args []any) {
	switch {
	case strings.HasPrefix(format, "subscribed to topics and partitions") && len(args) == 1:
		m := reflect.ValueOf(args[0])
		if m.Kind() != reflect.Map {
			l.note("kafka-go %s: subscription logged as %T", member, args[0])
			return
		}
		var ps []int32
		for _, k := range m.MapKeys() {
			ps = append(ps, int32(k.FieldByName("partition").Int()))
		}
		l.assign(member, ps)
	case strings.HasPrefix(format, "stopped commit for group"):
		l.assign(member, nil)
	}
}

package broker

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaClientID is the client id of every sarama client in these tests.
const saramaClientID = "compat-sarama"

// TestSaramaCompat runs the compatibility scenarios with IBM/sarama:
// its partitioners against Kafka's murmur2 mapping; an idempotent producer
// with every codec, read back by sarama's partition consumer; a consumer
// group rebalancing as a member joins and leaves, with the eager range and
// the cooperative-sticky strategies; and a broker restart while the group
// consumes and the producer produces.
func TestSaramaCompat(t *testing.T) {
	vs := newNegotiatedVersions()
	b, dir := startCompatBroker(t, vs)
	addr := b.Addr().String()
	defer vs.report(t, saramaClientID)

	t.Run("partitioner", testSaramaPartitioners)
	t.Run("codecs", func(t *testing.T) {
		runCompatCodecs(t, saramaClient(sarama.NewBalanceStrategyRange()), addr)
	})
	t.Run("group", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			strategy sarama.BalanceStrategy
		}{
			{"range", sarama.NewBalanceStrategyRange()},
			{"cooperative-sticky", sarama.NewBalanceStrategyCooperativeSticky()},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := "sarama-group-" + tc.name
				runCompatGroup(t, saramaClient(tc.strategy), addr, name, name)
			})
		}
	})
	// Last: it replaces the broker.
	t.Run("restart", func(t *testing.T) {
		runCompatRestart(t, saramaClient(sarama.NewBalanceStrategyRange()), vs, b, dir, "sarama-restart", "sarama-restart")
	})
}

// testSaramaPartitioners finds which of sarama's key partitioners maps
// keys as Kafka's default partitioner (murmur2) does. sarama's default is
// FNV-1a, so a sarama producer with default settings puts a device on
// another partition than franz-go or the Java client. (librdkafka's default,
// consistent_random, is CRC-32 and differs too; it matches murmur2 only
// with partitioner=murmur2_random.)
func testSaramaPartitioners(t *testing.T) {
	if got, want := reflect.ValueOf(sarama.NewConfig().Producer.Partitioner).Pointer(), reflect.ValueOf(sarama.NewHashPartitioner).Pointer(); got != want {
		t.Errorf("sarama's default partitioner is no longer NewHashPartitioner (FNV-1a)")
	}
	for _, tc := range []struct {
		name  string
		ctor  sarama.PartitionerConstructor
		kafka bool // maps keys as Kafka's murmur2 partitioner
	}{
		{"NewMurmur2Partitioner", sarama.NewMurmur2Partitioner, true},
		{"NewHashPartitioner (the default, FNV-1a)", sarama.NewHashPartitioner, false},
		{"NewReferenceHashPartitioner (FNV-1a, Java's abs)", sarama.NewReferenceHashPartitioner, false},
		{"NewConsistentCRCHashPartitioner (CRC-32, librdkafka consistent)", sarama.NewConsistentCRCHashPartitioner, false},
	} {
		p := tc.ctor("t")
		match, total := partitionerMatch(t, func(key string, n int) int32 {
			got, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, int32(n))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			return got
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

func saramaCodec(t *testing.T, name string) sarama.CompressionCodec {
	t.Helper()
	for _, c := range []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD} {
		if c.String() == name {
			return c
		}
	}
	t.Fatalf("sarama has no codec %q", name)
	return 0
}

// saramaConfig is the base configuration: timeouts short enough for tests,
// retries long enough to ride out a broker restart.
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = saramaClientID
	// The Kafka version sarama assumes: it picks each request's version
	// for it, then lowers that to what ApiVersions advertised. (MaxVersion,
	// 4.3.1, negotiates the same versions here.)
	cfg.Version = sarama.V3_6_0_0
	cfg.Net.DialTimeout = 2 * time.Second
	cfg.Net.ReadTimeout = 10 * time.Second
	cfg.Net.WriteTimeout = 5 * time.Second
	cfg.Metadata.Retry.Max = 50
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

// saramaClient adapts sarama: an idempotent SyncProducer (acks=all, one
// request in flight, murmur2 partitioner), a partition consumer per
// partition for reading back, and a ConsumerGroup with strategy whose
// handler marks each processed message (auto-committed every 100 ms and
// when a claim ends).
func saramaClient(strategy sarama.BalanceStrategy) compatClient {
	return compatClient{
		id:         saramaClientID,
		idempotent: true,
		codecs:     []string{"none", "gzip", "snappy", "lz4", "zstd"},
		producer: func(t *testing.T, addr, topic, codec string) func(context.Context, []compatRecord) error {
			cfg := saramaConfig()
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Return.Successes = true
			cfg.Producer.Retry.Max = 100
			cfg.Producer.Retry.Backoff = 100 * time.Millisecond
			cfg.Producer.Timeout = 5 * time.Second
			cfg.Producer.Compression = saramaCodec(t, codec)
			cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
			p, err := sarama.NewSyncProducer([]string{addr}, cfg)
			if err != nil {
				t.Fatalf("sarama producer: %v", err)
			}
			t.Cleanup(func() { p.Close() })
			return func(_ context.Context, recs []compatRecord) error {
				msgs := make([]*sarama.ProducerMessage, len(recs))
				for i, r := range recs {
					msgs[i] = &sarama.ProducerMessage{
						Topic: topic,
						Key:   sarama.StringEncoder(r.key),
						Value: sarama.StringEncoder(r.value),
					}
					for k, v := range r.headers {
						msgs[i].Headers = append(msgs[i].Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
					}
				}
				return p.SendMessages(msgs)
			}
		},
		read: func(t *testing.T, addr, topic string, ends map[int32]int64) []compatRecord {
			cfg := saramaConfig()
			cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
			c, err := sarama.NewConsumer([]string{addr}, cfg)
			if err != nil {
				t.Fatalf("sarama consumer: %v", err)
			}
			defer c.Close()
			var out []compatRecord
			for p := int32(0); p < int32(len(ends)); p++ {
				if ends[p] == 0 {
					continue
				}
				pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					t.Fatalf("sarama consume %s/%d: %v", topic, p, err)
				}
				timeout := time.After(20 * time.Second)
				for next := int64(0); next < ends[p]; {
					select {
					case m := <-pc.Messages():
						r := compatRecord{key: string(m.Key), value: string(m.Value), partition: m.Partition, offset: m.Offset, headers: map[string]string{}}
						for _, h := range m.Headers {
							r.headers[string(h.Key)] = string(h.Value)
						}
						out = append(out, r)
						next = m.Offset + 1
					case err := <-pc.Errors():
						t.Fatalf("sarama consume %s/%d: %v", topic, p, err)
					case <-timeout:
						t.Fatalf("sarama consume %s/%d: at offset %d of %d after 20s", topic, p, next, ends[p])
					}
				}
				pc.AsyncClose()
			}
			return out
		},
		member: func(t *testing.T, addr, topic, group, name string, l *groupLedger) func() {
			cfg := saramaConfig()
			cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
			cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
			cfg.Consumer.Return.Errors = true
			cfg.Consumer.MaxWaitTime = 250 * time.Millisecond
			cfg.Consumer.Retry.Backoff = 100 * time.Millisecond
			cfg.Consumer.Group.Session.Timeout = 6 * time.Second
			cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
			cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
			cfg.Consumer.Group.Rebalance.Retry.Max = 50
			cfg.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
			cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategy}
			cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
			if err != nil {
				t.Fatalf("sarama consumer group: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errorsDone := make(chan struct{})
			go func() {
				defer close(errorsDone)
				for err := range cg.Errors() {
					l.note("sarama %s: %v", name, err)
				}
			}()
			consuming := make(chan struct{})
			go func() {
				defer close(consuming)
				h := saramaHandler{name: name, l: l}
				for ctx.Err() == nil {
					if err := cg.Consume(ctx, []string{topic}, h); err != nil {
						if errors.Is(err, sarama.ErrClosedConsumerGroup) {
							return
						}
						l.note("sarama %s: consume: %v", name, err)
						select {
						case <-ctx.Done():
						case <-time.After(100 * time.Millisecond):
						}
					}
				}
			}()
			var once sync.Once
			leave := func() {
				once.Do(func() {
					// End the session first (the claims return, marked
					// offsets are committed), then leave the group.
					cancel()
					<-consuming
					if err := cg.Close(); err != nil {
						l.note("sarama %s: close: %v", name, err)
					}
					<-errorsDone
				})
			}
			t.Cleanup(leave)
			return leave
		},
	}
}

// saramaHandler processes a member's claims into the ledger: it holds a
// partition exactly while its ConsumeClaim runs.
type saramaHandler struct {
	name string
	l    *groupLedger
}

func (h saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	h.l.acquire(h.name, claim.Partition())
	defer h.l.release(h.name, claim.Partition())
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.l.process(h.name, m.Partition, m.Offset, string(m.Value))
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

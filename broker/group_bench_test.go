package broker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Consumer-group benchmarks, ours against kfake in the same run:
//
//	go test -run '^$' -bench 'ConsumerGroup' -benchtime 3x ./broker/
//
// Both brokers run in this process (kfake without a data dir: its group
// coordinator is what is compared; ours fsyncs commits). Ours runs with no
// initial rebalance delay, as kfake has none. Clients heartbeat every 100 ms
// on both, so the time to stable measures the coordinator, not franz-go's
// default 3 s heartbeat.

const (
	benchGroupPartitions = 12
	benchGroupRecords    = 1_000_000
)

// benchGroupSeq makes group names unique across benchmark runs (Go runs a
// benchmark function more than once), so no run joins an old run's group.
var benchGroupSeq atomic.Int64

func benchGroupName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, benchGroupSeq.Add(1))
}

// benchBrokers starts each broker kind with a 12-partition topic holding
// benchGroupRecords records of 100 B, and returns their addresses.
func benchBrokers(b *testing.B) map[string]string {
	b.Helper()
	ours := startBroker(b, "", fastGroups)
	ref, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ref.Close)
	addrs := map[string]string{"ours": ours.Addr().String(), "kfake": ref.ListenAddrs()[0]}
	for _, addr := range addrs {
		createTopic(b, addr, "bench", benchGroupPartitions, nil)
		p := newClient(b, addr, kgo.DefaultProduceTopic("bench"), kgo.ProducerBatchCompression(kgo.NoCompression()))
		value := make([]byte, 100)
		for i := 0; i < benchGroupRecords; i++ {
			p.Produce(context.Background(), &kgo.Record{Key: []byte(fmt.Sprint(i % 997)), Value: value}, nil)
		}
		if err := p.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return addrs
}

// benchMember is a group member that counts records and tracks what it owns.
type benchMember struct {
	cl   *kgo.Client
	mu   sync.Mutex
	owns map[int32]bool
}

func newBenchMember(b *testing.B, addr, group string) *benchMember {
	m := &benchMember{owns: map[int32]bool{}}
	update := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range ps["bench"] {
				if add {
					m.owns[p] = true
				} else {
					delete(m.owns, p)
				}
			}
		}
	}
	m.cl = newClient(b, addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics("bench"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(100*time.Millisecond), kgo.AutoCommitInterval(200*time.Millisecond),
		kgo.OnPartitionsAssigned(update(true)), kgo.OnPartitionsRevoked(update(false)), kgo.OnPartitionsLost(update(false)))
	return m
}

func (m *benchMember) owned() map[int32]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[int32]bool, len(m.owns))
	for p := range m.owns {
		out[p] = true
	}
	return out
}

// BenchmarkConsumerGroupThroughput: three members of a new group consume
// every record from the start; rec/s counts records over the wall time
// from the members' creation to the last record.
func BenchmarkConsumerGroupThroughput(b *testing.B) {
	addrs := benchBrokers(b)
	for _, kind := range []string{"ours", "kfake"} {
		b.Run(kind, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				group := benchGroupName("tp")
				var consumed atomic.Int64
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				start := time.Now()
				var wg sync.WaitGroup
				var members []*benchMember
				for j := 0; j < 3; j++ {
					m := newBenchMember(b, addrs[kind], group)
					members = append(members, m)
					wg.Add(1)
					go func() {
						defer wg.Done()
						for consumed.Load() < benchGroupRecords && ctx.Err() == nil {
							if consumed.Add(int64(m.cl.PollFetches(ctx).NumRecords())) >= benchGroupRecords {
								cancel() // wake the members still waiting for records
							}
						}
					}()
				}
				wg.Wait()
				total += time.Since(start)
				cancel()
				for _, m := range members {
					m.cl.Close()
				}
				if consumed.Load() < benchGroupRecords {
					b.Fatalf("consumed %d of %d records", consumed.Load(), benchGroupRecords)
				}
			}
			b.ReportMetric(float64(benchGroupRecords)*float64(b.N)/total.Seconds(), "rec/s")
		})
	}
}

// BenchmarkConsumerGroupJoinToStable: with two members stable, a third
// joins; the time runs from its creation until the three own disjoint
// assignments covering all 12 partitions (cooperative-sticky: two
// rebalances).
func BenchmarkConsumerGroupJoinToStable(b *testing.B) {
	addrs := benchBrokers(b)
	for _, kind := range []string{"ours", "kfake"} {
		b.Run(kind, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				group := benchGroupName("js")
				ms := []*benchMember{newBenchMember(b, addrs[kind], group), newBenchMember(b, addrs[kind], group)}
				// stable: every member owns something, and together
				// they own each partition exactly once.
				stable := func(want int) bool {
					n, union := 0, map[int32]bool{}
					for _, m := range ms {
						owns := m.owned()
						if len(owns) == 0 {
							return false
						}
						n += len(owns)
						for p := range owns {
							union[p] = true
						}
					}
					return len(ms) == want && n == benchGroupPartitions && len(union) == benchGroupPartitions
				}
				pollAll := func(until func() bool) {
					deadline := time.Now().Add(time.Minute)
					for !until() {
						if time.Now().After(deadline) {
							b.Fatal("group did not become stable within a minute")
						}
						var wg sync.WaitGroup
						for _, m := range ms {
							wg.Add(1)
							go func() {
								defer wg.Done()
								ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
								m.cl.PollFetches(ctx)
								cancel()
							}()
						}
						wg.Wait()
					}
				}
				pollAll(func() bool { return stable(2) })
				start := time.Now()
				ms = append(ms, newBenchMember(b, addrs[kind], group))
				pollAll(func() bool { return stable(3) })
				total += time.Since(start)
				for _, m := range ms {
					m.cl.Close()
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/join")
		})
	}
}

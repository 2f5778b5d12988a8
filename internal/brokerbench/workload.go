package brokerbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/benchkit"
)

// benchTopic is the topic every run creates on its fresh broker.
const benchTopic = "bench"

// numKeys is how many distinct record keys (device ids) the producers
// cycle through; murmur2 spreads them over the partitions.
const numKeys = 1024

// warmupRecords are produced synchronously before any timing starts, so
// that connecting, metadata and InitProducerId are not timed.
const warmupRecords = 100

// batchMaxBytes is the producer's ProducerBatchMaxBytes, below both
// brokers' default max.message.bytes (1048588).
const batchMaxBytes = 1 << 20

// scenario is one produce-then-consume workload.
type scenario struct {
	ValueBytes int
	Partitions int
	Records    int // timed records, after the warm-up
}

// String names the scenario in tables: "100 B × 8 p".
func (s scenario) String() string { return fmt.Sprintf("%d B × %d p", s.ValueBytes, s.Partitions) }

// slug names the scenario in file names: "100b-8p".
func (s scenario) slug() string { return fmt.Sprintf("%db-%dp", s.ValueBytes, s.Partitions) }

// autoBuffer is the producer's MaxBufferedRecords when -buffer is 0: room
// for every partition to have five full batches in flight (kgo's limit for
// an idempotent producer) and a sixth filling, and never less than kgo's
// default of 50,000. An estimated 30 bytes of per-record overhead (key,
// varints) is counted with the value.
func autoBuffer(valueBytes, partitions int) int {
	perBatch := batchMaxBytes / (valueBytes + 30)
	return max(perBatch*partitions*6, 50_000)
}

// records holds the keys and the value every produced record shares. The
// value is random (fixed seed) and the producer does not compress, so the
// brokers store and fsync every byte.
type records struct {
	keys  [][]byte
	value []byte
}

func newRecords(valueBytes int) records {
	r := rand.New(rand.NewPCG(1, uint64(valueBytes)))
	rs := records{keys: make([][]byte, numKeys), value: make([]byte, valueBytes)}
	for i := range rs.keys {
		rs.keys[i] = fmt.Appendf(nil, "device-%04d", i)
	}
	for i := range rs.value {
		rs.value[i] = byte(r.Uint32())
	}
	return rs
}

// record returns the i-th record to produce.
func (rs records) record(i int) *kgo.Record {
	return &kgo.Record{Key: rs.keys[i%numKeys], Value: rs.value}
}

// newProducer returns a franz-go producer as the benchmark configures it:
// acks=all, idempotent (kgo's default), default linger (10 ms), kgo's
// default partitioner (murmur2 of the key, as Kafka), 1 MiB batches, no
// compression, buffer records at most; extra options come last.
func newProducer(ep endpoint, buffer int, extra ...kgo.Opt) (*kgo.Client, error) {
	return ep.client(append([]kgo.Opt{
		kgo.DefaultProduceTopic(benchTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(batchMaxBytes),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedRecords(buffer),
	}, extra...)...)
}

// lingerVariant is a producer linger the fixed-rate latency runs use.
type lingerVariant struct {
	Name string
	opts []kgo.Opt
}

// latencyLingers are the lingers of the fixed-rate runs: kgo's default,
// which is what a gateway with default settings sees, and none, which leaves
// mostly what the broker adds (its fsync before the ack).
var latencyLingers = []lingerVariant{
	{Name: "default (10 ms)"},
	{Name: "0", opts: []kgo.Opt{kgo.ProducerLinger(0)}},
}

// createTopic creates topic with the given partitions and topic configs
// (nil: the broker's defaults).
func createTopic(ctx context.Context, ep endpoint, topic string, partitions int, configs map[string]*string) error {
	cl, err := ep.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, configs, topic)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if resp.Err != nil {
		return fmt.Errorf("create topic %s: %w (%s)", topic, resp.Err, resp.ErrMessage)
	}
	return nil
}

// topicWait bounds how long waitTopic waits.
const topicWait = 30 * time.Second

// waitTopic returns once the broker's Metadata lists topic with the given
// partitions, each with a leader, and ListOffsets answers for each without
// an error. Apache Kafka answers CreateTopics before its broker's metadata
// has the topic, and lists a leader a moment before that leader serves the
// partition; a raw produce (the capacity scenarios) fails in between. The
// Metadata request goes to the broker itself, not through kadm's cached
// metadata.
func waitTopic(ctx context.Context, ep endpoint, topic string, partitions int) error {
	cl, err := ep.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, topicWait)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	last := errors.New("not listed")
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			last = topicReady(resp, topic, partitions)
			if last == nil {
				if last = offsetsListed(ctx, ep, topic); last == nil {
					return nil
				}
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s not served within %v: %w", topic, topicWait, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// offsetsListed reports the first error ListOffsets gives for a partition
// of topic, asked with a new client (which has no cached leaders).
func offsetsListed(ctx context.Context, ep endpoint, topic string) error {
	cl, err := ep.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	return ends.Error()
}

// topicReady reports why a Metadata response does not show topic with the
// given partitions, each with a leader; nil if it does.
func topicReady(resp *kmsg.MetadataResponse, topic string, partitions int) error {
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return err
		}
		if len(t.Partitions) != partitions {
			return fmt.Errorf("%d partitions listed, want %d", len(t.Partitions), partitions)
		}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, err)
			}
			if p.Leader < 0 {
				return fmt.Errorf("partition %d has no leader", p.Partition)
			}
		}
		return nil
	}
	return errors.New("not listed")
}

// partitionCounts counts acknowledged records per partition; promises may
// run concurrently.
type partitionCounts []atomic.Int64

func (pc partitionCounts) snapshot() []int64 {
	out := make([]int64, len(pc))
	for i := range pc {
		out[i] = pc[i].Load()
	}
	return out
}

// wireStats counts what a producer put on the wire, through kgo hooks:
// produce requests and the record batches they carried. The counters only
// grow; a phase takes the difference.
type wireStats struct {
	requests, batches, batchRecords atomic.Int64
}

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (s *wireStats) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 0 && err == nil { // Produce
		s.requests.Add(1)
	}
}

// OnProduceBatchWritten implements kgo.HookProduceBatchWritten.
func (s *wireStats) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	s.batches.Add(1)
	s.batchRecords.Add(int64(m.NumRecords))
}

// wireCounts is a snapshot of wireStats, or the difference of two.
type wireCounts struct{ Requests, Batches, BatchRecords int64 }

func (s *wireStats) snapshot() wireCounts {
	return wireCounts{s.requests.Load(), s.batches.Load(), s.batchRecords.Load()}
}

func (c wireCounts) minus(o wireCounts) wireCounts {
	return wireCounts{c.Requests - o.Requests, c.Batches - o.Batches, c.BatchRecords - o.BatchRecords}
}

// recordsPerBatch is the mean number of records in a produced batch.
func (c wireCounts) recordsPerBatch() float64 {
	if c.Batches == 0 {
		return 0
	}
	return float64(c.BatchRecords) / float64(c.Batches)
}

// producer produces one scenario's records to one broker and counts what
// was acknowledged.
type producer struct {
	cl      *kgo.Client
	wire    *wireStats
	recs    records
	counts  partitionCounts
	failed  atomic.Int64
	lastErr atomic.Pointer[error]
	next    int // index of the next record, for key rotation
}

func newBenchProducer(ep endpoint, sc scenario, buffer int, extra ...kgo.Opt) (*producer, error) {
	wire := new(wireStats)
	cl, err := newProducer(ep, buffer, append(extra, kgo.WithHooks(wire))...)
	if err != nil {
		return nil, err
	}
	return &producer{cl: cl, wire: wire, recs: newRecords(sc.ValueBytes), counts: make(partitionCounts, sc.Partitions)}, nil
}

func (p *producer) close() { p.cl.Close() }

// ack is the bookkeeping part of every promise.
func (p *producer) ack(r *kgo.Record, err error) {
	if err != nil {
		p.failed.Add(1)
		p.lastErr.Store(&err)
		return
	}
	if int(r.Partition) < len(p.counts) {
		p.counts[r.Partition].Add(1)
	}
}

// err reports a failed record, if any.
func (p *producer) err() error {
	if n := p.failed.Load(); n > 0 {
		return fmt.Errorf("%d records failed to produce; last error: %w", n, *p.lastErr.Load())
	}
	return nil
}

// warmup produces warmupRecords synchronously.
func (p *producer) warmup(ctx context.Context) error {
	for range warmupRecords {
		p.cl.Produce(ctx, p.recs.record(p.next), p.ack)
		p.next++
	}
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	return p.err()
}

// produceResult is one timed produce phase.
type produceResult struct {
	Records  int
	Elapsed  time.Duration // first Produce call to last ack
	P50, P99 time.Duration // ack latency, Produce call to promise, of every latencySampleEvery-th record
	Wire     wireCounts    // produce requests and batches sent
	phaseCPU
}

func (r produceResult) recPerSec() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// latencySampleEvery is how often produceFull times a record's ack: every
// 8th record, so that timing (a clock read and a closure per timed record)
// costs the client, which shares the machine with the broker, little.
const latencySampleEvery = 8

// produceFull produces n records as fast as the producer's buffer allows
// and measures the ack latency of every latencySampleEvery-th record. pid
// is the broker's process.
func (p *producer) produceFull(ctx context.Context, n, pid int) (produceResult, error) {
	lat := make([]time.Duration, (n+latencySampleEvery-1)/latencySampleEvery)
	ack := p.ack // one method value for all untimed records
	wire0 := p.wire.snapshot()
	meter := startCPU(pid)
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		if i%latencySampleEvery != 0 {
			p.cl.Produce(ctx, p.recs.record(p.next), ack)
			p.next++
			continue
		}
		t := time.Now()
		p.cl.Produce(ctx, p.recs.record(p.next), func(r *kgo.Record, err error) {
			lat[i/latencySampleEvery] = time.Since(t)
			p.ack(r, err)
		})
		p.next++
	}
	if err := p.cl.Flush(ctx); err != nil {
		return produceResult{}, fmt.Errorf("produce: %w", err)
	}
	elapsed := time.Since(start)
	cpu, err := meter.stop()
	if err != nil {
		return produceResult{}, err
	}
	if err := p.err(); err != nil {
		return produceResult{}, err
	}
	slices.Sort(lat)
	return produceResult{
		Records:  n,
		Elapsed:  elapsed,
		P50:      benchkit.Percentile(lat, 50),
		P99:      benchkit.Percentile(lat, 99),
		Wire:     p.wire.snapshot().minus(wire0),
		phaseCPU: cpu,
	}, nil
}

// latencyResult is one fixed-rate latency run.
type latencyResult struct {
	Records        int
	Offered        int     // records/s asked for
	Achieved       float64 // records/s actually offered
	P50, P99, P999 time.Duration
	Max            time.Duration
	phaseCPU
}

// pacingTick is how often the fixed-rate producer wakes to send the records
// that have come due.
const pacingTick = time.Millisecond

// produceAtRate offers rate records/s for d and measures each record's ack
// latency from the moment it was due (not when it was sent), so a stall of
// the sender is not hidden (no coordinated omission).
func (p *producer) produceAtRate(ctx context.Context, rate int, d time.Duration, pid int) (latencyResult, error) {
	n := max(int(float64(rate)*d.Seconds()), 1)
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	meter := startCPU(pid)
	start := time.Now()
	ticker := time.NewTicker(pacingTick)
	defer ticker.Stop()
	sent := 0
	for sent < n { // each tick sends what is due; the ticker bounds the loop to about d
		due := min(int(time.Since(start)/interval)+1, n)
		for ; sent < due; sent++ {
			i, t := sent, start.Add(time.Duration(sent)*interval)
			p.cl.Produce(ctx, p.recs.record(p.next), func(r *kgo.Record, err error) {
				lat[i] = time.Since(t)
				p.ack(r, err)
			})
			p.next++
		}
		if sent == n {
			break
		}
		select {
		case <-ctx.Done():
			return latencyResult{}, ctx.Err()
		case <-ticker.C:
		}
	}
	offered := time.Since(start)
	if err := p.cl.Flush(ctx); err != nil {
		return latencyResult{}, fmt.Errorf("produce: %w", err)
	}
	cpu, err := meter.stop()
	if err != nil {
		return latencyResult{}, err
	}
	if err := p.err(); err != nil {
		return latencyResult{}, err
	}
	slices.Sort(lat)
	return latencyResult{
		Records:  n,
		Offered:  rate,
		Achieved: float64(n) / offered.Seconds(),
		P50:      benchkit.Percentile(lat, 50),
		P99:      benchkit.Percentile(lat, 99),
		P999:     benchkit.Percentile(lat, 99.9),
		Max:      lat[len(lat)-1],
		phaseCPU: cpu,
	}, nil
}

// checkEndOffsets verifies that every partition's end offset (high
// watermark) equals the records acknowledged to it: nothing lost, nothing
// duplicated.
func checkEndOffsets(ctx context.Context, ep endpoint, want []int64) error {
	cl, err := ep.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, benchTopic)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	for p, w := range want {
		o, ok := ends.Lookup(benchTopic, int32(p))
		if !ok {
			return fmt.Errorf("partition %d: no end offset listed", p)
		}
		if o.Err != nil {
			return fmt.Errorf("partition %d: end offset: %w", p, o.Err)
		}
		if o.Offset != w {
			return fmt.Errorf("partition %d: end offset %d, but %d records were acknowledged", p, o.Offset, w)
		}
	}
	return nil
}

// consumeResult is one timed consume phase.
type consumeResult struct {
	Records int
	Elapsed time.Duration // client creation to last record
	phaseCPU
}

func (r consumeResult) recPerSec() float64 {
	if r.Records == 0 {
		return 0
	}
	return float64(r.Records) / r.Elapsed.Seconds()
}

// consumeAll consumes every partition from offset 0 with one franz-go
// consumer (direct partition assignment) until it has read want[p] records
// of partition p, checking that offsets are contiguous and every value has
// valueBytes bytes.
func consumeAll(ctx context.Context, ep endpoint, want []int64, valueBytes, pid int) (consumeResult, error) {
	assign := map[int32]kgo.Offset{}
	var total int64
	for p, w := range want {
		assign[int32(p)] = kgo.NewOffset().At(0)
		total += w
	}
	meter := startCPU(pid)
	start := time.Now()
	cl, err := ep.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{benchTopic: assign}))
	if err != nil {
		return consumeResult{}, err
	}
	defer cl.Close()
	next := make([]int64, len(want))
	var got int64
	var bad error
	for got < total { // each poll returns data or ends with ctx, which has a deadline
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return consumeResult{}, fmt.Errorf("consume: %d of %d records after %v: %w", got, total, time.Since(start).Round(time.Millisecond), err)
		}
		for _, fe := range fetches.Errors() {
			return consumeResult{}, fmt.Errorf("consume partition %d: %w", fe.Partition, fe.Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			p := int(r.Partition)
			switch {
			case bad != nil:
			case p >= len(want):
				bad = fmt.Errorf("record from partition %d, topic has %d", p, len(want))
			case r.Offset != next[p]:
				bad = fmt.Errorf("partition %d: offset %d, want %d (a gap or a duplicate)", p, r.Offset, next[p])
			case next[p] >= want[p]:
				bad = fmt.Errorf("partition %d: record at offset %d beyond the %d acknowledged", p, r.Offset, want[p])
			case len(r.Value) != valueBytes:
				bad = fmt.Errorf("partition %d offset %d: value of %d bytes, want %d", p, r.Offset, len(r.Value), valueBytes)
			default:
				next[p]++
				got++
			}
		})
		if bad != nil {
			return consumeResult{}, bad
		}
	}
	elapsed := time.Since(start)
	cpu, err := meter.stop()
	if err != nil {
		return consumeResult{}, err
	}
	return consumeResult{Records: int(got), Elapsed: elapsed, phaseCPU: cpu}, nil
}

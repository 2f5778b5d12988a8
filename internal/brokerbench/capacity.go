package brokerbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/benchkit"
)

// The capacity scenarios measure what a broker itself absorbs when many
// producers write at once, as many edge gateways do into one broker: P
// producers, each its own franz-go client and connection, send raw Produce
// requests (acks=-1) carrying one pre-encoded record batch each and keep up
// to K of them in flight. Encoding is done once, so the client's CPU per
// record is small and the broker, not the client, sets the pace.

// capacityScenario is one many-producers workload.
type capacityScenario struct {
	ValueBytes int
	Partitions int
	Records    int // timed records, after the warm-up
}

// String names the scenario in tables: "100 B × 8 p".
func (s capacityScenario) String() string {
	return fmt.Sprintf("%d B × %d p", s.ValueBytes, s.Partitions)
}

// slug names the scenario in file names: "capacity-100b-8p".
func (s capacityScenario) slug() string {
	return fmt.Sprintf("capacity-%db-%dp", s.ValueBytes, s.Partitions)
}

// capacityRun is one capacity scenario against one fresh broker.
type capacityRun struct {
	Kind     string
	Scenario capacityScenario
	Run      int
	Result   capacityResult
}

// capacityResult is one timed phase of the load generator.
type capacityResult struct {
	Records   int           // records acknowledged in the timed phase
	Requests  int           // produce requests acknowledged in the timed phase
	Elapsed   time.Duration // start of the first request to the last ack
	P50, P99  time.Duration // ack latency of every request: send to response
	Producers int
	InFlight  int
	phaseCPU
}

func (r capacityResult) recPerSec() float64 { return float64(r.Records) / r.Elapsed.Seconds() }
func (r capacityResult) reqPerSec() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// crc32c is the Castagnoli table of RecordBatch v2 checksums.
var crc32c = crc32.MakeTable(crc32.Castagnoli)

// encodeBatch returns a RecordBatch v2 of n records, compressed with codec,
// whose values are valueBytes random bytes (fixed seed) and whose keys cycle
// through numKeys device ids from firstKey. It is non-idempotent (producer
// id -1, base sequence -1) and starts at offset 0, so the same bytes may be
// produced any number of times: the broker assigns the base offset and
// stores the rest as sent.
func encodeBatch(n, valueBytes, firstKey int, codec kgo.CompressionCodec) []byte {
	r := rand.New(rand.NewPCG(2, uint64(valueBytes)))
	value := make([]byte, valueBytes)
	for i := range value {
		value[i] = byte(r.Uint32())
	}
	var recs []byte
	for i := range n {
		rec := kmsg.Record{
			OffsetDelta: int32(i),
			Key:         fmt.Appendf(nil, "device-%04d", (firstKey+i)%numKeys),
			Value:       value,
		}
		// Length counts what follows it; with Length 0 the varint
		// takes one byte.
		rec.Length = int32(len(rec.AppendTo(nil)) - 1)
		recs = rec.AppendTo(recs)
	}
	var attrs int16
	if c, err := kgo.DefaultCompressor(codec); err == nil && c != nil {
		var used kgo.CompressionCodecType
		recs, used = c.Compress(new(bytes.Buffer), recs)
		attrs = int16(used)
	}
	now := time.Now().UnixMilli()
	batch := kmsg.RecordBatch{
		Attributes:           attrs,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(n - 1),
		FirstTimestamp:       now,
		MaxTimestamp:         now,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(n),
		Records:              recs,
	}
	raw := batch.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))               // batchLength: after itself
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32c)) // CRC: attributes to the end
	return raw
}

// loadGen is the capacity scenarios' load generator: one franz-go client
// (one connection) per producer, each producing one pre-encoded batch per
// request to the partition of its index modulo the partitions.
type loadGen struct {
	sc        capacityScenario
	inFlight  int
	batchRecs int
	clients   []*kgo.Client
	batches   [][]byte // per producer
	topicID   [16]byte // for Produce v13+, which names topics by id
	counts    partitionCounts
}

// newLoadGen connects producers clients to the endpoint and encodes each
// one's batch of batchRecs records.
func newLoadGen(ctx context.Context, ep endpoint, sc capacityScenario, producers, inFlight, batchRecs int, codec kgo.CompressionCodec) (*loadGen, error) {
	g := &loadGen{sc: sc, inFlight: inFlight, batchRecs: batchRecs, counts: make(partitionCounts, sc.Partitions)}
	for i := range producers {
		cl, err := ep.client(kgo.RequiredAcks(kgo.AllISRAcks())) // must match the requests' acks
		if err != nil {
			g.close()
			return nil, err
		}
		g.clients = append(g.clients, cl)
		g.batches = append(g.batches, encodeBatch(batchRecs, sc.ValueBytes, i*batchRecs, codec))
	}
	topics, err := kadm.NewClient(g.clients[0]).ListTopics(ctx, benchTopic)
	if err != nil {
		g.close()
		return nil, fmt.Errorf("list topics: %w", err)
	}
	td, ok := topics[benchTopic]
	if !ok || td.Err != nil {
		g.close()
		return nil, fmt.Errorf("topic %s not listed: %v", benchTopic, td.Err)
	}
	g.topicID = td.ID
	return g, nil
}

func (g *loadGen) close() {
	for _, cl := range g.clients {
		cl.Close()
	}
}

// request returns a Produce request of producer i's batch; each sender
// owns one, since kgo sets its version.
func (g *loadGen) request(i int) *kmsg.ProduceRequest {
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = int32(i % g.sc.Partitions)
	rp.Records = g.batches[i]
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = benchTopic
	rt.TopicID = g.topicID
	rt.Partitions = append(rt.Partitions, rp)
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 30_000
	req.Topics = append(req.Topics, rt)
	return req
}

// produce sends req on producer i's client and checks the answer; on
// success it counts the batch's records to its partition.
func (g *loadGen) produce(ctx context.Context, i int, req *kmsg.ProduceRequest) error {
	kresp, err := g.clients[i].Request(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fmt.Errorf("produce response with %d topics, want 1 topic of 1 partition", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		msg := ""
		if p.ErrorMessage != nil {
			msg = ": " + *p.ErrorMessage
		}
		return fmt.Errorf("partition %d: %w%s", p.Partition, err, msg)
	}
	if int(p.Partition) != int(req.Topics[0].Partitions[0].Partition) || p.BaseOffset < 0 {
		return fmt.Errorf("partition %d acknowledged at base offset %d, sent to partition %d", p.Partition, p.BaseOffset, req.Topics[0].Partitions[0].Partition)
	}
	g.counts[p.Partition].Add(int64(g.batchRecs))
	return nil
}

// warmup sends one request per producer, synchronously and untimed, so that
// connecting, ApiVersions and metadata are not timed.
func (g *loadGen) warmup(ctx context.Context) error {
	for i := range g.clients {
		if err := g.produce(ctx, i, g.request(i)); err != nil {
			return fmt.Errorf("producer %d: %w", i, err)
		}
	}
	return nil
}

// run produces at least n records (whole batches) as fast as the broker
// acknowledges them, with inFlight requests outstanding per producer, and
// measures every request's ack latency. pid is the broker's process. The
// first error stops every sender.
func (g *loadGen) run(ctx context.Context, n, pid int) (capacityResult, error) {
	total := int64((n + g.batchRecs - 1) / g.batchRecs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		lats     = make([][]time.Duration, len(g.clients)*g.inFlight)
	)
	per := int(total)/len(lats) + 1
	meter := startCPU(pid)
	start := time.Now()
	for s := range lats {
		i := s % len(g.clients)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := g.request(i)
			lat := make([]time.Duration, 0, per)
			for next.Add(1) <= total {
				t := time.Now()
				if err := g.produce(ctx, i, req); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("producer %d: %w", i, err); cancel() })
					return
				}
				lat = append(lat, time.Since(t))
			}
			lats[s] = lat
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, err := meter.stop()
	if firstErr != nil {
		return capacityResult{}, firstErr
	}
	if err != nil {
		return capacityResult{}, err
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	return capacityResult{
		Records:   len(all) * g.batchRecs,
		Requests:  len(all),
		Elapsed:   elapsed,
		P50:       benchkit.Percentile(all, 50),
		P99:       benchkit.Percentile(all, 99),
		Producers: len(g.clients),
		InFlight:  g.inFlight,
		phaseCPU:  cpu,
	}, nil
}

package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/kafkatest"
	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

const testFactory = "plant-t"

// waitLimit bounds every wait of these tests: a hang fails the test
// instead of the run. Nothing is asserted about how long things take.
const waitLimit = 60 * time.Second

// testLogger logs at warn level and above to stderr with -v, else nothing.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		level := slog.LevelWarn
		if os.Getenv("FACTORYWIRE_TEST_DEBUG") != "" {
			level = slog.LevelDebug
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.DiscardHandler)
}

// startBroker starts our broker over a new directory on 127.0.0.1:0, with
// group rebalances completing as soon as members have joined. The test
// closes it at the end.
func startBroker(t testing.TB) string {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Logger = "127.0.0.1:0", t.TempDir(), testLogger()
	cfg.GroupInitialRebalanceDelay = 0
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatalf("start the broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Addr().String()
}

// forEachTarget runs test against our broker, kfake and Apache Kafka.
func forEachTarget(t *testing.T, test func(t *testing.T, addr string)) {
	kafkatest.ForEachTarget(t, func(t *testing.T) string { return startBroker(t) }, test)
}

// createTopics creates topic -> partitions on the broker at addr.
func createTopics(t testing.TB, addr string, topics map[string]int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	adm := kadm.NewClient(cl)
	for topic, n := range topics {
		resp, err := adm.CreateTopic(ctx, n, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
}

// testConfig is a sink config for the broker at brokerAddr and the
// FerretDB stand-in at mongoURI (time_series false: FerretDB has no
// time-series collections), with quick retries and heartbeats.
func testConfig(brokerAddr, mongoURI string) Config {
	cfg := DefaultConfig()
	cfg.Factories = []string{testFactory}
	cfg.HTTPListen = ""
	cfg.Kafka.Brokers = []string{brokerAddr}
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Kafka.HeartbeatInterval = 300 * time.Millisecond
	cfg.Kafka.RebalanceTimeout = 20 * time.Second
	cfg.MongoDB.URI = mongoURI
	cfg.MongoDB.Database = mongotest.DatabaseName("sink")
	cfg.MongoDB.TimeSeries = false
	cfg.MongoDB.ServerSelectionTimeout = 300 * time.Millisecond
	cfg.Retry = RetryConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, AttemptTimeout: 10 * time.Second}
	cfg.ShutdownTimeout = 20 * time.Second
	return cfg
}

// running is a sink running in this process.
type running struct {
	s    *Sink
	stop context.CancelFunc
	done chan error
}

// startSink starts a sink for cfg; the test stops it at the end if it
// still runs.
func startSink(t testing.TB, cfg Config) *running {
	t.Helper()
	return startSinkOn(t, cfg, nil)
}

// startSinkOn is startSink with the sink's store, MongoDB, seen through
// wrap (nil: as it is).
func startSinkOn(t testing.TB, cfg Config, wrap func(store) store) *running {
	t.Helper()
	s, err := New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		s.pipe.store = wrap(s.pipe.store)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.close(t) })
	return r
}

// close stops the sink as SIGTERM does and waits for Run to return.
func (r *running) close(t testing.TB) {
	t.Helper()
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("sink Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(waitLimit):
		t.Errorf("sink did not stop within %v", waitLimit)
	}
}

// counter returns the value of the counter or gauge name in reg, summed
// over the series whose labels include labels ("k=v").
func counter(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			}
		}
	}
	return total
}

// t0 is the time of the first test sample: recent, so that no sample is
// ahead of the clock by more than max_future_skew, and at the start of a
// minute, so that a test's first 60 samples of a device fall in one
// minute rollup whenever it runs (TestConcerns expects its second batch
// to update the first's).
var t0 = time.Now().Add(-24 * time.Hour).Truncate(time.Minute).UTC()

// testSample is device's sample seq of class, at t0 + seq seconds.
func testSample(class, device string, seq uint64) devices.Sample {
	return devices.Sample{
		Factory: testFactory, Class: class, Device: device,
		Time: t0.Add(time.Duration(seq) * time.Second), Seq: seq,
		Fields: map[string]devices.Value{
			"pressure": devices.Float64Value(float64(seq) + 0.25),
			"cycles":   devices.Uint64Value(seq * 3),
			"running":  devices.BoolValue(seq%2 == 0),
			"mode":     devices.StringValue("auto"),
		},
		Errors: map[string]string{"temperature": "modbus exception 2 (illegal data address)"},
	}
}

// sampleRecord is the record a gateway produces for s.
func sampleRecord(s devices.Sample) *kgo.Record {
	return &kgo.Record{
		Topic:     testFactory + "." + s.Class,
		Key:       []byte(s.Device),
		Value:     s.AppendJSON(nil),
		Timestamp: s.Time,
		Headers:   []kgo.RecordHeader{{Key: "content-type", Value: []byte(devices.ContentType)}},
	}
}

// producer produces records to the broker at addr, as a gateway does
// (acks=all, idempotent, key = device: murmur2 partitioning).
type producer struct {
	cl *kgo.Client
}

func newProducer(t testing.TB, addr string) *producer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &producer{cl: cl}
}

// produce sends recs and waits for every acknowledgement.
func (p *producer) produce(t testing.TB, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// stream is the samples of devices per class, seq from..to-1 each, in
// the order a plant polls them (round robin over devices).
func stream(classes []string, devicesPerClass int, from, to uint64) []*kgo.Record {
	var recs []*kgo.Record
	for seq := from; seq < to; seq++ {
		for _, class := range classes {
			for d := range devicesPerClass {
				recs = append(recs, sampleRecord(testSample(class, fmt.Sprintf("%s-%02d", class, d), seq)))
			}
		}
	}
	return recs
}

// endOffsets returns every partition's end offset of topics.
func endOffsets(t testing.TB, addr string, topics ...string) map[string]map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	out := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out
}

// committedOffsets returns group's offsets committed at the broker.
func committedOffsets(t testing.TB, addr, group string) map[string]map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err == nil {
		err = resp.Error()
	}
	out := map[string]map[int32]int64{}
	// Nothing committed yet: kfake knows no such group, and Apache
	// Kafka's coordinator may still be loading its offsets topic.
	if errors.Is(err, kerr.GroupIDNotFound) || errors.Is(err, kerr.CoordinatorNotAvailable) || errors.Is(err, kerr.CoordinatorLoadInProgress) {
		return out
	}
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	resp.Each(func(o kadm.OffsetResponse) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.At
	})
	return out
}

// db is a test's view of the sink's database.
type db struct {
	client *mongo.Client
	store  *mongots.Store
	name   string
}

func openDB(t testing.TB, cfg Config) *db {
	t.Helper()
	client := mongotest.Connect(t, cfg.MongoDB.URI, nil)
	opts := mongots.DefaultOptions()
	opts.Database, opts.TimeSeries = cfg.MongoDB.Database, false
	return &db{client: client, store: mongots.New(client, opts), name: cfg.MongoDB.Database}
}

// seqs returns, per device, the seqs stored in coll, sorted.
func (d *db) seqs(t testing.TB, coll string) map[string][]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cur, err := d.client.Database(d.name).Collection(coll).Find(ctx, bson.D{},
		options.Find().SetProjection(bson.D{{Key: "meta.device", Value: 1}, {Key: "seq", Value: 1}}))
	if err != nil {
		t.Fatalf("read %s: %v", coll, err)
	}
	defer cur.Close(ctx)
	out := map[string][]uint64{}
	for cur.Next(ctx) {
		dev, _ := cur.Current.Lookup("meta", "device").StringValueOK()
		seq, _ := cur.Current.Lookup("seq").AsInt64OK()
		out[dev] = append(out[dev], uint64(seq))
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("read %s: %v", coll, err)
	}
	for _, s := range out {
		slices.Sort(s)
	}
	return out
}

// count returns the documents in coll (0 when it does not exist), or -1
// while the server cannot be reached.
func (d *db) count(coll string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := d.client.Database(d.name).Collection(coll).CountDocuments(ctx, bson.D{})
	if err != nil {
		return -1
	}
	return n
}

// total returns the documents in colls, or -1 while the server cannot be
// reached.
func (d *db) total(colls ...string) int64 {
	var sum int64
	for _, c := range colls {
		n := d.count(c)
		if n < 0 {
			return -1
		}
		sum += n
	}
	return sum
}

// waitFor polls cond every 20 ms until it holds, failing the test after
// waitLimit with what describe says.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, what, waitLimit, cond)
}

// waitWithin is waitFor with its own limit.
func waitWithin(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitClosed fails the test unless ch is closed within waitLimit.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("gave up waiting for %s after %v", what, waitLimit)
	}
}

// checkExactlyOnce checks that coll holds seqs from..to-1 of every device
// in want, each once, and no other device.
func checkExactlyOnce(t testing.TB, got map[string][]uint64, want map[string][2]uint64) {
	t.Helper()
	for dev, seqs := range got {
		r, ok := want[dev]
		if !ok {
			t.Errorf("device %s stored, not produced", dev)
			continue
		}
		if uint64(len(seqs)) != r[1]-r[0] {
			dups := 0
			for i := 1; i < len(seqs); i++ {
				if seqs[i] == seqs[i-1] {
					dups++
				}
			}
			t.Errorf("device %s: %d samples stored (%d duplicates), want %d (seq %d to %d)", dev, len(seqs), dups, r[1]-r[0], r[0], r[1]-1)
			continue
		}
		for i, s := range seqs {
			if s != r[0]+uint64(i) {
				t.Errorf("device %s: seq %d stored at position %d, want %d", dev, s, i, r[0]+uint64(i))
				break
			}
		}
	}
	for dev := range want {
		if _, ok := got[dev]; !ok {
			t.Errorf("device %s produced, nothing stored", dev)
		}
	}
}

// mergeSeqs merges per-device seqs of several collections.
func mergeSeqs(ms ...map[string][]uint64) map[string][]uint64 {
	out := map[string][]uint64{}
	for _, m := range ms {
		for d, s := range m {
			out[d] = append(out[d], s...)
		}
	}
	return out
}

// allCommitted reports whether committed reaches ends in every partition;
// an empty partition needs no commit.
func allCommitted(committed, ends map[string]map[int32]int64) bool {
	for topic, parts := range ends {
		for p, end := range parts {
			if end > 0 && committed[topic][p] != end {
				return false
			}
		}
	}
	return true
}

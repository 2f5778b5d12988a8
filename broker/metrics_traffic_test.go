package broker

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// series finds the value of metric name with exactly the given labels in
// g (a histogram's sample count), and whether it exists.
func series(t testing.TB, g prometheus.Gatherer, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if !reflect.DeepEqual(got, want) {
				continue
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// seriesWithLabel counts the series of metric name that have label=value.
func seriesWithLabel(t testing.TB, g prometheus.Gatherer, name, label, value string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					n++
				}
			}
		}
	}
	return n
}

// logFileBytes adds up the sizes of a partition directory's .log files.
func logFileBytes(t testing.TB, dir string) int64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var n int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// TestTrafficMetrics produces with franz-go and fetches with raw requests,
// then checks each traffic metric against what was sent and what the
// partition directories hold, and that a deleted topic's series go.
func TestTrafficMetrics(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	addr, reg := b.Addr().String(), b.Registry()
	const topic = "plant-a.press"
	createTopic(t, addr, topic, 2, nil)
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	records := 0
	for i := range 6 {
		var rs []*kgo.Record
		for j := 0; j <= i; j++ { // batches of 1 to 6 records
			rs = append(rs, &kgo.Record{Partition: int32(i % 2), Value: []byte("sample")})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		records += len(rs)
	}
	onDisk := logFileBytes(t, filepath.Join(dir, topic+"-0")) + logFileBytes(t, filepath.Join(dir, topic+"-1"))

	check := func(name string, want float64, labels ...string) {
		t.Helper()
		got, ok := series(t, reg, name, labels...)
		if !ok || got != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
	}
	check("factorywire_broker_produced_records_total", float64(records), "topic", topic)
	// The log stores batches exactly as produced.
	check("factorywire_broker_produced_bytes_total", float64(onDisk), "topic", topic)
	size0, _ := series(t, reg, "factorywire_broker_log_size_bytes", "topic", topic, "partition", "0")
	size1, _ := series(t, reg, "factorywire_broker_log_size_bytes", "topic", topic, "partition", "1")
	if size0 == 0 || size1 == 0 || int64(size0+size1) != onDisk {
		t.Errorf("log_size_bytes %v + %v, want %d bytes in all (the .log files)", size0, size1, onDisk)
	}
	if n, _ := series(t, reg, "factorywire_broker_fsync_seconds"); n < 6 {
		t.Errorf("fsync_seconds counts %v fsyncs after 6 acknowledged produces with flush always, want at least 6", n)
	}

	// Two fetches from the start: each returns everything.
	c := dialRaw(t, addr)
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxBytes, fetch.ReplicaID = 11, 10<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	for p := int32(0); p < 2; p++ {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = p, 10<<20, -1
		ft.Partitions = append(ft.Partitions, fp)
	}
	fetch.Topics = append(fetch.Topics, ft)
	for range 2 {
		resp := c.roundTrip(fetch).(*kmsg.FetchResponse)
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("fetch %s-%d: %v", topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
		}
	}
	check("factorywire_broker_fetched_records_total", float64(2*records), "topic", topic)
	check("factorywire_broker_fetched_bytes_total", float64(2*onDisk), "topic", topic)
	check("factorywire_broker_requests_total", 2, "api", "Fetch")
	// As Kafka's errorCounts: the response's code and each partition's.
	check("factorywire_broker_errors_total", 2*3, "api", "Fetch", "error", "NONE")
	check("factorywire_broker_requests_total", 6, "api", "Produce")
	check("factorywire_broker_errors_total", 6, "api", "Produce", "error", "NONE")

	// Errors: a produce to a partition that does not exist (the hand
	// walk), a metadata request and a delete of a topic that does not
	// exist (the reflection plan, nested and top-level arrays).
	if got := rawProduce(t, c, topic, 7, 1, "x"); got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("produce to partition 7: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	check("factorywire_broker_errors_total", 1, "api", "Produce", "error", "UNKNOWN_TOPIC_OR_PARTITION")
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 7
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("nowhere")
	meta.Topics = append(meta.Topics, mt)
	c.roundTrip(meta)
	check("factorywire_broker_errors_total", 1, "api", "Metadata", "error", "UNKNOWN_TOPIC_OR_PARTITION")
	adm := kadm.NewClient(newClient(t, addr))
	if _, err := adm.DeleteTopics(ctx, "nowhere"); err != nil {
		t.Fatal(err)
	}
	check("factorywire_broker_errors_total", 1, "api", "DeleteTopics", "error", "UNKNOWN_TOPIC_OR_PARTITION")

	// A deleted topic's series go.
	if r, err := adm.DeleteTopics(ctx, topic); err != nil || r[topic].Err != nil {
		t.Fatalf("delete %s: %v %v", topic, err, r[topic].Err)
	}
	for _, name := range []string{"produced_records_total", "produced_bytes_total", "fetched_records_total", "fetched_bytes_total", "log_size_bytes"} {
		if n := seriesWithLabel(t, reg, "factorywire_broker_"+name, "topic", topic); n != 0 {
			t.Errorf("%s has %d series of the deleted topic", name, n)
		}
	}
}

// TestErrorPlan walks a response shape with codes at the top, under a
// pointer, in a slice and in a struct inside a slice element; fields of
// other names or types are not codes.
func TestErrorPlan(t *testing.T) {
	type inner struct{ ErrorCode int16 }
	type elem struct {
		ErrorCode int16
		Nested    inner
		Name      string
	}
	type resp struct {
		ErrorCode    int16
		OtherCode    int16
		Throttle     int32
		Ptr          *inner
		NilPtr       *inner
		Items        []elem
		NoCodes      []struct{ X int16 }
		ErrorMessage *string
	}
	r := resp{ErrorCode: 0, OtherCode: 7, Ptr: &inner{ErrorCode: 3}, Items: []elem{
		{ErrorCode: 3, Nested: inner{ErrorCode: 0}}, {ErrorCode: 41, Nested: inner{ErrorCode: 3}},
	}, NoCodes: []struct{ X int16 }{{X: 3}}}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"api", "error"})
	c := tally{a: &apiCounters{name: "Test", errors: vec}}
	plan := errorPlanFor(reflect.TypeOf(r))
	if plan == nil {
		t.Fatal("no plan for a type with error codes")
	}
	plan.walk(reflect.ValueOf(r), &c)
	if c.none != 2 {
		t.Errorf("%d codes 0, want 2", c.none)
	}
	for code, want := range map[int16]float64{3: 3, 41: 1, 7: 0} {
		if got := counterValue(t, vec.WithLabelValues("Test", errorName(code))); got != want {
			t.Errorf("code %d (%s) counted %v times, want %v", code, errorName(code), got, want)
		}
	}
	if errorPlanFor(reflect.TypeOf(struct{ A []struct{ B int32 } }{})) != nil {
		t.Fatal("a type without error codes has a plan")
	}
}

// TestBatchRecords counts records over whole batches and stops at a
// truncated one (a fetch response never has one, but the walk must not
// overrun).
func TestBatchRecords(t *testing.T) {
	a := makeBatch(testBatch{records: 3, value: []byte("a")})
	b := makeBatch(testBatch{records: 5, value: []byte("b")})
	data := append(append([]byte{}, a...), b...)
	for _, tc := range []struct {
		name string
		data []byte
		want int
	}{
		{"two batches", data, 8},
		{"second truncated", data[:len(data)-1], 3},
		{"header only", data[:61], 0},
		{"empty", nil, 0},
	} {
		if got := batchRecords(tc.data); got != tc.want {
			t.Errorf("%s: %d records, want %d", tc.name, got, tc.want)
		}
	}
}

// BenchmarkObserve measures counting one response: a produce and a fetch
// of one partition (walked by hand) and a metadata response of ten topics
// of three partitions (through the reflection plan).
//
//	go test -run '^$' -bench Observe ./broker/
func BenchmarkObserve(b *testing.B) {
	m := newMetrics(prometheus.NewRegistry())
	produce := kmsg.NewPtrProduceResponse()
	pt := kmsg.NewProduceResponseTopic()
	pt.Partitions = append(pt.Partitions, kmsg.NewProduceResponseTopicPartition())
	produce.Topics = append(produce.Topics, pt)
	fetch := kmsg.NewPtrFetchResponse()
	ft := kmsg.NewFetchResponseTopic()
	ft.Topic = "t"
	ft.Partitions = append(ft.Partitions, kmsg.NewFetchResponseTopicPartition())
	fetch.Topics = append(fetch.Topics, ft)
	meta := kmsg.NewPtrMetadataResponse()
	for range 10 {
		mt := kmsg.NewMetadataResponseTopic()
		for range 3 {
			mt.Partitions = append(mt.Partitions, kmsg.NewMetadataResponseTopicPartition())
		}
		meta.Topics = append(meta.Topics, mt)
	}
	for _, bc := range []struct {
		name string
		key  kmsg.Key
		resp kmsg.Response
	}{{"produce", kmsg.Produce, produce}, {"fetch", kmsg.Fetch, fetch}, {"metadata", kmsg.Metadata, meta}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				m.traffic.observe(int16(bc.key), bc.resp)
			}
		})
	}
}

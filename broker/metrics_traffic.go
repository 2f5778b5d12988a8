package broker

import (
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// traffic are the metrics of what clients ask and send: requests and the
// error codes of their responses by API (Kafka's RequestsPerSec and
// ErrorsPerSec), record bytes and records produced and fetched by topic
// (BytesInPerSec, BytesOutPerSec, MessagesInPerSec), and fsync latency.
// Label values are bounded: APIs are the registered ones, errors are
// Kafka's error names, topics are the existing ones (a deleted topic's
// series are removed).
type traffic struct {
	requests *prometheus.CounterVec // api
	errors   *prometheus.CounterVec // api, error
	byKey    []*apiCounters         // by API key; nil where none is registered

	producedBytes, producedRecords *prometheus.CounterVec // topic
	fetchedBytes, fetchedRecords   *prometheus.CounterVec // topic
	topics                         sync.Map               // topic name → *topicStats

	fsync prometheus.Histogram
}

func newTraffic(reg prometheus.Registerer) *traffic {
	const ns, sub = "factorywire", "broker"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	t := &traffic{
		requests: counter("requests_total", "Requests handled, by API (Kafka's request name: Produce, Fetch, Metadata, ...); an acks=0 produce counts though it gets no response.", "api"),
		errors: counter("errors_total", "Error codes in responses, by API and error name, each occurrence counted (a produce response with three partitions counts three), NONE included: Kafka's ErrorsPerSec.",
			"api", "error"),
		producedBytes:   counter("produced_bytes_total", "Record batch bytes appended to the log by produce requests, by topic (a retried batch already stored is not counted again).", "topic"),
		producedRecords: counter("produced_records_total", "Records appended to the log by produce requests, by topic.", "topic"),
		fetchedBytes:    counter("fetched_bytes_total", "Record batch bytes sent in fetch responses, by topic.", "topic"),
		fetchedRecords:  counter("fetched_records_total", "Records sent in fetch responses, by topic (from the batch headers' record counts).", "topic"),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "fsync_seconds",
			Help:    "Duration of each fsync of a partition's (or the committed offsets') active segment data, failed ones included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
	}
	reg.MustRegister(t.requests, t.errors, t.producedBytes, t.producedRecords, t.fetchedBytes, t.fetchedRecords, t.fsync)
	for key := range apis {
		if int(key) >= len(t.byKey) {
			t.byKey = append(t.byKey, make([]*apiCounters, int(key)+1-len(t.byKey))...)
		}
		name := kmsg.NameForKey(key)
		t.byKey[key] = &apiCounters{name: name, requests: t.requests.WithLabelValues(name), errors: t.errors}
	}
	return t
}

// apiCounters are one API's request counter and its error counters,
// resolved once, so counting a response takes no label lookups.
type apiCounters struct {
	name     string
	requests prometheus.Counter
	errors   *prometheus.CounterVec
	// codes holds the counter of error code c at c+1, created at its
	// first occurrence.
	codes [maxErrorCode + 2]atomic.Pointer[prometheus.Counter]
}

// maxErrorCode bounds the error codes with a cached counter; others (none
// exist in Kafka 4.1) are looked up each time.
const maxErrorCode = 160

func (a *apiCounters) code(code int16) prometheus.Counter {
	i := int(code) + 1
	if i < 0 || i >= len(a.codes) {
		return a.errors.WithLabelValues(a.name, errorName(code))
	}
	if c := a.codes[i].Load(); c != nil {
		return *c
	}
	c := a.errors.WithLabelValues(a.name, errorName(code))
	a.codes[i].Store(&c)
	return c
}

// errorName is the label of an error code: Kafka's name, NONE for 0.
func errorName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.TypedErrorForCode(code).Message // UNKNOWN_SERVER_ERROR for an unknown code
}

// tally counts the error codes of one response.
type tally struct {
	a    *apiCounters
	none int
}

func (t *tally) add(code int16) {
	if code == 0 {
		t.none++
		return
	}
	t.a.code(code).Inc()
}

// observe counts one request of API key and the error codes of its
// response (nil when none was made). The connection's writer calls it for
// every request it finishes.
func (t *traffic) observe(key int16, resp kmsg.Response) {
	if key < 0 || int(key) >= len(t.byKey) || t.byKey[key] == nil {
		return
	}
	a := t.byKey[key]
	a.requests.Inc()
	if resp == nil {
		return
	}
	c := tally{a: a}
	// Produce and Fetch are the hot paths: walked by hand, as Kafka's
	// errorCounts count them (for Fetch, the top-level code too).
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				c.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.FetchResponse:
		c.add(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				c.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	default:
		v := reflect.ValueOf(resp)
		if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
			if p := errorPlanFor(v.Elem().Type()); p != nil {
				p.walk(v.Elem(), &c)
			}
		}
	}
	if c.none > 0 {
		a.code(0).Add(float64(c.none))
	}
}

// errorPlan says where a response type holds error codes: its int16 fields
// named ErrorCode, and the fields (structs, pointers to structs, slices of
// structs) under which more are found. Types without any have no plan
// (nil), so their fields are never visited.
type errorPlan struct {
	codes  []int
	nested []nestedPlan
}

type nestedPlan struct {
	field int
	kind  reflect.Kind // Struct, Pointer or Slice
	elem  *errorPlan
}

var errorPlans sync.Map // reflect.Type → *errorPlan (nil for none)

// errorPlanFor returns the plan of struct type t, built at its first use.
func errorPlanFor(t reflect.Type) *errorPlan {
	if p, ok := errorPlans.Load(t); ok {
		return p.(*errorPlan)
	}
	p := buildErrorPlan(t, map[reflect.Type]bool{})
	errorPlans.Store(t, p)
	return p
}

func buildErrorPlan(t reflect.Type, visiting map[reflect.Type]bool) *errorPlan {
	if visiting[t] {
		return nil // kmsg types do not nest themselves; never loop if one did
	}
	visiting[t] = true
	defer delete(visiting, t)
	p := &errorPlan{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
			p.codes = append(p.codes, i)
			continue
		}
		kind, elem := f.Type.Kind(), f.Type
		switch kind {
		case reflect.Pointer, reflect.Slice:
			elem = f.Type.Elem()
		case reflect.Struct:
		default:
			continue
		}
		if elem.Kind() != reflect.Struct {
			continue
		}
		if sub := buildErrorPlan(elem, visiting); sub != nil {
			p.nested = append(p.nested, nestedPlan{field: i, kind: kind, elem: sub})
		}
	}
	if len(p.codes) == 0 && len(p.nested) == 0 {
		return nil
	}
	return p
}

func (p *errorPlan) walk(v reflect.Value, c *tally) {
	for _, i := range p.codes {
		c.add(int16(v.Field(i).Int()))
	}
	for _, n := range p.nested {
		f := v.Field(n.field)
		switch n.kind {
		case reflect.Struct:
			n.elem.walk(f, c)
		case reflect.Pointer:
			if !f.IsNil() {
				n.elem.walk(f.Elem(), c)
			}
		case reflect.Slice:
			for i := range f.Len() {
				n.elem.walk(f.Index(i), c)
			}
		}
	}
}

// topicStats are one topic's produce and fetch counters, resolved once.
// A nil *topicStats (a partition built by a test without a broker)
// counts nothing.
type topicStats struct {
	producedBytes, producedRecords prometheus.Counter
	fetchedBytes, fetchedRecords   prometheus.Counter
}

// topic returns the counters of topic name, creating them: it is called
// when a topic's partitions are opened.
func (t *traffic) topic(name string) *topicStats {
	if s, ok := t.topics.Load(name); ok {
		return s.(*topicStats)
	}
	s, _ := t.topics.LoadOrStore(name, &topicStats{
		producedBytes: t.producedBytes.WithLabelValues(name), producedRecords: t.producedRecords.WithLabelValues(name),
		fetchedBytes: t.fetchedBytes.WithLabelValues(name), fetchedRecords: t.fetchedRecords.WithLabelValues(name),
	})
	return s.(*topicStats)
}

// dropTopic removes a deleted topic's series.
func (t *traffic) dropTopic(name string) {
	t.topics.Delete(name)
	for _, v := range []*prometheus.CounterVec{t.producedBytes, t.producedRecords, t.fetchedBytes, t.fetchedRecords} {
		v.DeleteLabelValues(name)
	}
}

// appended counts one batch appended to the topic's log.
func (s *topicStats) appended(bytes int, records int32) {
	if s == nil {
		return
	}
	s.producedBytes.Add(float64(bytes))
	s.producedRecords.Add(float64(records))
}

// fetched counts the records of a fetch response. Topics it does not know
// (deleted meanwhile, or never existing) are not counted, so no series is
// created for them.
func (t *traffic) fetched(resp *kmsg.FetchResponse) {
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		var bytes, records int
		for j := range rt.Partitions {
			data := rt.Partitions[j].RecordBatches
			bytes += len(data)
			records += batchRecords(data)
		}
		if bytes == 0 {
			continue
		}
		if s, ok := t.topics.Load(rt.Topic); ok {
			s := s.(*topicStats)
			s.fetchedBytes.Add(float64(bytes))
			s.fetchedRecords.Add(float64(records))
		}
	}
}

// batchRecords adds up the record counts in the headers of the
// RecordBatch v2 batches in data, stopping at a truncated one.
func batchRecords(data []byte) int {
	const lengthAt, countAt, headerSize = 8, 57, 61
	n := 0
	for len(data) >= headerSize {
		size := 12 + int(beInt32(data[lengthAt:]))
		if size < headerSize || size > len(data) {
			break
		}
		n += int(beInt32(data[countAt:]))
		data = data[size:]
	}
	return n
}

// observeFsync is commitlog's Options.OnSync.
func (m *metrics) observeFsync(d time.Duration) { m.traffic.fsync.Observe(d.Seconds()) }

// logSizeCollector exposes, when scraped, the size of every open
// partition's segment files; a deleted topic's partitions disappear with
// it.
type logSizeCollector struct{ b *Broker }

var descLogSize = prometheus.NewDesc("factorywire_broker_log_size_bytes",
	"Bytes of a partition's segment (.log) files, by topic and partition; offline partitions are left out.", []string{"topic", "partition"}, nil)

func (c logSizeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descLogSize }

func (c logSizeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.b.allPartitions() {
		ch <- prometheus.MustNewConstMetric(descLogSize, prometheus.GaugeValue, float64(p.log.Size()), p.topic, strconv.Itoa(int(p.index)))
	}
}

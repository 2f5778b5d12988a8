package sink

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/factorywire/factorywire/storage/mongots"
)

// metrics are the sink's Prometheus metrics, all prefixed
// factorywire_sink_.
type metrics struct {
	consumed   *prometheus.CounterVec   // topic
	stored     *prometheus.CounterVec   // topic
	batches    prometheus.Counter       //
	abandoned  prometheus.Counter       //
	batchSize  prometheus.Histogram     //
	writeTime  *prometheus.HistogramVec // result
	deadLetter *prometheus.CounterVec   // topic, class
	duplicates *prometheus.CounterVec   // topic, rule
	retries    *prometheus.CounterVec   // op
	delay      prometheus.Histogram     //
	lag        *prometheus.GaugeVec     // topic, partition
}

// Labels of duplicates_skipped_total's rule.
const (
	ruleOffset = "offset" // at or below the partition's highest stored source offset
	ruleSeq    = "seq"    // seq at or below the device's last stored seq
)

// Labels of transient_retries_total's op.
const (
	opLoad      = "load"      // reading offsets and last seqs back from MongoDB
	opEnsure    = "ensure"    // creating a collection
	opWrite     = "write"     // writing a batch's documents
	opDLQ       = "dlq"       // producing dead letters
	opSave      = "save"      // saving the offsets checkpoint
	opSummaries = "summaries" // writing the device status and the rollups
)

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "factorywire", "sink"
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_consumed_total",
			Help: "Records consumed, by topic (each record once per batch it is part of, so replays after a crash count again)."}, []string{"topic"}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "samples_stored_total",
			Help: "Samples written to MongoDB, by topic."}, []string{"topic"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batches_total",
			Help: "Batches written, saved and committed."}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batches_abandoned_total",
			Help: "Batches given up, to be consumed again: a rebalance waited while they kept failing, or the shutdown timeout passed."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_records",
			Help:    "Records per batch.",
			Buckets: []float64{1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000}}),
		writeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "write_seconds",
			Help:    "MongoDB writes of one batch's documents to one collection, by result (ok, transient, error).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"result"}),
		deadLetter: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dead_letters_total",
			Help: "Records produced to a dead-letter topic, by source topic and error class (decode, schema-version, timestamp, topic-mismatch, key-mismatch, write-rejected)."}, []string{"topic", "class"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "duplicates_skipped_total",
			Help: "Records not written because they are stored already, by topic and rule: offset (a replayed batch) or seq (a gateway's re-delivery)."}, []string{"topic", "rule"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "transient_retries_total",
			Help: "Retries after transient failures, by operation (load, ensure, write, dlq, save)."}, []string{"op"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "sample_delay_seconds",
			Help:    "Time from a sample's poll (its ts) to its write to MongoDB returning: the pipeline's end-to-end latency, as seen by this sink.",
			Buckets: delayBuckets}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "consumer_lag_records",
			Help: "Records between the last fetched offset and the high watermark, by topic and partition, as of the last fetch."}, []string{"topic", "partition"}),
	}
	reg.MustRegister(m.consumed, m.stored, m.batches, m.abandoned, m.batchSize, m.writeTime, m.deadLetter, m.duplicates, m.retries, m.delay, m.lag)
	return m
}

// delayBuckets are sample_delay_seconds' buckets: fine below a second,
// where a pipeline keeping up lies (5, 10, 25 ms, then 25 ms apart to
// 100 ms, 50 to 250 ms apart to 1 s), coarse above, where a backlog or
// an outage lies.
var delayBuckets = []float64{.005, .01, .025, .05, .075, .1, .15, .2, .25, .3, .4, .5, .75, 1, 2.5, 5, 10, 30, 60, 300, 3600}

// observeDelay records the delay of every document of docs the write
// stored (all but failed).
func (m *metrics) observeDelay(docs []mongots.Doc, failed []mongots.DocError, now time.Time) {
	skip := make(map[int]bool, len(failed))
	for _, f := range failed {
		skip[f.Index] = true
	}
	for i := range docs {
		if !skip[i] {
			m.delay.Observe(now.Sub(docs[i].Sample.Time).Seconds())
		}
	}
}

func (m *metrics) setLag(topic string, partition int32, lag int64) {
	m.lag.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(max(lag, 0)))
}

func (m *metrics) dropLag(topic string, partition int32) {
	m.lag.DeleteLabelValues(topic, strconv.Itoa(int(partition)))
}

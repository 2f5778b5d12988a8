package gateway

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/factorywire/factorywire/devices/modbus"
)

// metrics are the gateway's Prometheus metrics, all prefixed
// factorywire_gateway_. It is also the Modbus connections' Observer.
type metrics struct {
	requests        *prometheus.CounterVec   // conn, function
	requestErrors   *prometheus.CounterVec   // conn, kind, exception
	roundTrip       *prometheus.HistogramVec // conn
	connects        *prometheus.CounterVec   // conn, result
	produced        *prometheus.CounterVec   // topic
	produceErrors   *prometheus.CounterVec   // topic
	kafkaConnErrors *prometheus.CounterVec   // cause
	spoolBytes      prometheus.GaugeFunc
	dropped         *prometheus.CounterVec // topic
	fullWaits       prometheus.Counter
	// The configuration reloads (Gateway.Reload), named as Prometheus
	// names its own.
	reloads           *prometheus.CounterVec // result: success, failure
	lastReloadOK      prometheus.Gauge
	lastReloadSuccess prometheus.Gauge

	// observed caches the series ObserveRequest updates, by connection
	// and function: it runs for every Modbus request, and looking the
	// series up by label values each time (hashing them, under the
	// vector's lock) cost more than the update.
	observed sync.Map // requestKey -> *requestSeries
}

// requestKey and requestSeries are a connection's and function's series
// of every request.
type requestKey struct {
	conn     string
	function uint8
}

type requestSeries struct {
	requests  prometheus.Counter
	roundTrip prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, spool *Spool, health func() []modbus.DeviceHealth) *metrics {
	const ns, sub = "factorywire", "gateway"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "modbus_requests_total",
			Help: "Modbus requests sent, busy retries included, by connection and function code."}, []string{"conn", "function"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "modbus_request_errors_total",
			Help: "Failed Modbus requests by connection, error kind and exception code (empty when not an exception)."}, []string{"conn", "kind", "exception"}),
		roundTrip: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "modbus_round_trip_seconds",
			Help:    "Modbus request round trips, write to end of reply, by connection.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"conn"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "modbus_connects_total",
			Help: "Connect attempts (TCP dial or serial open) by connection and result (ok, error)."}, []string{"conn", "result"}),
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "produced_samples_total",
			Help: "Samples acknowledged by the broker, by topic."}, []string{"topic"}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "produce_errors_total",
			Help: "Forwarding attempts that failed and were retried from the checkpoint, by topic."}, []string{"topic"}),
		kafkaConnErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "kafka_connection_errors_total",
			Help: "Connection attempts to a broker that failed for a cause retrying cannot fix (wrong credentials, untrusted or misnamed certificate, TLS mismatch), by cause; /readyz names the cause."}, []string{"cause"}),
		spoolBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "spool_bytes",
			Help: "Bytes the spool's files hold."}, func() float64 { return float64(spool.Size()) }),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "spool_dropped_samples_total",
			Help: "Samples dropped unforwarded because the spool was full (when_full: drop_oldest), by topic."}, []string{"topic"}),
		fullWaits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "spool_full_waits_total",
			Help: "Times polling paused because the spool was full (when_full: pause_polling)."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "config_reloads_total",
			Help: "Configuration reloads (SIGHUP) by result (success, failure); a failed one keeps the running configuration."}, []string{"result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded (1) or failed (0); 1 before any."}),
		lastReloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully: at start, then at each successful reload."}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.lastReloadOK.Set(1)
	m.lastReloadSuccess.SetToCurrentTime()
	reg.MustRegister(m.requests, m.requestErrors, m.roundTrip, m.connects, m.produced, m.produceErrors, m.kafkaConnErrors,
		m.spoolBytes, m.dropped, m.fullWaits, m.reloads, m.lastReloadOK, m.lastReloadSuccess,
		&deviceCollector{health: health}, &backlogCollector{spool: spool})
	spool.dropped = func(topic string, n int) { m.dropped.WithLabelValues(topic).Add(float64(n)) }
	spool.fullWaits = m.fullWaits.Inc
	return m
}

// ObserveRequest implements modbus.Observer.
func (m *metrics) ObserveRequest(conn string, _ uint8, function uint8, rtt time.Duration, err error) {
	key := requestKey{conn, function}
	v, ok := m.observed.Load(key)
	if !ok {
		v, _ = m.observed.LoadOrStore(key, &requestSeries{
			requests:  m.requests.WithLabelValues(conn, strconv.Itoa(int(function))),
			roundTrip: m.roundTrip.WithLabelValues(conn),
		})
	}
	series := v.(*requestSeries)
	series.requests.Inc()
	if rtt > 0 {
		series.roundTrip.Observe(rtt.Seconds())
	}
	if err != nil {
		exception := ""
		var ee *modbus.ExceptionError
		if errors.As(err, &ee) {
			exception = strconv.Itoa(int(ee.Code))
		}
		m.requestErrors.WithLabelValues(conn, modbus.KindOf(err).String(), exception).Inc()
	}
}

// ObserveConnect implements modbus.Observer.
func (m *metrics) ObserveConnect(conn string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.connects.WithLabelValues(conn, result).Inc()
}

// backlogCollector exposes, at scrape time, each spool topic's samples not
// yet acknowledged by the broker and the age of the oldest: read when
// scraped, they keep growing while the forwarder waits on a stalled
// produce.
type backlogCollector struct{ spool *Spool }

var (
	descSpoolSamples = prometheus.NewDesc("factorywire_gateway_spool_samples", "Samples in the spool not yet acknowledged by the broker, by topic.", []string{"topic"}, nil)
	descQuarantined  = prometheus.NewDesc("factorywire_gateway_spool_quarantined_samples_total", "Samples lost in a damaged range of a spool segment, moved aside when the spool opened or the forwarder read it, by topic, segment file and byte position of the range.", []string{"topic", "file", "byte"}, nil)
	descSpoolAge     = prometheus.NewDesc("factorywire_gateway_spool_oldest_sample_age_seconds", "Age of the oldest sample not yet acknowledged by the broker (0 when none), by topic.", []string{"topic"}, nil)
)

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSpoolSamples
	ch <- descSpoolAge
	ch <- descQuarantined
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.spool.Topics() {
		t, err := c.spool.topic(name)
		if err != nil {
			continue // the spool is closing
		}
		samples, age := t.backlog()
		ch <- prometheus.MustNewConstMetric(descSpoolSamples, prometheus.GaugeValue, float64(samples), name)
		ch <- prometheus.MustNewConstMetric(descSpoolAge, prometheus.GaugeValue, age.Seconds(), name)
	}
	for _, q := range c.spool.Quarantined() {
		ch <- prometheus.MustNewConstMetric(descQuarantined, prometheus.CounterValue, float64(q.Samples), q.Topic, q.Segment, strconv.FormatInt(q.Byte, 10))
	}
}

// deviceCollector exposes the poller's per-device health at scrape time.
type deviceCollector struct {
	health func() []modbus.DeviceHealth
}

var (
	descPolls    = prometheus.NewDesc("factorywire_gateway_device_polls_total", "Polls attempted, by device.", []string{"device", "class", "conn"}, nil)
	descSamples  = prometheus.NewDesc("factorywire_gateway_device_samples_total", "Samples emitted, by device.", []string{"device", "class", "conn"}, nil)
	descSuppress = prometheus.NewDesc("factorywire_gateway_device_suppressed_samples_total", "Samples not sent because nothing changed beyond the deadbands (report_by_exception), by device; they take no seq.", []string{"device", "class", "conn"}, nil)
	descFailures = prometheus.NewDesc("factorywire_gateway_device_failed_polls_total", "Polls that produced no sample, by device.", []string{"device", "class", "conn"}, nil)
	descOverruns = prometheus.NewDesc("factorywire_gateway_device_overruns_total", "Polls after which a due time had passed unpolled, by device.", []string{"device", "class", "conn"}, nil)
	descFailing  = prometheus.NewDesc("factorywire_gateway_device_consecutive_failures", "Polls without a sample since the last one with, by device.", []string{"device", "class", "conn"}, nil)
	descSuccess  = prometheus.NewDesc("factorywire_gateway_device_last_success_timestamp_seconds", "Start of the last poll that produced a sample (0: none yet), by device.", []string{"device", "class", "conn"}, nil)
	descPollTime = prometheus.NewDesc("factorywire_gateway_device_poll_seconds", "Duration of the last poll's reads, by device.", []string{"device", "class", "conn"}, nil)
)

func (c *deviceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPolls, descSamples, descSuppress, descFailures, descOverruns, descFailing, descSuccess, descPollTime} {
		ch <- d
	}
}

func (c *deviceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.health() {
		labels := []string{h.ID, h.Class, h.Conn}
		success := 0.0
		if !h.LastSuccess.IsZero() {
			success = float64(h.LastSuccess.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(descPolls, prometheus.CounterValue, float64(h.Polls), labels...)
		ch <- prometheus.MustNewConstMetric(descSamples, prometheus.CounterValue, float64(h.Samples), labels...)
		ch <- prometheus.MustNewConstMetric(descSuppress, prometheus.CounterValue, float64(h.Suppressed), labels...)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(h.Failures), labels...)
		ch <- prometheus.MustNewConstMetric(descOverruns, prometheus.CounterValue, float64(h.Overruns), labels...)
		ch <- prometheus.MustNewConstMetric(descFailing, prometheus.GaugeValue, float64(h.ConsecutiveFailures), labels...)
		ch <- prometheus.MustNewConstMetric(descSuccess, prometheus.GaugeValue, success, labels...)
		ch <- prometheus.MustNewConstMetric(descPollTime, prometheus.GaugeValue, h.LastRoundTrip.Seconds(), labels...)
	}
}

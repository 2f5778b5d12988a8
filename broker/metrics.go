package broker

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// Names of the limits counted in factorywire_broker_limit_hits_total, each
// the YAML key of the limit (or, for a limit that is not configurable, what
// it bounds).
const (
	limitMaxConnections        = "max_connections"
	limitMaxConnectionsPerIP   = "max_connections_per_ip"
	limitConnectionsMaxIdle    = "connections_max_idle"
	limitRequestReadTimeout    = "request_read_timeout"
	limitResponseWriteTimeout  = "response_write_timeout"
	limitQueuedRequestBytes    = "queued_max_request_bytes"
	limitQueuedResponseBytes   = "queued_max_response_bytes"
	limitMaxPartitions         = "max_partitions"
	limitMaxOpenClosedSegments = "max_open_closed_segments"
	limitGroupMaxSize          = "group_max_size"
	limitMaxRequestBytes       = "max_request_bytes"
	limitMaxControlBytes       = "max_control_request_bytes"
	limitOpenFiles             = "open_files" // the process's RLIMIT_NOFILE, met by accept
)

// metrics are the broker's Prometheus metrics, all prefixed
// factorywire_broker_. Broker.Registry exposes them.
type metrics struct {
	limitHits         *prometheus.CounterVec // limit
	connections       prometheus.Gauge
	partitionErrors   *prometheus.CounterVec // topic, partition, cause
	malformedBatches  *prometheus.CounterVec // topic
	offlinePartitions prometheus.Gauge
	expiredOffsets    prometheus.Counter
	deletedGroups     prometheus.Counter
	// scrubCorruptRanges counts the damaged ranges the scrub at start
	// found (Config.ScrubOnStart).
	scrubCorruptRanges *prometheus.CounterVec // topic, partition
	segmentFiles       prometheus.GaugeFunc   // from files
	files              atomic.Pointer[commitlog.FileCache]
	queuedRequest      prometheus.Gauge
	queuedResponse     prometheus.Gauge
	authentications    *prometheus.CounterVec // listener, mechanism
	authFailures       *prometheus.CounterVec // listener, mechanism
	traffic            *traffic               // requests, errors, bytes and records, fsyncs: metrics_traffic.go
	// authorizationFailures counts requests (or parts of them) the ACLs
	// refused.
	authorizationFailures *prometheus.CounterVec // principal, api, resource_type
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "factorywire", "broker"
	m := &metrics{
		limitHits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "limit_hits_total",
			Help: "Times a resource limit was hit, by limit (the config key that sets it)."}, []string{"limit"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "connections",
			Help: "Client connections open."}),
		partitionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "partition_errors_total",
			Help: "Storage errors of a partition by cause (write, fsync, roll, corrupt, ...): each one made a produce or fetch fail."}, []string{"topic", "partition", "cause"}),
		malformedBatches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "malformed_batches_total",
			Help: "Produced record batches refused as malformed, by topic: a CRC mismatch (CORRUPT_MESSAGE) or malformed records (INVALID_RECORD)."}, []string{"topic"}),
		expiredOffsets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "expired_offsets_total",
			Help: "Committed offsets deleted because they expired (offsets_retention)."}),
		deletedGroups: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "deleted_groups_total",
			Help: "Empty consumer groups deleted by expiry once no committed offsets were left (not those deleted by DeleteGroups)."}),
		scrubCorruptRanges: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "scrub_corrupt_ranges_total",
			Help: "Damaged ranges of segment files found by the scrub at start (scrub_on_start), by partition: run broker repair on it."}, []string{"topic", "partition"}),
		queuedRequest: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queued_request_bytes",
			Help: "Bytes of the queued_max_request_bytes budget in use: requests announced and being read, or read and not yet handled."}),
		queuedResponse: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queued_response_bytes",
			Help: "Bytes of the queued_max_response_bytes budget in use: fetch response records built and not yet written."}),
	}
	m.authentications = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "authentications_total",
		Help: "Successful SASL authentications, by listener and mechanism."}, []string{"listener", "mechanism"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "authentication_failures_total",
		Help: "Failed authentications, by listener and mechanism: a wrong password or unknown user, a mechanism the listener does not enable (mechanism \"\"), or a failed TLS handshake (mechanism \"TLS\": an untrusted or missing client certificate, a plaintext client)."}, []string{"listener", "mechanism"})
	reg.MustRegister(m.authentications, m.authFailures)
	m.authorizationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "authorization_failures_total",
		Help: "Requests, or resources within them, refused by the ACLs, by principal, API and resource type (topic, group, cluster, transactional_id)."},
		[]string{"principal", "api", "resource_type"})
	m.offlinePartitions = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "offline_partitions",
		Help: "Partitions whose log could not be opened at start-up (a corrupt segment): they serve nothing until repaired."})
	m.segmentFiles = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "closed_segment_files",
		Help: "Files of closed segments open (3 per segment; max_open_closed_segments bounds the segments, plus those being read). Active segments' files are not counted."},
		func() float64 {
			if c := m.files.Load(); c != nil {
				return float64(c.Stats().Files)
			}
			return 0
		})
	reg.MustRegister(m.limitHits, m.connections, m.partitionErrors, m.malformedBatches, m.offlinePartitions, m.expiredOffsets, m.deletedGroups)
	reg.MustRegister(m.scrubCorruptRanges, m.segmentFiles, m.queuedRequest, m.queuedResponse)
	m.traffic = newTraffic(reg)
	reg.MustRegister(m.authorizationFailures)
	return m
}

// limitLogInterval is the least time between two log lines for one limit.
const limitLogInterval = time.Minute

// limits logs and counts hits of resource limits: every hit is counted, and
// logged at warn level at most once per limitLogInterval per limit, with
// the number of hits not logged since the previous line.
type limits struct {
	log     *slog.Logger
	m       *metrics
	now     func() time.Time
	mu      sync.Mutex
	logged  map[string]time.Time // limit → time of its last log line
	skipped map[string]int       // limit → hits since its last log line
}

func newLimits(log *slog.Logger, m *metrics) *limits {
	return &limits{log: log, m: m, now: time.Now, logged: map[string]time.Time{}, skipped: map[string]int{}}
}

// hit records one hit of limit. msg says what happened; attrs name where
// (client address, topic, ...) and the limit's value.
func (l *limits) hit(limit, msg string, attrs ...any) {
	l.m.limitHits.WithLabelValues(limit).Inc()
	l.mu.Lock()
	now := l.now()
	last, seen := l.logged[limit]
	if seen && now.Sub(last) < limitLogInterval {
		l.skipped[limit]++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped[limit]
	l.logged[limit], l.skipped[limit] = now, 0
	l.mu.Unlock()
	attrs = append(attrs, "limit", limit)
	if skipped > 0 {
		attrs = append(attrs, "hits_not_logged", skipped)
	}
	l.log.Warn(msg, attrs...)
}

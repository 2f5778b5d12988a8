package broker

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// Config configures a Broker. The zero value is not usable: start from
// DefaultConfig and override fields. YAML keys are the snake_case tags; the
// broker binary decodes configs/broker.yaml into this type strictly.
type Config struct {
	// Listen is the TCP address the broker accepts plaintext Kafka
	// connections on when Listeners is empty. Default "127.0.0.1:9092";
	// use port 0 for an ephemeral port (tests).
	Listen string `yaml:"listen"`
	// AdvertisedAddr is the host:port the broker tells clients to connect
	// to in Metadata. Empty means the listener's actual address. Only
	// with Listen.
	AdvertisedAddr string `yaml:"advertised_addr"`
	// Listeners replace Listen with one or more listeners, each
	// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (Kafka's listeners):
	// for example plaintext on loopback for a local sink and SASL_SSL for
	// the plant network. Clients are told the address of the listener
	// they came in by. When set, Listen is ignored.
	Listeners []ListenerConfig `yaml:"listeners"`
	// SASL configures authentication on the SASL listeners: the delay
	// after a failed attempt and the users created at start.
	SASL SASLConfig `yaml:"sasl"`
	// HTTPListen is the TCP address of the broker's plain-HTTP endpoints:
	// /metrics (Prometheus), /healthz and /readyz. Empty, the default,
	// serves none. Port 0 picks a free port (see Broker.HTTPAddr).
	HTTPListen string `yaml:"http_listen"`
	// DataDir holds the topic catalog, producer ids and one commit log per
	// partition. It is locked while the broker runs. Required.
	DataDir string `yaml:"data_dir"`
	// Flush is "always" (default: a produce is acknowledged, and its
	// records become visible to consumers, only after an fsync covers
	// them) or "interval" (fsync every FlushInterval; a crash of the
	// machine can lose acknowledged records written in the last interval).
	Flush string `yaml:"flush"`
	// FlushInterval is the fsync period with Flush "interval". Default 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// AutoCreateTopics lets Metadata requests create missing topics with
	// DefaultPartitions partitions, as Kafka's auto.create.topics.enable.
	// Default false.
	AutoCreateTopics bool `yaml:"auto_create_topics"`
	// DefaultPartitions is used by auto-creation and by CreateTopics
	// requests that ask for -1 partitions. Default 1.
	DefaultPartitions int32 `yaml:"default_partitions"`
	// MaxRequestBytes bounds one request's size (Kafka's
	// socket.request.max.bytes). Default 100 MiB. Requests other than
	// Produce are bounded by MaxControlRequestBytes as well.
	MaxRequestBytes int32 `yaml:"max_request_bytes"`
	// MaxControlRequestBytes bounds every request but Produce, so a
	// malformed array count cannot make the decoder allocate far more than
	// an honest client would ever send. Default 8 MiB.
	MaxControlRequestBytes int32 `yaml:"max_control_request_bytes"`
	// FetchMaxBytes caps the record bytes of one fetch response whatever
	// the request asks (Kafka's fetch.max.bytes), so one request cannot
	// make the broker buffer an unbounded response. Default 55 MiB. The
	// first batch of a response is returned even if larger.
	FetchMaxBytes int32 `yaml:"fetch_max_bytes"`
	// RetentionCheckInterval is how often retention and time-based segment
	// rolling run over every partition. Default 5m.
	RetentionCheckInterval time.Duration `yaml:"retention_check_interval"`
	// GroupMinSessionTimeout and GroupMaxSessionTimeout bound the session
	// timeout a consumer group member may ask for (Kafka's
	// group.min/max.session.timeout.ms). Defaults 6s and 30m.
	GroupMinSessionTimeout time.Duration `yaml:"group_min_session_timeout"`
	GroupMaxSessionTimeout time.Duration `yaml:"group_max_session_timeout"`
	// GroupInitialRebalanceDelay is how long a new group's first rebalance
	// waits for more members (group.initial.rebalance.delay.ms). Default
	// 3s; 0 completes it as soon as the first member has joined.
	GroupInitialRebalanceDelay time.Duration `yaml:"group_initial_rebalance_delay"`
	// GroupMaxSize bounds a group's members (and member ids handed out
	// but not yet used), so one client's JoinGroup storm cannot grow a
	// group without limit (group.max.size). Default 1000.
	GroupMaxSize int `yaml:"group_max_size"`
	// Topics holds the defaults for topic configs; each topic may override
	// them with CreateTopics or IncrementalAlterConfigs.
	Topics TopicDefaults `yaml:"topic_defaults"`

	// Resource limits. Each is logged (once per cause and minute) and
	// counted (factorywire_broker_limit_hits_total{limit="<yaml key>"})
	// when it is hit.

	// MaxConnections bounds the client connections open at once (Kafka's
	// max.connections). A connection past it is closed as soon as it is
	// accepted. Default 1000.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP bounds the connections from one client address
	// (max.connections.per.ip). Default 200.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// ConnectionsMaxIdle closes a connection that has had no request in
	// flight for this long (connections.max.idle.ms). Default 10m.
	ConnectionsMaxIdle time.Duration `yaml:"connections_max_idle"`
	// RequestReadTimeout is a no-progress timeout for reading a request:
	// it starts at the request's first byte (again after a wait for
	// request budget) and, each time it passes with at least 64 KiB more
	// of the request read since it started, it starts over; otherwise the
	// connection is closed. A client must send at no less than 64 KiB per
	// RequestReadTimeout (about 2 KiB/s at the default), so one that
	// trickles a request is disconnected and a slow but steady one is
	// served. Default 30s.
	RequestReadTimeout time.Duration `yaml:"request_read_timeout"`
	// ResponseWriteTimeout is a no-progress timeout for writing responses:
	// it starts with each write to the connection (a response, or the
	// responses buffered together) and, each time it passes with at least
	// 64 KiB more written since it started, it starts over; otherwise the
	// connection is closed and what its responses held is freed. A client
	// must read at no less than 64 KiB per ResponseWriteTimeout (about
	// 2 KiB/s at the default), so one that stops reading is disconnected
	// and a slow but steady one is served. Default 30s.
	ResponseWriteTimeout time.Duration `yaml:"response_write_timeout"`
	// QueuedMaxRequestBytes is the broker-wide budget of request bytes
	// read (or announced and being read) but not yet handled
	// (queued.max.request.bytes). A connection whose request does not fit
	// waits before reading it. At least MaxRequestBytes. Default 256 MiB.
	QueuedMaxRequestBytes int64 `yaml:"queued_max_request_bytes"`
	// QueuedMaxResponseBytes is the broker-wide budget of fetch response
	// bytes built but not yet written. A fetch that does not fit waits, up
	// to its max wait, then returns what fits. At least FetchMaxBytes.
	// Default 256 MiB.
	QueuedMaxResponseBytes int64 `yaml:"queued_max_response_bytes"`
	// MaxPartitions bounds the partitions of all topics together (as
	// KIP-578's max.broker.partitions): CreateTopics and CreatePartitions
	// beyond it get POLICY_VIOLATION. Each partition keeps its active
	// segment's files open. Default 4000.
	MaxPartitions int `yaml:"max_partitions"`
	// MaxOpenClosedSegments bounds the closed (read-only) segments whose
	// files are open at once, across all partitions: they are opened when
	// read and the least recently used are closed beyond this. Default 256.
	MaxOpenClosedSegments int `yaml:"max_open_closed_segments"`
	// ClosedSegmentIdle closes a closed segment's files after this long
	// without a read. Default 1m.
	ClosedSegmentIdle time.Duration `yaml:"closed_segment_idle"`
	// OffsetsRetention is how long a group's committed offsets are kept
	// once the group is empty (offsets.retention.minutes; for a group
	// with members, offsets of topics it no longer consumes expire this
	// long after their last commit). An empty group with no offsets left
	// is deleted. Default 168h (7 days).
	OffsetsRetention time.Duration `yaml:"offsets_retention"`
	// OffsetsRetentionCheckInterval is how often expired offsets and empty
	// groups are removed (offsets.retention.check.interval.ms). Default
	// 10m.
	OffsetsRetentionCheckInterval time.Duration `yaml:"offsets_retention_check_interval"`
	// ScrubOnStart verifies the CRC of every batch of every segment (the
	// active one up to its last whole batch) in the background after
	// start, reporting corruption without changing anything (as `broker
	// scrub` does). Default false.
	ScrubOnStart bool `yaml:"scrub_on_start"`
	// Authorization checks requests against Kafka ACLs; off by default
	// (see AuthorizationConfig).
	Authorization AuthorizationConfig `yaml:"authorization"`

	// Logger receives the broker's structured logs. Nil discards them.
	Logger *slog.Logger `yaml:"-"`
	// FS is the file system of the partition logs and the offset store;
	// nil is the operating system's. Tests inject faults through it.
	FS commitlog.FS `yaml:"-"`
}

// TopicDefaults are the broker-wide defaults of the per-topic configs
// (Kafka's log.* broker settings).
type TopicDefaults struct {
	// RetentionMs is retention.ms: -1 keeps data forever. Default 7 days.
	RetentionMs int64 `yaml:"retention_ms"`
	// RetentionBytes is retention.bytes per partition: -1 is unlimited.
	// Default -1.
	RetentionBytes int64 `yaml:"retention_bytes"`
	// SegmentBytes is segment.bytes. Default 1 GiB.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// SegmentMs is segment.ms. Default 7 days.
	SegmentMs int64 `yaml:"segment_ms"`
	// MaxMessageBytes is max.message.bytes, the largest record batch a
	// producer may send. Default 1048588, as Kafka.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
}

const week = 7 * 24 * time.Hour

// DefaultConfig returns the configuration `broker serve` uses when nothing
// overrides it. DataDir is left empty: callers must choose one.
func DefaultConfig() Config {
	return Config{
		Listen:                        "127.0.0.1:9092",
		Flush:                         "always",
		FlushInterval:                 time.Second,
		DefaultPartitions:             1,
		MaxRequestBytes:               100 << 20,
		MaxControlRequestBytes:        8 << 20,
		FetchMaxBytes:                 55 << 20,
		GroupMinSessionTimeout:        6 * time.Second,
		GroupMaxSessionTimeout:        30 * time.Minute,
		GroupInitialRebalanceDelay:    3 * time.Second,
		GroupMaxSize:                  1000,
		RetentionCheckInterval:        5 * time.Minute,
		MaxConnections:                1000,
		MaxConnectionsPerIP:           200,
		ConnectionsMaxIdle:            10 * time.Minute,
		RequestReadTimeout:            30 * time.Second,
		ResponseWriteTimeout:          30 * time.Second,
		QueuedMaxRequestBytes:         256 << 20,
		QueuedMaxResponseBytes:        256 << 20,
		MaxPartitions:                 4000,
		MaxOpenClosedSegments:         256,
		ClosedSegmentIdle:             time.Minute,
		OffsetsRetention:              week,
		OffsetsRetentionCheckInterval: 10 * time.Minute,
		SASL:                          SASLConfig{FailedAuthenticationDelay: 100 * time.Millisecond},
		Topics: TopicDefaults{
			RetentionMs:     week.Milliseconds(),
			RetentionBytes:  -1,
			SegmentBytes:    1 << 30,
			SegmentMs:       week.Milliseconds(),
			MaxMessageBytes: 1048588,
		},
	}
}

// Validate reports the first invalid field, naming it and its value.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("data_dir: required (the directory for the broker's logs and metadata)")
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	if err := c.SASL.validate(); err != nil {
		return err
	}
	if c.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
			return fmt.Errorf("http_listen: %q is not host:port: %v", c.HTTPListen, err)
		}
	}
	if _, err := c.flushPolicy(); err != nil {
		return err
	}
	if c.Flush == "interval" && c.FlushInterval <= 0 {
		return fmt.Errorf("flush_interval: %v must be positive with flush: interval", c.FlushInterval)
	}
	if c.DefaultPartitions < 1 || c.DefaultPartitions > maxPartitions {
		return fmt.Errorf("default_partitions: %d must be within [1, %d]", c.DefaultPartitions, maxPartitions)
	}
	if c.MaxRequestBytes < 1<<20 {
		return fmt.Errorf("max_request_bytes: %d must be at least 1 MiB", c.MaxRequestBytes)
	}
	if c.MaxControlRequestBytes < 64<<10 || c.MaxControlRequestBytes > c.MaxRequestBytes {
		return fmt.Errorf("max_control_request_bytes: %d must be within [64 KiB, max_request_bytes]", c.MaxControlRequestBytes)
	}
	if c.FetchMaxBytes < 1024 {
		return fmt.Errorf("fetch_max_bytes: %d must be at least 1024", c.FetchMaxBytes)
	}
	if c.GroupMinSessionTimeout <= 0 || c.GroupMaxSessionTimeout < c.GroupMinSessionTimeout {
		return fmt.Errorf("group_min_session_timeout %v, group_max_session_timeout %v: need 0 < min <= max", c.GroupMinSessionTimeout, c.GroupMaxSessionTimeout)
	}
	if c.GroupInitialRebalanceDelay < 0 {
		return fmt.Errorf("group_initial_rebalance_delay: %v must not be negative", c.GroupInitialRebalanceDelay)
	}
	if c.GroupMaxSize < 1 {
		return fmt.Errorf("group_max_size: %d must be at least 1", c.GroupMaxSize)
	}
	if c.RetentionCheckInterval <= 0 {
		return fmt.Errorf("retention_check_interval: %v must be positive", c.RetentionCheckInterval)
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if err := c.Authorization.validate(); err != nil {
		return err
	}
	for _, kv := range c.Topics.configs() {
		if err := validateTopicConfig(kv.name, kv.value); err != nil {
			return fmt.Errorf("topic_defaults: %w", err)
		}
	}
	return nil
}

func (c Config) flushPolicy() (commitlog.FlushPolicy, error) {
	switch c.Flush {
	case "", "always":
		return commitlog.FlushAlways, nil
	case "interval":
		return commitlog.FlushInterval, nil
	}
	return 0, fmt.Errorf("flush: %q must be always or interval", c.Flush)
}

// validateLimits checks the resource limits.
func (c Config) validateLimits() error {
	switch {
	case c.MaxConnections < 1:
		return fmt.Errorf("max_connections: %d must be at least 1", c.MaxConnections)
	case c.MaxConnectionsPerIP < 1 || c.MaxConnectionsPerIP > c.MaxConnections:
		return fmt.Errorf("max_connections_per_ip: %d must be within [1, max_connections %d]", c.MaxConnectionsPerIP, c.MaxConnections)
	case c.ConnectionsMaxIdle <= 0:
		return fmt.Errorf("connections_max_idle: %v must be positive", c.ConnectionsMaxIdle)
	case c.RequestReadTimeout <= 0:
		return fmt.Errorf("request_read_timeout: %v must be positive", c.RequestReadTimeout)
	case c.ResponseWriteTimeout <= 0:
		return fmt.Errorf("response_write_timeout: %v must be positive", c.ResponseWriteTimeout)
	case c.QueuedMaxRequestBytes < int64(c.MaxRequestBytes):
		return fmt.Errorf("queued_max_request_bytes: %d must be at least max_request_bytes %d, or no request of the largest size could be read", c.QueuedMaxRequestBytes, c.MaxRequestBytes)
	case c.QueuedMaxResponseBytes < int64(c.FetchMaxBytes):
		return fmt.Errorf("queued_max_response_bytes: %d must be at least fetch_max_bytes %d", c.QueuedMaxResponseBytes, c.FetchMaxBytes)
	case c.MaxPartitions < 1:
		return fmt.Errorf("max_partitions: %d must be at least 1", c.MaxPartitions)
	case c.MaxOpenClosedSegments < 1:
		return fmt.Errorf("max_open_closed_segments: %d must be at least 1", c.MaxOpenClosedSegments)
	case c.ClosedSegmentIdle <= 0:
		return fmt.Errorf("closed_segment_idle: %v must be positive", c.ClosedSegmentIdle)
	case c.OffsetsRetention <= 0:
		return fmt.Errorf("offsets_retention: %v must be positive", c.OffsetsRetention)
	case c.OffsetsRetentionCheckInterval <= 0:
		return fmt.Errorf("offsets_retention_check_interval: %v must be positive", c.OffsetsRetentionCheckInterval)
	}
	return nil
}

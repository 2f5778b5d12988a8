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
	// Listen is the TCP address the broker accepts Kafka connections on.
	// Default "127.0.0.1:9092"; use port 0 for an ephemeral port (tests).
	Listen string `yaml:"listen"`
	// AdvertisedAddr is the host:port the broker tells clients to connect
	// to in Metadata. Empty means the listener's actual address.
	AdvertisedAddr string `yaml:"advertised_addr"`
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

	// Logger receives the broker's structured logs. Nil discards them.
	Logger *slog.Logger `yaml:"-"`
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
		Listen:                     "127.0.0.1:9092",
		Flush:                      "always",
		FlushInterval:              time.Second,
		DefaultPartitions:          1,
		MaxRequestBytes:            100 << 20,
		MaxControlRequestBytes:     8 << 20,
		FetchMaxBytes:              55 << 20,
		GroupMinSessionTimeout:     6 * time.Second,
		GroupMaxSessionTimeout:     30 * time.Minute,
		GroupInitialRebalanceDelay: 3 * time.Second,
		GroupMaxSize:               1000,
		RetentionCheckInterval:     5 * time.Minute,
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
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port: %v", c.Listen, err)
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedAddr); err != nil {
			return fmt.Errorf("advertised_addr: %q is not host:port: %v", c.AdvertisedAddr, err)
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

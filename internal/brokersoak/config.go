package brokersoak

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/configfile"
)

// Config is one soak run's settings. DefaultConfig gives those of
// `go run ./cmd/brokersoak`; the limits are set low enough for the hostile
// clients to hit them.
type Config struct {
	// Duration is how long the hostile clients run beside the
	// producer/consumer pair. Default 5m.
	Duration time.Duration
	// Warmup is how long the pair runs alone first; the broker's RSS at its
	// end is the baseline the peak is reported beside. Default 3s.
	Warmup time.Duration
	// DrainTimeout bounds, after the hostile clients stop, the producer's
	// flush, the consumer's drain and the final read of the log, each.
	// Default 60s.
	DrainTimeout time.Duration
	// BrokerBin is the broker binary to run; "" builds ./cmd/broker with
	// `go build` into the work directory (the current directory must be
	// inside the factorywire module).
	BrokerBin string
	// Dir is where the work directory (broker config, data and log) is
	// made; "" is os.TempDir(). The work directory is removed at the end
	// unless Keep is set or the run failed.
	Dir  string
	Keep bool
	// Seed seeds every random choice (group ids, garbage bytes, which old
	// offsets are read). Default 1.
	Seed uint64
	// Kinds names the hostile clients to run; nil runs all (see Kinds).
	Kinds []string
	// Strict makes every unmet expectation of a hostile client (a
	// slowloris never disconnected, a malformed batch accepted, ...) fail
	// the run, as lost records and the open-files bound always do.
	Strict bool
	// MetricsURL is the broker's Prometheus endpoint, scraped at the end
	// for factorywire_broker_limit_hits_total; "" skips it.
	MetricsURL string
	// ExtraBrokerConfig is a YAML file of broker config keys (as in
	// configs/broker.yaml) merged over the soak's; "" adds none. It may
	// not set listen or data_dir.
	ExtraBrokerConfig string

	// Rate is the pair's offered load in records per second. Default 400.
	Rate int
	// ValueBytes is each record's value size. Default 200.
	ValueBytes int
	// Topics and Partitions shape the pair's topics (soak-pair-N, each
	// with Partitions partitions). Defaults 3 and 4.
	Topics, Partitions int
	// Keys is how many record keys (devices) the producer cycles through;
	// each has its own sequence. Default 48.
	Keys int
	// SegmentBytes is segment.bytes of the pair's topics, small so that
	// segments roll and many closed segments exist. Default 64 KiB.
	SegmentBytes int64

	// The broker's limits (configs/broker.yaml documents each).
	MaxConnections         int           // default 200
	MaxConnectionsPerIP    int           // default 150
	ConnectionsMaxIdle     time.Duration // default 5s
	RequestReadTimeout     time.Duration // default 2s
	ResponseWriteTimeout   time.Duration // default 2s
	QueuedMaxRequestBytes  int64         // default 128 MiB
	QueuedMaxResponseBytes int64         // default 64 MiB
	MaxPartitions          int           // default 300
	MaxOpenClosedSegments  int           // default 32
	ClosedSegmentIdle      time.Duration // default 10s
	// OffsetsRetention and OffsetsRetentionCheckInterval are short so the
	// churned groups' offsets expire within the run. Defaults 20s and 5s.
	OffsetsRetention              time.Duration
	OffsetsRetentionCheckInterval time.Duration

	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Names of the hostile clients, as -kinds takes them.
const (
	KindConnFlood   = "conn-flood"
	KindIPFlood     = "ip-flood"
	KindSlowloris   = "slowloris"
	KindAnnounce    = "large-announce"
	KindNonReader   = "non-reader"
	KindMalformed   = "malformed-batches"
	KindGarbage     = "garbage-frames"
	KindTopicStorm  = "create-topics-storm"
	KindGroupChurn  = "group-churn"
	KindIdle        = "idle-connections"
	KindColdReads   = "cold-reads"
	openFilesMargin = 64
)

// Kinds lists every hostile client, in the report's order.
func Kinds() []string {
	return []string{KindConnFlood, KindIPFlood, KindSlowloris, KindAnnounce, KindNonReader,
		KindMalformed, KindGarbage, KindTopicStorm, KindGroupChurn, KindIdle, KindColdReads}
}

// DefaultConfig returns the settings of a default run.
func DefaultConfig() Config {
	return Config{
		Duration:                      5 * time.Minute,
		Warmup:                        3 * time.Second,
		DrainTimeout:                  60 * time.Second,
		Seed:                          1,
		Rate:                          400,
		ValueBytes:                    200,
		Topics:                        3,
		Partitions:                    4,
		Keys:                          48,
		SegmentBytes:                  64 << 10,
		MaxConnections:                200,
		MaxConnectionsPerIP:           150,
		ConnectionsMaxIdle:            5 * time.Second,
		RequestReadTimeout:            2 * time.Second,
		ResponseWriteTimeout:          2 * time.Second,
		QueuedMaxRequestBytes:         128 << 20,
		QueuedMaxResponseBytes:        64 << 20,
		MaxPartitions:                 300,
		MaxOpenClosedSegments:         32,
		ClosedSegmentIdle:             10 * time.Second,
		OffsetsRetention:              20 * time.Second,
		OffsetsRetentionCheckInterval: 5 * time.Second,
	}
}

// Validate reports the first invalid setting, naming it.
func (c Config) Validate() error {
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("duration: %v must be positive", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("warmup: %v must not be negative", c.Warmup)
	case c.DrainTimeout <= 0:
		return fmt.Errorf("drain-timeout: %v must be positive", c.DrainTimeout)
	case c.Rate < 1 || c.Rate > 100_000:
		return fmt.Errorf("rate: %d records/s must be within [1, 100000]", c.Rate)
	case c.ValueBytes < 32:
		return fmt.Errorf("value-bytes: %d must be at least 32 (the key's sequence number is in the value)", c.ValueBytes)
	case c.Topics < 1 || c.Topics > 100:
		return fmt.Errorf("topics: %d must be within [1, 100]", c.Topics)
	case c.Partitions < 1:
		return fmt.Errorf("partitions: %d must be at least 1", c.Partitions)
	case c.Keys < 1:
		return fmt.Errorf("keys: %d must be at least 1", c.Keys)
	case c.Topics*c.Partitions+1 > c.MaxPartitions:
		return fmt.Errorf("max-partitions: %d leaves no room for the pair's %d partitions and the malformed-batch topic", c.MaxPartitions, c.Topics*c.Partitions)
	}
	for _, k := range c.Kinds {
		if !slices.Contains(Kinds(), k) {
			return fmt.Errorf("kinds: unknown hostile client %q (known: %s)", k, strings.Join(Kinds(), ", "))
		}
	}
	// The broker validates its own keys when the config is loaded.
	return nil
}

// runs reports whether hostile client kind is to run.
func (c Config) runs(kind string) bool { return len(c.Kinds) == 0 || slices.Contains(c.Kinds, kind) }

// brokerYAML returns the broker config file of a run: the soak's limits
// over the broker's defaults, then ExtraBrokerConfig's keys.
func (c Config) brokerYAML(dataDir string) ([]byte, error) {
	m := map[string]any{
		"listen":                           "127.0.0.1:0",
		"data_dir":                         dataDir,
		"max_connections":                  c.MaxConnections,
		"max_connections_per_ip":           c.MaxConnectionsPerIP,
		"connections_max_idle":             c.ConnectionsMaxIdle.String(),
		"request_read_timeout":             c.RequestReadTimeout.String(),
		"response_write_timeout":           c.ResponseWriteTimeout.String(),
		"queued_max_request_bytes":         c.QueuedMaxRequestBytes,
		"queued_max_response_bytes":        c.QueuedMaxResponseBytes,
		"max_partitions":                   c.MaxPartitions,
		"max_open_closed_segments":         c.MaxOpenClosedSegments,
		"closed_segment_idle":              c.ClosedSegmentIdle.String(),
		"offsets_retention":                c.OffsetsRetention.String(),
		"offsets_retention_check_interval": c.OffsetsRetentionCheckInterval.String(),
	}
	if c.ExtraBrokerConfig != "" {
		raw, err := os.ReadFile(c.ExtraBrokerConfig)
		if err != nil {
			return nil, fmt.Errorf("broker-config: %w", err)
		}
		var extra map[string]any
		if err := yaml.Unmarshal(raw, &extra); err != nil {
			return nil, fmt.Errorf("broker-config %s: %w", c.ExtraBrokerConfig, err)
		}
		for k, v := range extra {
			if k == "listen" || k == "data_dir" {
				return nil, fmt.Errorf("broker-config %s: %s is chosen by the soak and may not be set", c.ExtraBrokerConfig, k)
			}
			m[k] = v
		}
	}
	return yaml.Marshal(m)
}

// loadBrokerConfig decodes a broker config file the way `broker serve`
// does, so the bounds are computed from the limits the broker runs with.
func loadBrokerConfig(path string) (broker.Config, error) {
	bc := broker.DefaultConfig()
	if err := configfile.Load(path, &bc); err != nil {
		return bc, err
	}
	if err := bc.Validate(); err != nil {
		return bc, fmt.Errorf("%s: %w", path, err)
	}
	return bc, nil
}

// openFilesBound is the most files the broker may hold open under bc:
// a socket per connection, the three files of each partition's active
// segment, three per open closed segment, and a fixed margin for the data
// directory's other files, the listener and stdio.
func openFilesBound(bc broker.Config) int {
	return bc.MaxConnections + bc.MaxPartitions*3 + bc.MaxOpenClosedSegments*3 + openFilesMargin
}

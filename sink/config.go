package sink

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/configfile"
	"github.com/factorywire/factorywire/internal/kafkaclient"
)

// Config is a sink's configuration, decoded strictly from YAML
// (configs/sink.yaml documents every key with an example).
type Config struct {
	// Factories lists the factories whose topics the sink consumes: every
	// topic [<prefix>.]<factory>.<class> of one of them, never their .dlq
	// topics. Exactly one of Factories and TopicsPattern is required.
	Factories []string `yaml:"factories"`
	// TopicPrefix is the deployment prefix put before every topic when
	// several deployments share a cluster: <prefix>.<factory>.<class>.
	// With Factories, a topic matches with or without it (see
	// TopicsRegex). Lower-case [a-z0-9-].
	TopicPrefix string `yaml:"topic_prefix"`
	// TopicsPattern is instead of Factories a regular expression (RE2,
	// anchored by the sink with ^ and $) of the topics to consume. Topics
	// ending in .dlq are never consumed. A topic's last two dot-separated
	// parts must be its factory and class.
	TopicsPattern string `yaml:"topics_pattern"`
	// HTTPListen is the address of /metrics, /healthz and /readyz; empty
	// disables them. Default 127.0.0.1:9109.
	HTTPListen string `yaml:"http_listen"`
	// Kafka is where samples are consumed from and dead letters produced
	// to.
	Kafka KafkaConfig `yaml:"kafka"`
	// MongoDB is where samples are stored.
	MongoDB MongoConfig `yaml:"mongodb"`
	// Batch bounds one batch: records are written, and offsets saved and
	// committed, once per batch.
	Batch BatchConfig `yaml:"batch"`
	// Retry paces the retries of a batch after transient failures.
	Retry RetryConfig `yaml:"retry"`
	// MaxFutureSkew is how far past the reference time (the broker's
	// LogAppendTime when the topic uses it, else the sink's clock) a
	// sample's ts may lie before the record is a dead letter. Default 1h;
	// at least 1s.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// MaxPastSkew, if not zero, is how far behind the sink's clock a
	// sample's ts may lie before the record is a dead letter of class
	// too-old. A sample older than its collection's expire_after is one
	// whatever this says: MongoDB would delete it at the TTL monitor's
	// next pass. Default 0: only the TTL bounds the past.
	MaxPastSkew time.Duration `yaml:"max_past_skew"`
	// SummaryInterval is how often the device status and the rollups
	// folded since they were last written are written: both are updated
	// in memory at every batch, written beside the batches at most this
	// often (one write at a time, and when the sink stops), and until
	// they are, the checkpoint does not pass the samples folded into
	// them, so that a crash loses nothing from them but makes the next
	// sink consume up to this much (and the write) again. 0 writes them
	// as soon as the last write has ended. Default 5s; at most 10m.
	SummaryInterval time.Duration `yaml:"summary_interval"`
	// Collections sets each collection's time-series options when the
	// sink creates it: one collection per topic, named as the topic.
	Collections CollectionsConfig `yaml:"collections"`
	// ShutdownTimeout bounds how long a stopping sink keeps trying to
	// write and commit its last batch. What it could not write is consumed
	// again by the next member. When a write was cut off, the sink then
	// waits out that write's deadline (up to retry.attempt_timeout and a
	// second more), so that it cannot land after the sink left. Default
	// 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// KafkaConfig says where records come from.
type KafkaConfig struct {
	// Config is the connection: brokers (default [127.0.0.1:9092]), tls
	// and sasl, as every component spells them (see kafkaclient).
	kafkaclient.Config `yaml:",inline"`
	// Group is the consumer group. Default factorywire-sink.
	Group string `yaml:"group"`
	// SessionTimeout is how long the group coordinator waits for a
	// member's heartbeat before evicting it. Default 45s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// HeartbeatInterval is how often a member tells the coordinator it is
	// alive, and learns of a rebalance. Default 3s; less than
	// SessionTimeout.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// RebalanceTimeout is how long a rebalance waits for members to
	// finish their batch and rejoin. Default 60s; at least twice
	// retry.attempt_timeout, so that a member can finish a write, or give
	// it up and wait out its deadline, before the group evicts it.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// InstanceID, if set, makes the member static (Kafka's
	// group.instance.id, KIP-345): restarted with the same id, it takes its
	// partitions back at once, without a rebalance, and it does not leave
	// the group when it stops, so its partitions wait for it up to
	// SessionTimeout. Unique per member. Default empty (dynamic member).
	InstanceID string `yaml:"instance_id"`
	// FetchMaxBytes bounds one fetch response. Default 50 MiB.
	FetchMaxBytes int32 `yaml:"fetch_max_bytes"`
}

// MongoConfig says where samples are stored.
type MongoConfig struct {
	// URI is the MongoDB connection string. Default
	// mongodb://127.0.0.1:27017.
	URI string `yaml:"uri"`
	// Database holds the collections and the offsets checkpoint. Default
	// factorywire.
	Database string `yaml:"database"`
	// ServerSelectionTimeout is how long an operation waits for a
	// reachable server (a primary for writes) before it fails and is
	// retried. Default 10s.
	ServerSelectionTimeout time.Duration `yaml:"server_selection_timeout"`
	// TimeSeries creates time-series collections (MongoDB 6.0 or later).
	// Default true; false only for the FerretDB stand-in used by tests and
	// the demo, which has no time-series collections (plain collections
	// with the same documents and index, no TTL).
	TimeSeries bool `yaml:"time_series"`
	// Shard shards every collection the sink creates, when URI names the
	// mongos routers of a sharded cluster (MongoDB 6.0 or later): each
	// topic's time-series collection on {meta.device: "hashed"},
	// device_status and the rollups on {_id: "hashed"}; sink_offsets stays
	// unsharded (mongots.Options.Shard). Needs TimeSeries. Against a
	// replica set or a standalone server the sink stops at its first
	// collection, naming the server, before creating it. Default
	// false. See docs/OPERATIONS.md, "Past one replica set".
	Shard bool `yaml:"shard"`
	// WriteConcern is the write concern of every write: "majority"
	// (default), which no failover undoes. Anything else (a number of
	// members such as 1, or a tag set's name) needs
	// AllowWeakWriteConcern: a primary that acknowledges a write and fails
	// before a majority copied it rolls the write back, and the sink, told
	// the samples were stored, never writes them again.
	WriteConcern string `yaml:"write_concern"`
	// AllowWeakWriteConcern accepts a WriteConcern other than majority,
	// and the samples a failover may then lose. Default false.
	AllowWeakWriteConcern bool `yaml:"allow_weak_write_concern"`
}

// writeConcern returns the driver's write concern of m.WriteConcern, or
// an error naming the key when it is not allowed.
func (m MongoConfig) writeConcern() (*writeconcern.WriteConcern, error) {
	switch w := m.WriteConcern; {
	case w == "" || w == "majority":
		return writeconcern.Majority(), nil
	case w == "0":
		return nil, fmt.Errorf("mongodb.write_concern %q: unacknowledged writes lose samples without a trace; want majority", w)
	case !m.AllowWeakWriteConcern:
		return nil, fmt.Errorf("mongodb.write_concern %q: a write concern other than majority loses acknowledged samples when the primary fails "+
			"before a majority copied them; keep majority, or set mongodb.allow_weak_write_concern: true to accept that", w)
	default:
		if n, err := strconv.Atoi(w); err == nil {
			if n < 1 || n > 50 {
				return nil, fmt.Errorf("mongodb.write_concern %q: want majority, 1 to 50 members, or a tag set's name", w)
			}
			return &writeconcern.WriteConcern{W: n}, nil
		}
		return writeconcern.Custom(w), nil
	}
}

// BatchConfig bounds a batch.
type BatchConfig struct {
	// MaxRecords is the most records in one batch. Default 5000; 1 to
	// 100000.
	MaxRecords int `yaml:"max_records"`
	// MaxWait is how long a batch waits for more records after its first
	// one. Default 0: no wait, a batch is written as soon as it has
	// records and the previous batch is written, and holds what came in
	// meanwhile (up to MaxRecords), so batches grow with the load, not
	// with a timer. A positive value (up to 1m) makes fewer, larger
	// writes at low rates, each sample waiting up to that much longer;
	// before issue 16 the default was 500ms.
	MaxWait time.Duration `yaml:"max_wait"`
}

// RetryConfig paces retries after transient failures (MongoDB
// unreachable, not primary, timeouts; a dead-letter topic that cannot be
// produced to). A failing batch is retried forever, each wait doubling
// from MinBackoff up to MaxBackoff; every retry is logged and counted.
type RetryConfig struct {
	// MinBackoff is the first wait. Default 100ms.
	MinBackoff time.Duration `yaml:"min_backoff"`
	// MaxBackoff is the longest wait. Default 10s.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// AttemptTimeout bounds one attempt of one operation (a write, an
	// offsets save, a dead-letter produce). Default 20s.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
}

// CollectionsConfig sets the time-series options of the collections the
// sink creates. A collection that exists already is left as it is.
type CollectionsConfig struct {
	// Default applies to every class without an entry in Classes.
	// Default granularity seconds, no expiry.
	Default CollectionConfig `yaml:"default"`
	// Classes overrides Default per device class (the last part of the
	// topic). An entry's granularity or bucket_max_span replaces both of
	// Default's; its expire_after, when given, replaces Default's.
	Classes map[string]CollectionConfig `yaml:"classes"`
}

// CollectionConfig is one class's time-series options.
type CollectionConfig struct {
	// Granularity is seconds, minutes or hours: MongoDB's bucketing hint,
	// matching how often a device of the class is polled. Exclusive with
	// BucketMaxSpan.
	Granularity string `yaml:"granularity"`
	// BucketMaxSpan sets bucketMaxSpanSeconds (and bucketRoundingSeconds
	// to the same value, MongoDB 6.3 or later) instead of Granularity:
	// 1s to 365 days, whole seconds.
	BucketMaxSpan time.Duration `yaml:"bucket_max_span"`
	// ExpireAfter is the TTL: documents older than this are deleted by
	// MongoDB (expireAfterSeconds, whole seconds). Absent or 0 keeps
	// them forever.
	ExpireAfter *time.Duration `yaml:"expire_after"`
	// Rollups are the per-device minute and hour aggregates of every
	// numeric field, kept in regular collections with their own TTL.
	Rollups RollupsConfig `yaml:"rollups"`
}

// RollupsConfig sets a class's rollups. A class's entry replaces the
// default's keys it gives.
type RollupsConfig struct {
	// Enabled writes rollups as samples are stored. Default true.
	Enabled *bool `yaml:"enabled"`
	// MinuteExpireAfter is the TTL of the minute rollups (<topic>_1m),
	// whole seconds; 0 keeps them forever. Default 8760h (a year).
	MinuteExpireAfter *time.Duration `yaml:"minute_expire_after"`
	// HourExpireAfter is the TTL of the hour rollups (<topic>_1h); 0
	// (default) keeps them forever.
	HourExpireAfter *time.Duration `yaml:"hour_expire_after"`
}

// expireAfter returns the TTL of the rollups of period name ("1m", "1h").
func (r RollupsConfig) expireAfter(period string) time.Duration {
	d := r.HourExpireAfter
	if period == "1m" {
		d = r.MinuteExpireAfter
	}
	if d == nil {
		return 0
	}
	return *d
}

// DefaultConfig returns a Config with every default set. Factories (or
// TopicsPattern) are left to the caller.
func DefaultConfig() Config {
	return Config{
		HTTPListen: "127.0.0.1:9109",
		Kafka: KafkaConfig{
			Config:            kafkaclient.Config{Brokers: []string{"127.0.0.1:9092"}},
			Group:             DefaultGroup,
			SessionTimeout:    45 * time.Second,
			HeartbeatInterval: 3 * time.Second,
			RebalanceTimeout:  60 * time.Second,
			FetchMaxBytes:     50 << 20,
		},
		MongoDB:         MongoConfig{URI: "mongodb://127.0.0.1:27017", Database: "factorywire", ServerSelectionTimeout: 10 * time.Second, TimeSeries: true, WriteConcern: "majority"},
		Batch:           BatchConfig{MaxRecords: 5000},
		Retry:           RetryConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, AttemptTimeout: 20 * time.Second},
		MaxFutureSkew:   time.Hour,
		SummaryInterval: 5 * time.Second,
		Collections: CollectionsConfig{Default: CollectionConfig{Granularity: "seconds", Rollups: RollupsConfig{
			Enabled: ptr(true), MinuteExpireAfter: ptr(365 * 24 * time.Hour), HourExpireAfter: ptr(time.Duration(0)),
		}}},
		ShutdownTimeout: 30 * time.Second,
	}
}

// DefaultGroup is the consumer group of a sink unless configured.
const DefaultGroup = "factorywire-sink"

// LoadConfig reads the YAML file at path over DefaultConfig, expanding
// ${VAR} from the environment, and resolves the kafka block's files
// (tls.ca_file, cert_file, key_file, sasl.password_file) against the
// file's directory. It does not validate.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if err := configfile.Load(path, &cfg); err != nil {
		return Config{}, err
	}
	cfg.Kafka.RelativeTo(filepath.Dir(path))
	return cfg, nil
}

// TopicsRegex is the regular expression of the topics the sink consumes:
// with Factories, ^(<prefix>\.)?(<f1>|<f2>|…)\.[a-z0-9-]+$ (the prefix
// group only when TopicPrefix is set), else ^(?:TopicsPattern)$.
func (c Config) TopicsRegex() string {
	if c.TopicsPattern != "" {
		return "^(?:" + c.TopicsPattern + ")$"
	}
	quoted := make([]string, len(c.Factories))
	for i, f := range c.Factories {
		quoted[i] = regexp.QuoteMeta(f)
	}
	prefix := ""
	if c.TopicPrefix != "" {
		prefix = `(` + regexp.QuoteMeta(c.TopicPrefix) + `\.)?`
	}
	return `^` + prefix + `(` + strings.Join(quoted, "|") + `)\.[a-z0-9-]+$`
}

// collectionFor resolves the options of class's collections.
func (c CollectionsConfig) collectionFor(class string) CollectionConfig {
	spec := c.Default
	if o, ok := c.Classes[class]; ok {
		if o.Granularity != "" || o.BucketMaxSpan != 0 {
			spec.Granularity, spec.BucketMaxSpan = o.Granularity, o.BucketMaxSpan
		}
		if o.ExpireAfter != nil {
			spec.ExpireAfter = o.ExpireAfter
		}
		if o.Rollups.Enabled != nil {
			spec.Rollups.Enabled = o.Rollups.Enabled
		}
		if o.Rollups.MinuteExpireAfter != nil {
			spec.Rollups.MinuteExpireAfter = o.Rollups.MinuteExpireAfter
		}
		if o.Rollups.HourExpireAfter != nil {
			spec.Rollups.HourExpireAfter = o.Rollups.HourExpireAfter
		}
	}
	return spec
}

// Validate checks every field; its errors name the field and the value.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case len(c.Factories) == 0 && c.TopicsPattern == "":
		bad("factories: list the factories to consume (or give topics_pattern)")
	case len(c.Factories) > 0 && c.TopicsPattern != "":
		bad("factories and topics_pattern %q: give one of them, not both", c.TopicsPattern)
	}
	seen := map[string]bool{}
	for i, f := range c.Factories {
		if err := devices.ValidateName(f); err != nil {
			bad("factories[%d] %q: %v", i, f, err)
		}
		if seen[f] {
			bad("factories[%d] %q: listed twice", i, f)
		}
		seen[f] = true
	}
	if c.TopicPrefix != "" {
		if err := devices.ValidateName(c.TopicPrefix); err != nil {
			bad("topic_prefix %q: %v", c.TopicPrefix, err)
		}
	}
	if c.TopicsPattern != "" {
		if _, err := regexp.Compile(c.TopicsRegex()); err != nil {
			bad("topics_pattern %q: %v", c.TopicsPattern, err)
		}
	}
	if err := c.Kafka.Config.Validate(); err != nil {
		errs = append(errs, kafkaclient.Rekey(err, func(k string) string { return "kafka." + k }))
	}
	if c.Kafka.Group == "" {
		bad("kafka.group: required")
	}
	if c.Kafka.SessionTimeout < time.Second {
		bad("kafka.session_timeout %s: at least 1s", c.Kafka.SessionTimeout)
	}
	if c.Kafka.HeartbeatInterval <= 0 || c.Kafka.HeartbeatInterval >= c.Kafka.SessionTimeout {
		bad("kafka.heartbeat_interval %s: must be positive and less than kafka.session_timeout %s", c.Kafka.HeartbeatInterval, c.Kafka.SessionTimeout)
	}
	if len(c.Kafka.InstanceID) > 249 {
		bad("kafka.instance_id %q: at most 249 characters", c.Kafka.InstanceID)
	}
	if c.Kafka.RebalanceTimeout < 2*c.Retry.AttemptTimeout {
		bad("kafka.rebalance_timeout %s: at least twice retry.attempt_timeout %s, so a member finishes or gives up its batch before the group evicts it",
			c.Kafka.RebalanceTimeout, c.Retry.AttemptTimeout)
	}
	if c.Kafka.FetchMaxBytes < 1<<20 {
		bad("kafka.fetch_max_bytes %d: at least 1048576 (1 MiB)", c.Kafka.FetchMaxBytes)
	}
	if c.MongoDB.URI == "" {
		bad("mongodb.uri: required (mongodb://host:port)")
	} else if !strings.HasPrefix(c.MongoDB.URI, "mongodb://") && !strings.HasPrefix(c.MongoDB.URI, "mongodb+srv://") {
		bad("mongodb.uri %q: want mongodb:// or mongodb+srv://", redactURI(c.MongoDB.URI))
	}
	if c.MongoDB.Database == "" || strings.ContainsAny(c.MongoDB.Database, `/\. "$`) || len(c.MongoDB.Database) > 63 {
		bad("mongodb.database %q: want 1 to 63 characters without /\\. \"$ or space", c.MongoDB.Database)
	}
	if c.MongoDB.Shard && !c.MongoDB.TimeSeries {
		bad("mongodb.shard: true needs mongodb.time_series: true (sharding is for a MongoDB sharded cluster, never the FerretDB stand-in)")
	}
	if _, err := c.MongoDB.writeConcern(); err != nil {
		errs = append(errs, err)
	}
	if c.MongoDB.ServerSelectionTimeout < 100*time.Millisecond {
		bad("mongodb.server_selection_timeout %s: at least 100ms", c.MongoDB.ServerSelectionTimeout)
	}
	if c.Batch.MaxRecords < 1 || c.Batch.MaxRecords > 100000 {
		bad("batch.max_records %d: want 1 to 100000", c.Batch.MaxRecords)
	}
	if c.Batch.MaxWait < 0 || c.Batch.MaxWait > time.Minute {
		bad("batch.max_wait %s: want 0 (no wait) to 1m", c.Batch.MaxWait)
	}
	if c.Retry.MinBackoff <= 0 {
		bad("retry.min_backoff %s: must be positive", c.Retry.MinBackoff)
	}
	if c.Retry.MaxBackoff < c.Retry.MinBackoff {
		bad("retry.max_backoff %s: must be at least retry.min_backoff %s", c.Retry.MaxBackoff, c.Retry.MinBackoff)
	}
	if c.Retry.AttemptTimeout < 100*time.Millisecond {
		bad("retry.attempt_timeout %s: at least 100ms", c.Retry.AttemptTimeout)
	}
	if c.MaxFutureSkew < time.Second {
		bad("max_future_skew %s: at least 1s", c.MaxFutureSkew)
	}
	if c.SummaryInterval < 0 || c.SummaryInterval > 10*time.Minute {
		bad("summary_interval %s: want 0 (every batch) to 10m", c.SummaryInterval)
	}
	if c.MaxPastSkew != 0 && c.MaxPastSkew < time.Minute {
		bad("max_past_skew %s: 0 (off) or at least 1m", c.MaxPastSkew)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout %s: must be positive", c.ShutdownTimeout)
	}
	if err := c.Collections.Default.validate("collections.default", true); err != nil {
		errs = append(errs, err)
	}
	for class, cc := range c.Collections.Classes {
		if err := devices.ValidateName(class); err != nil {
			bad("collections.classes %q: %v", class, err)
		}
		if err := cc.validate("collections.classes."+class, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (cc CollectionConfig) validate(key string, isDefault bool) error {
	var errs []error
	switch cc.Granularity {
	case "":
		if isDefault && cc.BucketMaxSpan == 0 {
			errs = append(errs, fmt.Errorf("%s: give granularity (seconds, minutes or hours) or bucket_max_span", key))
		}
	case "seconds", "minutes", "hours":
		if cc.BucketMaxSpan != 0 {
			errs = append(errs, fmt.Errorf("%s: granularity %q and bucket_max_span %s: give one of them, not both", key, cc.Granularity, cc.BucketMaxSpan))
		}
	default:
		errs = append(errs, fmt.Errorf("%s.granularity %q: want seconds, minutes or hours", key, cc.Granularity))
	}
	if s := cc.BucketMaxSpan; s != 0 && (s < time.Second || s > 365*24*time.Hour || s%time.Second != 0) {
		errs = append(errs, fmt.Errorf("%s.bucket_max_span %s: want whole seconds from 1s to 8760h", key, s))
	}
	if e := cc.ExpireAfter; e != nil && (*e < 0 || *e%time.Second != 0) {
		errs = append(errs, fmt.Errorf("%s.expire_after %s: want whole seconds, 0 to keep documents forever", key, *e))
	}
	for _, r := range []struct {
		name string
		d    *time.Duration
	}{{"minute_expire_after", cc.Rollups.MinuteExpireAfter}, {"hour_expire_after", cc.Rollups.HourExpireAfter}} {
		if r.d != nil && (*r.d < 0 || *r.d%time.Second != 0 || *r.d > time.Duration(math.MaxInt32)*time.Second) {
			errs = append(errs, fmt.Errorf("%s.rollups.%s %s: want whole seconds up to about 68 years, 0 to keep rollups forever", key, r.name, *r.d))
		}
	}
	return errors.Join(errs...)
}

func ptr[T any](v T) *T { return &v }

// redactURI hides the password of a connection string in messages.
func redactURI(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return uri
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return uri
}

package broker

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// topicConfig describes one per-topic config the broker implements. Kafka
// has many more; asking for any other is an INVALID_CONFIG error that names
// it, so a setting is never silently ignored.
type topicConfig struct {
	name       string // topic config name, e.g. retention.ms
	brokerName string // the broker-wide default's name, e.g. log.retention.ms
	typ        kmsg.ConfigType
	doc        string
	min        int64                      // smallest valid value for numeric configs
	def        func(TopicDefaults) string // the broker default
	// derivedDefault is set when Kafka's brokerName has no default of its
	// own (log.retention.ms and log.roll.ms take theirs from
	// log.retention.hours and log.roll.hours): Kafka then lists no broker
	// synonym for the built-in default, only for a value the broker's
	// config sets.
	derivedDefault bool
}

var topicConfigs = []topicConfig{
	{
		name: "cleanup.policy", brokerName: "log.cleanup.policy", typ: kmsg.ConfigTypeList,
		doc: `"delete" discards whole segments by retention.ms and retention.bytes. "compact" is not implemented by this broker and is refused.`,
		def: func(TopicDefaults) string { return "delete" },
	},
	{
		name: "retention.ms", brokerName: "log.retention.ms", typ: kmsg.ConfigTypeLong, min: -1,
		doc:            "How long a closed segment is kept after its newest record, in milliseconds; -1 keeps data forever.",
		def:            func(d TopicDefaults) string { return strconv.FormatInt(d.RetentionMs, 10) },
		derivedDefault: true,
	},
	{
		// Kafka bounds retention.bytes by nothing: any negative value
		// is unlimited.
		name: "retention.bytes", brokerName: "log.retention.bytes", typ: kmsg.ConfigTypeLong, min: math.MinInt64,
		doc: "The most bytes a partition keeps before its oldest segments are deleted; a negative value (-1) is unlimited.",
		def: func(d TopicDefaults) string { return strconv.FormatInt(d.RetentionBytes, 10) },
	},
	{
		name: "segment.bytes", brokerName: "log.segment.bytes", typ: kmsg.ConfigTypeInt, min: 14,
		doc: "The size at which a partition's active segment is closed and a new one started.",
		def: func(d TopicDefaults) string { return strconv.FormatInt(d.SegmentBytes, 10) },
	},
	{
		name: "segment.ms", brokerName: "log.roll.ms", typ: kmsg.ConfigTypeLong, min: 1,
		doc:            "The age in milliseconds after which the active segment is closed even if not full, so retention can delete it.",
		def:            func(d TopicDefaults) string { return strconv.FormatInt(d.SegmentMs, 10) },
		derivedDefault: true,
	},
	{
		name: "max.message.bytes", brokerName: "message.max.bytes", typ: kmsg.ConfigTypeInt, min: 0,
		doc: "The largest record batch, in bytes, a producer may send to this topic.",
		def: func(d TopicDefaults) string { return strconv.FormatInt(d.MaxMessageBytes, 10) },
	},
}

func lookupTopicConfig(name string) (topicConfig, bool) {
	for _, c := range topicConfigs {
		if c.name == name {
			return c, true
		}
	}
	return topicConfig{}, false
}

// validateTopicConfig checks one name=value pair; the error names both and
// says what is accepted.
func validateTopicConfig(name, value string) error {
	c, ok := lookupTopicConfig(name)
	if !ok {
		return fmt.Errorf("config %q is not supported by this broker (supported: %s)", name, supportedConfigNames())
	}
	if name == "cleanup.policy" {
		if value != "delete" {
			return fmt.Errorf("cleanup.policy=%q: only \"delete\" is supported; log compaction is not implemented by this broker", value)
		}
		return nil
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return fmt.Errorf("%s=%q: not an integer", name, value)
	}
	if n < c.min {
		return fmt.Errorf("%s=%d: must be at least %d", name, n, c.min)
	}
	if c.typ == kmsg.ConfigTypeInt && n > 1<<31-1 {
		return fmt.Errorf("%s=%d: must fit in a 32-bit integer", name, n)
	}
	return nil
}

func supportedConfigNames() string {
	s := ""
	for i, c := range topicConfigs {
		if i > 0 {
			s += ", "
		}
		s += c.name
	}
	return s
}

type configKV struct{ name, value string }

// configs lists the defaults as topic config name and value.
func (d TopicDefaults) configs() []configKV {
	kvs := make([]configKV, 0, len(topicConfigs))
	for _, c := range topicConfigs {
		kvs = append(kvs, configKV{c.name, c.def(d)})
	}
	return kvs
}

// effective returns a topic's value for name: its override if set, else the
// broker default.
func (d TopicDefaults) effective(overrides map[string]string, name string) (value string, overridden bool) {
	if v, ok := overrides[name]; ok {
		return v, true
	}
	c, _ := lookupTopicConfig(name)
	return c.def(d), false
}

func (d TopicDefaults) effectiveInt(overrides map[string]string, name string) int64 {
	v, _ := d.effective(overrides, name)
	n, _ := strconv.ParseInt(v, 10, 64) // validated when stored
	return n
}

// logOptions applies a topic's effective configs to the broker's base log
// options.
func (d TopicDefaults) logOptions(base commitlog.Options, overrides map[string]string) commitlog.Options {
	o := base
	o.SegmentBytes = d.effectiveInt(overrides, "segment.bytes")
	o.SegmentAge = msToDuration(d.effectiveInt(overrides, "segment.ms"))
	if o.SegmentAge < 0 {
		o.SegmentAge = math.MaxInt64 // beyond 292 years: never by age
	}
	o.RetentionAge = msToDuration(d.effectiveInt(overrides, "retention.ms"))
	if o.RetentionAge == 0 {
		// Kafka's retention.ms=0 expires every record older than now;
		// a zero RetentionAge would be commitlog's default (7 days).
		o.RetentionAge = time.Nanosecond
	}
	o.RetentionBytes = d.effectiveInt(overrides, "retention.bytes")
	if o.RetentionBytes == 0 {
		// Kafka's retention.bytes=0 deletes every segment; a zero
		// RetentionBytes would be commitlog's default (unlimited).
		// One byte deletes every closed segment but the newest
		// bytes: Retain never deletes the active segment by size.
		o.RetentionBytes = 1
	}
	// The log only rejects batches that cannot be stored at all; the
	// topic's max.message.bytes is checked by Produce, which can answer
	// MESSAGE_TOO_LARGE for that partition.
	if m := d.effectiveInt(overrides, "max.message.bytes"); int64(o.MaxBatchBytes) < m {
		o.MaxBatchBytes = int(m)
	}
	return o
}

// msToDuration converts a config in milliseconds; negative, and values
// beyond what a Duration holds (about 292 years), are -1: unlimited.
func msToDuration(ms int64) time.Duration {
	if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

// sortedKeys returns m's keys in order, for deterministic output.
func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

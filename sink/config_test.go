package sink

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTopicsRegex(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       func(*Config)
		match, no []string
	}{
		{"factories", func(c *Config) { c.Factories = []string{"plant-a", "plant-b"} },
			[]string{"plant-a.press", "plant-b.power-meter"},
			[]string{"plant-a.press.dlq", "plant-c.press", "plant-ab.press", "xplant-a.press", "plant-a", "pfx.plant-a.press"}},
		{"prefix", func(c *Config) { c.Factories, c.TopicPrefix = []string{"plant-a"}, "site-1" },
			[]string{"site-1.plant-a.press", "plant-a.press"},
			[]string{"site-1.plant-a.press.dlq", "site-2.plant-a.press", "site-1.plant-b.press"}},
		{"pattern", func(c *Config) { c.TopicsPattern = `plant-a\.(press|oven)` },
			[]string{"plant-a.press", "plant-a.oven"},
			[]string{"plant-a.press.dlq", "plant-a.pressx", "x.plant-a.press"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			re := regexp.MustCompile(cfg.TopicsRegex())
			for _, m := range tc.match {
				if !re.MatchString(m) {
					t.Errorf("%s does not match %s", cfg.TopicsRegex(), m)
				}
			}
			for _, m := range tc.no {
				if re.MatchString(m) {
					t.Errorf("%s matches %s", cfg.TopicsRegex(), m)
				}
			}
		})
	}
}

func TestValidateNamesFieldAndValue(t *testing.T) {
	d := func(x time.Duration) *time.Duration { return &x }
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"no topics", func(c *Config) { c.Factories = nil }, "factories: list the factories"},
		{"both", func(c *Config) { c.TopicsPattern = "x" }, `factories and topics_pattern "x"`},
		{"bad factory", func(c *Config) { c.Factories = []string{"Plant_A"} }, `factories[0] "Plant_A"`},
		{"twice", func(c *Config) { c.Factories = []string{"a", "a"} }, `factories[1] "a": listed twice`},
		{"bad pattern", func(c *Config) { c.Factories, c.TopicsPattern = nil, "(" }, `topics_pattern "("`},
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers: at least one"},
		{"heartbeat", func(c *Config) { c.Kafka.HeartbeatInterval = time.Minute }, "kafka.heartbeat_interval 1m0s"},
		{"rebalance", func(c *Config) { c.Kafka.RebalanceTimeout = time.Second }, "kafka.rebalance_timeout 1s: at least twice retry.attempt_timeout 20s"},
		{"uri", func(c *Config) { c.MongoDB.URI = "http://user:secret@host" }, `mongodb.uri "http://user:xxxxx@host"`},
		{"database", func(c *Config) { c.MongoDB.Database = "a.b" }, `mongodb.database "a.b"`},
		{"shard on the stand-in", func(c *Config) { c.MongoDB.Shard, c.MongoDB.TimeSeries = true, false }, "mongodb.shard: true needs mongodb.time_series: true"},
		{"weak write concern", func(c *Config) { c.MongoDB.WriteConcern = "1" }, `mongodb.write_concern "1": a write concern other than majority loses acknowledged samples`},
		{"unacknowledged", func(c *Config) { c.MongoDB.WriteConcern, c.MongoDB.AllowWeakWriteConcern = "0", true }, `mongodb.write_concern "0": unacknowledged writes`},
		{"write concern members", func(c *Config) { c.MongoDB.WriteConcern, c.MongoDB.AllowWeakWriteConcern = "99", true }, `mongodb.write_concern "99"`},
		{"past skew", func(c *Config) { c.MaxPastSkew = time.Second }, "max_past_skew 1s: 0 (off) or at least 1m"},
		{"summary interval", func(c *Config) { c.SummaryInterval = time.Hour }, "summary_interval 1h0m0s: want 0 (every batch) to 10m"},
		{"rollup ttl", func(c *Config) {
			c.Collections.Classes = map[string]CollectionConfig{"press": {Rollups: RollupsConfig{HourExpireAfter: d(-time.Hour)}}}
		}, "collections.classes.press.rollups.hour_expire_after -1h0m0s"},
		{"batch", func(c *Config) { c.Batch.MaxRecords = 0 }, "batch.max_records 0"},
		{"wait", func(c *Config) { c.Batch.MaxWait = -time.Second }, "batch.max_wait -1s: want 0 (no wait) to 1m"},
		{"backoff", func(c *Config) { c.Retry.MaxBackoff = time.Millisecond }, "retry.max_backoff 1ms"},
		{"skew", func(c *Config) { c.MaxFutureSkew = 0 }, "max_future_skew 0s"},
		{"granularity", func(c *Config) { c.Collections.Default.Granularity = "days" }, `collections.default.granularity "days"`},
		{"exclusive", func(c *Config) { c.Collections.Default.BucketMaxSpan = time.Hour }, `collections.default: granularity "seconds" and bucket_max_span 1h0m0s`},
		{"span", func(c *Config) {
			c.Collections.Classes = map[string]CollectionConfig{"press": {BucketMaxSpan: 1500 * time.Millisecond}}
		}, "collections.classes.press.bucket_max_span 1.5s"},
		{"ttl", func(c *Config) {
			c.Collections.Classes = map[string]CollectionConfig{"press": {ExpireAfter: d(-time.Hour)}}
		}, "collections.classes.press.expire_after -1h0m0s"},
		{"class", func(c *Config) { c.Collections.Classes = map[string]CollectionConfig{"Press": {}} }, `collections.classes "Press"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Factories = []string{"plant-a"}
			tc.cfg(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCollectionFor(t *testing.T) {
	day, year := 24*time.Hour, 8760*time.Hour
	c := CollectionsConfig{
		Default: CollectionConfig{Granularity: "seconds", ExpireAfter: &day},
		Classes: map[string]CollectionConfig{
			"meter": {Granularity: "minutes", ExpireAfter: &year},
			"oven":  {BucketMaxSpan: time.Hour},
		},
	}
	for class, want := range map[string]CollectionConfig{
		"press": {Granularity: "seconds", ExpireAfter: &day},
		"meter": {Granularity: "minutes", ExpireAfter: &year},
		"oven":  {BucketMaxSpan: time.Hour, ExpireAfter: &day},
	} {
		got := c.collectionFor(class)
		if got.Granularity != want.Granularity || got.BucketMaxSpan != want.BucketMaxSpan || *got.ExpireAfter != *want.ExpireAfter {
			t.Errorf("collectionFor(%s) = %+v (ttl %v), want %+v (ttl %v)", class, got, *got.ExpireAfter, want, *want.ExpireAfter)
		}
	}
}

package broker

import (
	"math"
	"testing"
	"time"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// TestTopicConfigLogOptions checks how topic configs become log options
// where Kafka's meaning and commitlog's zero values or Duration's range
// could part: 0 is "nothing kept", not "the default", and a value in
// milliseconds too large for a Duration is unlimited, not wrapped around.
func TestTopicConfigLogOptions(t *testing.T) {
	d := DefaultConfig().Topics
	cases := []struct {
		name      string
		overrides map[string]string
		check     func(commitlog.Options) bool
	}{
		{"defaults", nil, func(o commitlog.Options) bool {
			return o.RetentionAge == week && o.RetentionBytes == -1 && o.SegmentAge == week
		}},
		{"retention.ms=0 expires everything", map[string]string{"retention.ms": "0"}, func(o commitlog.Options) bool {
			return o.RetentionAge > 0 && o.RetentionAge <= time.Millisecond
		}},
		{"retention.ms=-1 is unlimited", map[string]string{"retention.ms": "-1"}, func(o commitlog.Options) bool { return o.RetentionAge < 0 }},
		{"retention.ms past a Duration is unlimited", map[string]string{"retention.ms": "18446744073710"}, func(o commitlog.Options) bool {
			return o.RetentionAge < 0
		}},
		{"retention.ms=Long.MAX is unlimited", map[string]string{"retention.ms": "9223372036854775807"}, func(o commitlog.Options) bool {
			return o.RetentionAge < 0
		}},
		{"segment.ms=Long.MAX never rolls by age", map[string]string{"segment.ms": "9223372036854775807"}, func(o commitlog.Options) bool {
			return o.SegmentAge == math.MaxInt64
		}},
		{"retention.bytes=0 keeps nothing closed", map[string]string{"retention.bytes": "0"}, func(o commitlog.Options) bool {
			return o.RetentionBytes == 1
		}},
		{"retention.bytes=-5 is unlimited", map[string]string{"retention.bytes": "-5"}, func(o commitlog.Options) bool {
			return o.RetentionBytes < 0
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.overrides {
				if err := validateTopicConfig(k, v); err != nil {
					t.Fatalf("%s=%s refused: %v", k, v, err)
				}
			}
			o := d.logOptions(commitlog.Options{}.WithDefaults(), c.overrides)
			if !c.check(o) {
				t.Fatalf("retention age %v, retention bytes %d, segment age %v", o.RetentionAge, o.RetentionBytes, o.SegmentAge)
			}
			// The log must accept them (commitlog refuses a negative
			// SegmentAge, which an overflow used to produce).
			l, err := commitlog.Open(t.TempDir(), o)
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
		})
	}
}

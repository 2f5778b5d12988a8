package gateway

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// DefaultMaxSilence is a reporting-by-exception device's max_silence when
// neither its class entry nor the device sets one: a sample at least once
// a minute, the heartbeat that dashboards, "no data" alerts and `sink
// query` latest values (and Telegraf or Neuron users) expect.
const DefaultMaxSilence = time.Minute

// ExceptionConfig turns on report by exception for a device class
// (Config.ReportByException) or one device (DeviceConfig.ReportByException):
// a polled sample is sent only if it differs from the last sample sent by
// more than the deadbands, or max_silence has passed since that one.
type ExceptionConfig struct {
	// Deadband is, per field name, how far a number may move from the
	// value last sent without the move counting as a change. A field
	// without a deadband, and any non-numeric field, counts every change.
	// A device's entry replaces its class's for the same field; the
	// class's other fields keep theirs.
	Deadband map[string]Deadband `yaml:"deadband"`
	// MaxSilence is the longest time between two samples sent (measured
	// between their poll times): the first poll at least this long after
	// the last sample sent is sent even if nothing changed. 0s: never
	// forced. Unset: the class's, else DefaultMaxSilence (1m). A device's
	// value replaces its class's.
	MaxSilence *time.Duration `yaml:"max_silence"`
}

// Deadband is one field's deadband: exactly one of Absolute and Percent.
type Deadband struct {
	// Absolute: a change counts when |value - last sent| > Absolute, in
	// the field's engineering unit (after scale and offset).
	Absolute float64 `yaml:"absolute"`
	// Percent: a change counts when |value - last sent| > Percent/100 ×
	// |last sent|; any change from a last sent 0 counts.
	Percent float64 `yaml:"percent"`
}

func (d Deadband) String() string {
	if d.Percent > 0 {
		return fmt.Sprintf("percent %g", d.Percent)
	}
	return fmt.Sprintf("absolute %g", d.Absolute)
}

func (d Deadband) validate() error {
	bad := func(x float64) bool { return x < 0 || math.IsNaN(x) || math.IsInf(x, 0) }
	switch {
	case bad(d.Absolute) || bad(d.Percent):
		return fmt.Errorf("absolute %g, percent %g: want a finite number above 0", d.Absolute, d.Percent)
	case (d.Absolute > 0) == (d.Percent > 0):
		return fmt.Errorf("absolute %g, percent %g: set exactly one of absolute and percent, above 0", d.Absolute, d.Percent)
	}
	return nil
}

// validate checks e's deadbands and max_silence against class c (nil: the
// field names are not checked); errors start with where, the config key.
func (e ExceptionConfig) validate(where string, c *devices.Class) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(e.Deadband)) {
		if err := e.Deadband[name].validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s.deadband.%s: %v", where, name, err))
			continue
		}
		if c == nil {
			continue
		}
		f := c.Field(name)
		if f == nil {
			errs = append(errs, fmt.Errorf("%s.deadband.%s: class %q has no field %q (have %s)", where, name, c.Name, name, fieldNames(c)))
			continue
		}
		if f.Table.Bits() || f.Type == devices.TypeBool || f.Type == devices.TypeString {
			errs = append(errs, fmt.Errorf("%s.deadband.%s: field %q is a %s, not a number: every change of it counts", where, name, name, fieldKind(f)))
		}
	}
	if e.MaxSilence != nil && *e.MaxSilence < 0 {
		errs = append(errs, fmt.Errorf("%s.max_silence %s: must not be negative (0s: never forced)", where, *e.MaxSilence))
	}
	return errs
}

func fieldNames(c *devices.Class) string {
	names := make([]string, len(c.Fields))
	for i, f := range c.Fields {
		names[i] = f.Name
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func fieldKind(f *devices.Field) string {
	if f.Table.Bits() {
		return "bit"
	}
	return f.Type.String()
}

// exceptionFor merges a device's report-by-exception settings over its
// class's; nil when neither has any (every sample is sent).
func exceptionFor(class *ExceptionConfig, dev *ExceptionConfig) *exceptionFilter {
	if class == nil && dev == nil {
		return nil
	}
	f := &exceptionFilter{deadband: map[string]Deadband{}, maxSilence: DefaultMaxSilence}
	for _, e := range []*ExceptionConfig{class, dev} {
		if e == nil {
			continue
		}
		maps.Copy(f.deadband, e.Deadband)
		if e.MaxSilence != nil {
			f.maxSilence = *e.MaxSilence
		}
	}
	return f
}

// String describes f's settings for `gateway check`.
func (f *exceptionFilter) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "report by exception: max_silence %s", f.maxSilence)
	if f.maxSilence == 0 {
		b.WriteString(" (never forced)")
	}
	for i, name := range slices.Sorted(maps.Keys(f.deadband)) {
		if i == 0 {
			b.WriteString(", deadband ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s", name, f.deadband[name])
	}
	return b.String()
}

// exceptionFilter is one device's report by exception: the poller's
// modbus.Device.Report. It is owned by the device's connection goroutine.
type exceptionFilter struct {
	deadband   map[string]Deadband
	maxSilence time.Duration // 0: never forced
	last       *devices.Sample
}

// report says whether s is sent, and if so remembers it as the last sent.
// The first sample is sent; after it, a sample is sent when max_silence has
// passed since the last sent one, when a field appeared, disappeared or
// changed kind, when a field's error changed, or when a field moved beyond
// its deadband (any move for a field without one, or not a number).
func (f *exceptionFilter) report(s *devices.Sample) bool {
	if f.last == nil || f.changed(s) {
		last := *s // the maps are shared: the poller does not change them
		f.last = &last
		return true
	}
	return false
}

func (f *exceptionFilter) changed(s *devices.Sample) bool {
	last := f.last
	if f.maxSilence > 0 && s.Time.Sub(last.Time) >= f.maxSilence {
		return true
	}
	if len(s.Fields) != len(last.Fields) || len(s.Errors) != len(last.Errors) {
		return true
	}
	for name, msg := range s.Errors {
		if was, ok := last.Errors[name]; !ok || was != msg {
			return true
		}
	}
	for name, v := range s.Fields {
		was, ok := last.Fields[name]
		if !ok {
			return true
		}
		if db, ok := f.deadband[name]; ok {
			if beyond(db, was, v) {
				return true
			}
			continue
		}
		if !v.Equal(was) {
			return true
		}
	}
	return false
}

// beyond reports whether v moved from was by more than db; values that are
// not both numbers count any change.
func beyond(db Deadband, was, v devices.Value) bool {
	x, okx := number(was)
	y, oky := number(v)
	if !okx || !oky {
		return !v.Equal(was)
	}
	d := math.Abs(y - x)
	if math.IsNaN(d) {
		return true
	}
	if db.Percent > 0 {
		return d > db.Percent/100*math.Abs(x)
	}
	return d > db.Absolute
}

func number(v devices.Value) (float64, bool) {
	switch v.Kind() {
	case devices.KindInt64:
		return float64(v.Int64()), true
	case devices.KindUint64:
		return float64(v.Uint64()), true
	case devices.KindFloat64:
		return v.Float64(), true
	}
	return 0, false
}

package modbus

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MinInterval is the shortest poll interval a Schedule may have.
const MinInterval = 100 * time.Millisecond

// Schedule is when a device is polled: every Interval, or at the times of a
// cron spec. Exactly one of the two is set. YAML keys are the snake_case
// tags.
type Schedule struct {
	// Interval polls the device every Interval (at least MinInterval).
	// The due times are a fixed grid, phase + k*Interval since the Unix
	// epoch, where phase is its connection's (ScanPhases): the devices of
	// one connection with the same interval are read as one scan, back to
	// back, and the connections' scans start in groups of at most
	// ScanGroup spread over the interval. A poll that overruns skips the
	// due times it missed (no catch-up burst).
	Interval time.Duration `yaml:"interval"`
	// Cron polls the device at the times of a cron spec, robfig/cron v3
	// syntax with an optional leading seconds field: "*/5 * * * * *"
	// (every 5 s), "0 */15 * * * *" or "*/15 * * * *" (every 15 min, at
	// second 0), descriptors "@hourly", "@every 30s". Times are local
	// time unless the spec starts with CRON_TZ=<zone> (CRON_TZ=UTC 0 0 * * *).
	// Cron schedules are not phase-spread: they mean wall-clock times.
	Cron string `yaml:"cron"`
}

// String returns "every <interval>" or "cron <spec>".
func (s Schedule) String() string {
	if s.Cron != "" {
		return "cron " + s.Cron
	}
	return "every " + s.Interval.String()
}

// Validate reports whether the schedule is usable: exactly one of interval
// and cron, an interval of at least MinInterval, a cron spec that parses and
// fires at least once in the next five years.
func (s Schedule) Validate() error {
	_, err := s.compile()
	return err
}

// schedule is a compiled Schedule.
type schedule interface {
	// next returns the first due time strictly after t.
	next(t time.Time) time.Time
	// period returns the schedule's period around t, the unit of a failing
	// device's backoff.
	period(t time.Time) time.Duration
}

// compile checks s and builds its schedule. An interval schedule's phase
// is 0: the Poller sets it (ScanPhases).
func (s Schedule) compile() (schedule, error) {
	switch {
	case s.Interval != 0 && s.Cron != "":
		return nil, fmt.Errorf("%w: schedule: interval %v and cron %q are both set; set one", ErrInvalidConfig, s.Interval, s.Cron)
	case s.Cron != "":
		cs, err := parseCron(s.Cron)
		if err != nil {
			return nil, fmt.Errorf("%w: schedule: cron %q: %v", ErrInvalidConfig, s.Cron, err)
		}
		if cs.Next(time.Now()).IsZero() {
			return nil, fmt.Errorf("%w: schedule: cron %q never fires", ErrInvalidConfig, s.Cron)
		}
		return cronSchedule{cs}, nil
	case s.Interval == 0:
		return nil, fmt.Errorf("%w: schedule: set interval (e.g. 1s) or cron", ErrInvalidConfig)
	case s.Interval < MinInterval:
		return nil, fmt.Errorf("%w: schedule: interval %v is shorter than %v", ErrInvalidConfig, s.Interval, MinInterval)
	}
	return intervalSchedule{every: s.Interval}, nil
}

// cronParser accepts 5 or 6 fields (seconds optional) and descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseCron parses spec, turning the parser's panics on some malformed
// time zone prefixes ("CRON_TZ=UTC" without a space) into errors.
func parseCron(spec string) (s cron.Schedule, err error) {
	if strings.TrimSpace(spec) != spec {
		return nil, fmt.Errorf("leading or trailing white space")
	}
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("malformed spec (%v)", r)
		}
	}()
	return cronParser.Parse(spec)
}

// ScanGroup is the most connections whose scans of one interval start at
// the same moment.
const ScanGroup = 8

// ScanPhases returns the phase of each named connection's scans of one
// interval: the connections, in the order of a stable hash of their names
// (FNV-1a, 64 bit; ties by name), are taken ScanGroup at a time, and group
// g of n starts at g×interval/n. A connection keeps its phase across
// restarts as long as the set of connections with that interval is the
// same.
func ScanPhases(connNames []string, interval time.Duration) map[string]time.Duration {
	type ranked struct {
		name string
		h    uint64
	}
	rs := make([]ranked, 0, len(connNames))
	seen := map[string]bool{}
	for _, n := range connNames {
		if seen[n] {
			continue
		}
		seen[n] = true
		h := fnv.New64a()
		h.Write([]byte(n))
		rs = append(rs, ranked{n, h.Sum64()})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	groups := (len(rs) + ScanGroup - 1) / ScanGroup
	out := make(map[string]time.Duration, len(rs))
	for i, r := range rs {
		out[r.name] = time.Duration(int64(interval) * int64(i/ScanGroup) / int64(groups))
	}
	return out
}

type intervalSchedule struct {
	every time.Duration
	phase time.Duration
}

func (s intervalSchedule) next(t time.Time) time.Time {
	ns := t.UnixNano() - int64(s.phase)
	k := ns / int64(s.every)
	if ns < 0 && ns%int64(s.every) != 0 {
		k-- // floor division
	}
	return time.Unix(0, (k+1)*int64(s.every)+int64(s.phase))
}

func (s intervalSchedule) period(time.Time) time.Duration { return s.every }

type cronSchedule struct{ s cron.Schedule }

func (s cronSchedule) next(t time.Time) time.Time { return s.s.Next(t) }

func (s cronSchedule) period(t time.Time) time.Duration {
	a := s.s.Next(t)
	b := s.s.Next(a)
	if a.IsZero() || b.IsZero() {
		return 0
	}
	return b.Sub(a)
}

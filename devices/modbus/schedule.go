package modbus

import (
	"fmt"
	"hash/fnv"
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
	// epoch, where phase = Phase(connection name, Interval): the devices
	// of one connection with the same interval are read as one scan, back
	// to back, and different connections' scans are spread over the
	// interval instead of starting together. A connection keeps its phase
	// across restarts. A poll that overruns skips the due times it missed
	// (no catch-up burst).
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
	_, err := s.compile("")
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

// compile checks s and builds its schedule, phased by phaseKey (the name
// of the device's connection).
func (s Schedule) compile(phaseKey string) (schedule, error) {
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
	return intervalSchedule{every: s.Interval, phase: Phase(phaseKey, s.Interval)}, nil
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

// Phase returns the offset within interval at which the scans of a
// connection start: a stable hash (FNV-1a, 64 bit) of the connection's
// name modulo the interval. It is the same on every run, so a restarted
// gateway keeps each connection's phase; and where one interval divides
// another (1 s and 5 s), the longer one's due times fall on the shorter
// one's, so a connection's devices of both are read in one scan.
func Phase(connName string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(connName))
	return time.Duration(h.Sum64() % uint64(interval))
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

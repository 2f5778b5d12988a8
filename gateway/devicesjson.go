package gateway

import (
	"time"

	"github.com/factorywire/factorywire/devices/modbus"
)

// deviceJSON is one entry of /devices: a modbus.DeviceHealth in the shape
// of an HTTP API (snake_case keys, durations as seconds, times as RFC 3339
// in UTC, null for a time that has not happened yet). The schema is in the
// package documentation; a key is never renamed or removed without a note
// in it.
type deviceJSON struct {
	ID              string   `json:"id"`
	Factory         string   `json:"factory"`
	Class           string   `json:"class"`
	Connection      string   `json:"connection"`
	Unit            uint8    `json:"unit"`
	Schedule        string   `json:"schedule"`
	IntervalSeconds *float64 `json:"interval_seconds"` // null for a cron schedule
	Cron            *string  `json:"cron"`             // null for an interval schedule

	LastAttempt          *time.Time `json:"last_attempt"`
	LastSuccess          *time.Time `json:"last_success"`
	ConsecutiveFailures  int        `json:"consecutive_failures"`
	LastError            string     `json:"last_error"`
	LastRoundTripSeconds float64    `json:"last_round_trip_seconds"`
	NextDue              *time.Time `json:"next_due"`
	SlowedDown           bool       `json:"slowed_down"`
	NextSeq              uint64     `json:"next_seq"`

	Polls    uint64 `json:"polls"`
	Samples  uint64 `json:"samples"`
	Failures uint64 `json:"failures"`
	Overruns uint64 `json:"overruns"`
}

// devicesJSON converts the poller's snapshot for /devices; schedules gives
// each device's configured schedule by id.
func devicesJSON(health []modbus.DeviceHealth, schedules map[string]modbus.Schedule) []deviceJSON {
	out := make([]deviceJSON, len(health))
	for i, h := range health {
		d := deviceJSON{
			ID: h.ID, Factory: h.Factory, Class: h.Class, Connection: h.Conn, Unit: h.Unit, Schedule: h.Schedule,
			LastAttempt: timeOrNull(h.LastAttempt), LastSuccess: timeOrNull(h.LastSuccess),
			ConsecutiveFailures: h.ConsecutiveFailures, LastError: h.LastError,
			LastRoundTripSeconds: h.LastRoundTrip.Seconds(), NextDue: timeOrNull(h.NextDue),
			SlowedDown: h.SlowedDown, NextSeq: h.NextSeq,
			Polls: h.Polls, Samples: h.Samples, Failures: h.Failures, Overruns: h.Overruns,
		}
		if s, ok := schedules[h.ID]; ok {
			if s.Cron != "" {
				d.Cron = &s.Cron
			} else {
				secs := s.Interval.Seconds()
				d.IntervalSeconds = &secs
			}
		}
		out[i] = d
	}
	return out
}

// timeOrNull is t in UTC, or nil for the zero time.
func timeOrNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

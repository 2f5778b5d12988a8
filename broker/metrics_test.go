package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestLimitHitsLoggedOncePerInterval: every hit is counted; one line per
// limit and interval is logged, saying how many hits it did not log.
func TestLimitHitsLoggedOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	m := newMetrics(prometheus.NewRegistry())
	l := newLimits(slog.New(slog.NewTextHandler(&buf, nil)), m)
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	for range 5 {
		l.hit(limitMaxConnections, "connection refused", "client", "127.0.0.1:1")
	}
	l.hit(limitMaxPartitions, "create refused")
	now = now.Add(limitLogInterval)
	l.hit(limitMaxConnections, "connection refused", "client", "127.0.0.1:2")

	if got := counterValue(t, m.limitHits.WithLabelValues(limitMaxConnections)); got != 6 {
		t.Errorf("max_connections hits counted %v, want 6", got)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("logged %d lines, want 3:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "limit=max_connections") || strings.Contains(lines[0], "hits_not_logged") {
		t.Errorf("first line: %s", lines[0])
	}
	if !strings.Contains(lines[2], "hits_not_logged=4") || !strings.Contains(lines[2], "client=127.0.0.1:2") {
		t.Errorf("line after the interval: %s", lines[2])
	}
}

// counterValue reads a counter's value.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// limitHits reads how often the broker counted a hit of limit.
func limitHits(t testing.TB, b *Broker, limit string) float64 {
	t.Helper()
	return counterValue(t, b.metrics.limitHits.WithLabelValues(limit))
}

// gaugeValue reads a gauge's value.
func gaugeValue(t testing.TB, g interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

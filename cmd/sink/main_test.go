package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrorsAreUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"run"}, "--config FILE is required"},
		{"unknown key", []string{"run", "--config", writeFile(t, dir, "typo.yaml", "factories: [plant-a]\nbatch:\n  max_recods: 10\n")}, `typo.yaml:3: unknown key "max_recods"`},
		{"mistyped value", []string{"run", "--config", writeFile(t, dir, "type.yaml", "factories: [plant-a]\nbatch:\n  max_wait: soon\n")}, "type.yaml:3"},
		{"invalid value", []string{"run", "--config", writeFile(t, dir, "bad.yaml", "factories: [plant-a]\nbatch:\n  max_records: 0\n")}, "bad.yaml: batch.max_records 0: want 1 to 100000"},
		{"no factories", []string{"run", "--config", writeFile(t, dir, "empty.yaml", "http_listen: \"\"\n")}, "factories: list the factories"},
		{"bad factory", []string{"query", "range", "--config", writeFile(t, dir, "ok.yaml", "factories: [plant-a]\n"), "--factory", "Plant_A", "--class", "press", "--device", "d"}, `--factory "Plant_A"`},
		{"bad time", []string{"query", "range", "--config", filepath.Join(dir, "ok.yaml"), "--factory", "plant-a", "--class", "press", "--device", "d", "--from", "yesterday"}, `--from "yesterday"`},
		{"bad format", []string{"query", "latest", "--config", filepath.Join(dir, "ok.yaml"), "--factory", "plant-a", "--class", "press", "--format", "yaml"}, `--format "yaml": want text or json`},
		{"missing class", []string{"query", "latest", "--config", filepath.Join(dir, "ok.yaml"), "--factory", "plant-a"}, "--class is required"},
		{"missing factory and class", []string{"query", "latest", "--config", filepath.Join(dir, "ok.yaml")}, "--factory and --class are required"},
		{"missing device", []string{"query", "range", "--config", filepath.Join(dir, "ok.yaml"), "--factory", "plant-a", "--class", "press"}, "range needs --device"},
		{"no subcommand", nil, "missing subcommand"},
		{"no query", []string{"query"}, "missing subcommand: want latest, status, window, range or gaps"},
		{"unknown query", []string{"query", "lastest"}, `unknown subcommand "lastest"`},
		{"bad log level", []string{"run", "--config", filepath.Join(dir, "ok.yaml"), "--log-level", "loud"}, `--log-level "loud"`},
		{"bad log format", []string{"run", "--config", filepath.Join(dir, "ok.yaml"), "--log-format", "yaml"}, `--log-format "yaml": want text or json`},
		{"kafka block invalid", []string{"run", "--config", writeFile(t, dir, "sasl.yaml", "factories: [plant-a]\nkafka:\n  sasl:\n    mechanism: PLAIN\n")},
			"sasl.yaml: kafka.sasl.username: required with sasl.mechanism PLAIN"},
		{"password variable unset", []string{"run", "--config", writeFile(t, dir, "env.yaml",
			"factories: [plant-a]\nkafka:\n  sasl:\n    mechanism: PLAIN\n    username: sink\n    password_env: FW_SINK_TEST_UNSET\n")},
			`env.yaml: kafka.sasl.password_env "FW_SINK_TEST_UNSET": environment variable FW_SINK_TEST_UNSET is not set`},
		{"unset variable in the file", []string{"run", "--config", writeFile(t, dir, "var.yaml", "factories: [plant-a]\nkafka:\n  brokers: [\"${FW_SINK_TEST_UNSET}\"]\n")},
			"var.yaml:3: ${FW_SINK_TEST_UNSET}: environment variable FW_SINK_TEST_UNSET is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, &bytes.Buffer{})
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %v, want a usage error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// storeSamples writes n samples of each of devs (class press of plant-a)
// to the database db of the server at uri, in the stand-in mode (FerretDB
// has no time-series collections) or as time-series. press-02's samples
// have a tag and a unit (schema version 2), the others none (version 1).
func storeSamples(t *testing.T, uri, db string, timeSeries bool, devs []string, n int, t0 time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := mongots.DefaultOptions()
	opts.Database, opts.TimeSeries = db, timeSeries
	st := mongots.New(mongotest.Connect(t, uri, nil), opts)
	if timeSeries {
		mongotest.DropDatabase(t, st.Database())
	}
	if err := st.Ensure(ctx, mongots.CollectionSpec{Name: "plant-a.press"}); err != nil {
		t.Fatal(err)
	}
	var docs []mongots.Doc
	for i := range n {
		for _, d := range devs {
			smp := devices.Sample{
				Factory: "plant-a", Class: "press", Device: d, Time: t0.Add(time.Duration(i) * time.Minute), Seq: uint64(i),
				Fields: map[string]devices.Value{"pressure": devices.Float64Value(float64(i) + 0.5), "running": devices.BoolValue(true)},
				Errors: map[string]string{"temperature": "timeout"},
			}
			if d == "press-02" {
				smp.Tags, smp.Units = map[string]string{"line": "line-1"}, map[string]string{"pressure": "bar", "temperature": "degC"}
			}
			docs = append(docs, mongots.Doc{Sample: smp, Offset: int64(i)})
		}
	}
	if _, err := st.Write(ctx, "plant-a.press", docs); err != nil {
		t.Fatal(err)
	}
	// What the sink writes beside the samples: each device's status (its
	// newest sample) and the rollups.
	var status []mongots.DeviceStatus
	for _, d := range docs[len(docs)-len(devs):] {
		status = append(status, mongots.DeviceStatus{Topic: "plant-a.press", Sample: d.Sample, ErrorsSince: t0})
	}
	if err := st.UpdateStatus(ctx, status); err != nil {
		t.Fatal(err)
	}
	for _, per := range mongots.Periods {
		if err := st.EnsureRollups(ctx, "plant-a.press", per, 0); err != nil {
			t.Fatal(err)
		}
		bins := map[mongots.RollupKey]*mongots.Rollup{}
		var order []*mongots.Rollup
		for i := range docs {
			smp := &docs[i].Sample
			k := mongots.RollupKey{Device: smp.Device, Start: smp.Time.Truncate(per.D)}
			if bins[k] == nil {
				bins[k] = mongots.NewRollup("plant-a.press", per, smp)
				order = append(order, bins[k])
			}
			bins[k].Fold(smp)
		}
		if conflicts, err := st.SaveRollups(ctx, "plant-a.press", per, order); err != nil || len(conflicts) > 0 {
			t.Fatalf("SaveRollups: %v, %v", conflicts, err)
		}
	}
}

// TestQueryStatusAndRollups runs `sink query latest`, `status` and
// `window` (served by the rollups) against the FerretDB stand-in.
func TestQueryStatusAndRollups(t *testing.T) {
	uri := mongotest.Start(t)
	db := mongotest.DatabaseName("cmdsink")
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	storeSamples(t, uri, db, false, []string{"press-01", "press-02"}, 120, t0) // two hours, a sample a minute
	cfg := writeFile(t, t.TempDir(), "sink.yaml", fmt.Sprintf("factories: [plant-a]\nmongodb:\n  database: %s\n  time_series: false\n", db))
	t.Setenv("FACTORYWIRE_SINK_CONFIG", cfg)
	t.Setenv("FACTORYWIRE_SINK_MONGODB_URI", uri)
	query := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(append([]string{"query"}, args...), &out); err != nil {
			t.Fatalf("sink query %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}

	lines := strings.Split(strings.TrimSpace(query("latest", "--factory", "plant-a", "--class", "press")), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "press-01") || !strings.Contains(lines[2], "119") ||
		!strings.Contains(lines[1], "pressure=119.5 running=true") || !strings.Contains(lines[2], "pressure=119.5 bar running=true") {
		t.Fatalf("latest printed:\n%s\nwant a header and seq 119 of press-01 and press-02, press-02's pressure in bar", strings.Join(lines, "\n"))
	}
	// --format json: the sample schema for latest, and the documented
	// keys, every one present, for status.
	for i, line := range strings.Split(strings.TrimSpace(query("latest", "--factory", "plant-a", "--class", "press", "--format", "json")), "\n") {
		if s, err := devices.DecodeSample([]byte(line)); err != nil || s.Seq != 119 || s.Device != []string{"press-01", "press-02"}[i] {
			t.Fatalf("latest --format json line %d %q: %+v, %v", i, line, s, err)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(query("status", "--factory", "plant-a", "--class", "press", "--format", "json")), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("status --format json: %q: %v", line, err)
		}
		keys := slices.Sorted(maps.Keys(m))
		if want := []string{"device", "error_count", "errors", "errors_since", "seq", "ts", "updated_at"}; !slices.Equal(keys, want) {
			t.Fatalf("status --format json: keys %v, want %v", keys, want)
		}
		if errs, _ := m["errors"].(map[string]any); errs["temperature"] != "timeout" || m["errors_since"] != "2026-12-01T08:00:00Z" || m["seq"] != 119.0 {
			t.Errorf("status --format json: %s; want seq 119, temperature: timeout since 08:00", line)
		}
	}
	lines = strings.Split(strings.TrimSpace(query("status", "--factory", "plant-a", "--class", "press", "--errors", "--device", "press-02")), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "SINCE") || !strings.Contains(lines[1], t0.Format("2006-01-02T15:04:05.000Z")) ||
		!strings.Contains(lines[1], "temperature: timeout") {
		t.Fatalf("status --errors printed:\n%s\nwant press-02 with errors since %s", strings.Join(lines, "\n"), t0)
	}

	// Hourly buckets come from the hour rollups, 30-minute ones from the
	// minute rollups, and --raw asks the samples (which the stand-in
	// cannot aggregate: $dateTrunc).
	span := []string{"--factory", "plant-a", "--class", "press", "--device", "press-01", "--field", "pressure",
		"--from", t0.Format(time.RFC3339), "--to", t0.Add(2 * time.Hour).Format(time.RFC3339), "--json"}
	for _, c := range []struct {
		unit, bin string
		want      []mongots.Bucket
	}{
		{"hour", "1", []mongots.Bucket{{Start: t0, Min: 0.5, Avg: 30, Max: 59.5, Count: 60}, {Start: t0.Add(time.Hour), Min: 60.5, Avg: 90, Max: 119.5, Count: 60}}},
		{"minute", "90", []mongots.Bucket{{Start: t0.Add(-30 * time.Minute), Min: 0.5, Avg: 30, Max: 59.5, Count: 60}, {Start: t0.Add(time.Hour), Min: 60.5, Avg: 90, Max: 119.5, Count: 60}}},
	} {
		out := query(append([]string{"window", "--unit", c.unit, "--bin", c.bin}, span...)...)
		var got []mongots.Bucket
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var b struct {
				Start         time.Time
				Min, Avg, Max float64
				Count         int64
			}
			if err := json.Unmarshal([]byte(line), &b); err != nil {
				t.Fatalf("window --unit %s --bin %s: %q: %v", c.unit, c.bin, line, err)
			}
			got = append(got, mongots.Bucket{Start: b.Start, Min: b.Min, Avg: b.Avg, Max: b.Max, Count: b.Count})
		}
		if len(got) != len(c.want) {
			t.Fatalf("window --unit %s --bin %s: %+v, want %+v", c.unit, c.bin, got, c.want)
		}
		for i := range got {
			if !got[i].Start.Equal(c.want[i].Start) || got[i].Min != c.want[i].Min || got[i].Avg != c.want[i].Avg || got[i].Max != c.want[i].Max || got[i].Count != c.want[i].Count {
				t.Errorf("window --unit %s --bin %s bucket %d: %+v, want %+v", c.unit, c.bin, i, got[i], c.want[i])
			}
		}
	}
	var out bytes.Buffer
	if err := run(append([]string{"query", "window", "--unit", "hour", "--bin", "1", "--raw"}, span...), &out); err == nil {
		t.Fatal("window --raw on the stand-in: no error, want $dateTrunc refused")
	}
}

// TestQueryRange runs `sink query range` against the FerretDB stand-in,
// with the config and the URI from the environment. `sink query latest`
// and `window` need $first, $dateTrunc, $min, $avg and $max, which FerretDB
// lacks: TestQueryRealMongoDB runs them against MONGODB_URI.
func TestQueryRange(t *testing.T) {
	uri := mongotest.Start(t)
	db := mongotest.DatabaseName("cmdsink")
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	storeSamples(t, uri, db, false, []string{"press-01", "press-02"}, 5, t0)
	cfg := writeFile(t, t.TempDir(), "sink.yaml", fmt.Sprintf("factories: [plant-a]\nmongodb:\n  database: %s\n  time_series: false\n", db))
	t.Setenv("FACTORYWIRE_SINK_CONFIG", cfg)
	t.Setenv("FACTORYWIRE_SINK_MONGODB_URI", uri)

	var out bytes.Buffer
	args := []string{"query", "range", "--factory", "plant-a", "--class", "press", "--device", "press-02",
		"--from", t0.Format(time.RFC3339), "--to", t0.Add(time.Hour).Format(time.RFC3339), "--limit", "3"}
	if err := run(args, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("range printed %d lines, want a header and 3 samples:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"DEVICE", "TS", "SEQ", "FIELDS", "ERRORS"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("header %q lacks %s", lines[0], want)
		}
	}
	for i, line := range lines[1:] {
		for _, want := range []string{"press-02", t0.Add(time.Duration(i) * time.Minute).Format("2006-01-02T15:04:05.000Z"),
			fmt.Sprintf("pressure=%d.5 bar", i), "running=true", "temperature: timeout"} {
			if !strings.Contains(line, want) {
				t.Errorf("line %d %q lacks %q", i+1, line, want)
			}
		}
	}

	out.Reset()
	if err := run(append(args, "--json"), &out); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		s, err := devices.DecodeSample([]byte(line))
		if err != nil || s.Device != "press-02" || s.Seq != uint64(i) || s.Tags["line"] != "line-1" || s.Units["pressure"] != "bar" {
			t.Fatalf("--json line %d %q: %+v, %v", i, line, s, err)
		}
	}
}

// TestQueryRealMongoDB runs `sink query latest` and `window` against the
// real MongoDB in MONGODB_URI, time-series collections; skipped without
// it.
func TestQueryRealMongoDB(t *testing.T) {
	uri := mongotest.RealURI(t)
	db := mongotest.DatabaseName("cmdsink")
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	storeSamples(t, uri, db, true, []string{"press-01", "press-02"}, 10, t0)
	cfg := writeFile(t, t.TempDir(), "sink.yaml", fmt.Sprintf("factories: [plant-a]\nmongodb:\n  uri: %q\n  database: %s\n", uri, db))

	var out bytes.Buffer
	if err := run([]string{"query", "latest", "--config", cfg, "--factory", "plant-a", "--class", "press"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "press-01") || !strings.HasPrefix(lines[2], "press-02") ||
		!strings.Contains(lines[1], "pressure=9.5") {
		t.Fatalf("latest printed:\n%s\nwant a header and seq 9 of press-01 and press-02", out.String())
	}
	out.Reset()
	if err := run([]string{"query", "window", "--config", cfg, "--factory", "plant-a", "--class", "press", "--device", "press-01",
		"--field", "pressure", "--from", t0.Format(time.RFC3339), "--to", t0.Add(time.Hour).Format(time.RFC3339), "--unit", "minute", "--bin", "5"}, &out); err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "0.5") || !strings.Contains(lines[1], "4.5") {
		t.Fatalf("window printed:\n%s\nwant a header and two 5-minute buckets (0.5-4.5, 5.5-9.5)", out.String())
	}
}

// TestRefusedConnectionFails: a sink whose password the cluster refuses
// stops with an error (exit status 1, not 2: the config is well formed)
// naming the broker, the mechanism and the cause, without the password.
func TestRefusedConnectionFails(t *testing.T) {
	const password = "sink-Pa55-of-the-test"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "plant-a.press"),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "sink", password))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	dir := t.TempDir()
	writeFile(t, dir, "password", "not-"+password+"\n")
	t.Setenv("FW_SINK_TEST_BROKER", cluster.ListenAddrs()[0])
	cfg := writeFile(t, dir, "sink.yaml", `factories: [plant-a]
http_listen: ""
kafka:
  brokers: ["${FW_SINK_TEST_BROKER}"]
  sasl:
    mechanism: SCRAM-SHA-512
    username: sink
    password_file: password   # relative to this file
mongodb:
  uri: mongodb://127.0.0.1:1
`)
	done := make(chan error, 1)
	go func() { done <- run([]string{"run", "--config", cfg, "--log-level", "error"}, &bytes.Buffer{}) }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("sink run still runs after 60s")
	}
	var ue usageError
	if err == nil || errors.As(err, &ue) {
		t.Fatalf("run = %v, want an error that is not a usage error", err)
	}
	for _, want := range []string{"kafka broker " + cluster.ListenAddrs()[0], `SASL SCRAM-SHA-512 as "sink"`, "SASL authentication failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("the error shows the password: %v", err)
	}
}

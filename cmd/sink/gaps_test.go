package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

// storeSeqs writes to plant-a.press, in the stand-in mode, one sample per
// minute from t0 for each device, with the seqs given, then deletes the
// samples whose seqs are in lost.
func storeSeqs(t *testing.T, uri, db string, t0 time.Time, seqs map[string][]uint64, lost map[string][]uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := mongots.DefaultOptions()
	opts.Database, opts.TimeSeries = db, false
	st := mongots.New(mongotest.Connect(t, uri, nil), opts)
	if err := st.Ensure(ctx, mongots.CollectionSpec{Name: "plant-a.press"}); err != nil {
		t.Fatal(err)
	}
	var docs []mongots.Doc
	for dev, list := range seqs {
		for i, seq := range list {
			docs = append(docs, mongots.Doc{Sample: devices.Sample{
				Factory: "plant-a", Class: "press", Device: dev, Time: t0.Add(time.Duration(i) * time.Minute), Seq: seq,
				Fields: map[string]devices.Value{"pressure": devices.Float64Value(1)},
			}, Offset: int64(i)})
		}
	}
	if res, err := st.Write(ctx, "plant-a.press", docs); err != nil || len(res.Failed) != 0 {
		t.Fatalf("Write: %+v, %v", res, err)
	}
	for dev, list := range lost {
		del, err := st.Database().Collection("plant-a.press").DeleteMany(ctx, bson.D{
			{Key: "meta.device", Value: dev}, {Key: "seq", Value: bson.D{{Key: "$in", Value: list}}},
		})
		if err != nil || del.DeletedCount != int64(len(list)) {
			t.Fatalf("delete %v of %s: %+v, %v", list, dev, del, err)
		}
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// TestQueryGaps runs `sink query gaps` against the stand-in: samples
// deleted on purpose, a sample stored twice and a restarted seq, and
// checks the report and the exit status.
func TestQueryGaps(t *testing.T) {
	uri := mongotest.Start(t)
	db := mongotest.DatabaseName("cmdsink")
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	storeSeqs(t, uri, db, t0, map[string][]uint64{
		"press-01": seqRange(100, 119),
		"press-02": append(seqRange(0, 9), 9, 10, 11),             // 9 stored twice
		"press-03": append(seqRange(500, 504), seqRange(0, 4)...), // a wiped spool
	}, map[string][]uint64{"press-01": {103, 104, 105, 110}})
	cfg := writeFile(t, t.TempDir(), "sink.yaml", fmt.Sprintf("factories: [plant-a]\nmongodb:\n  database: %s\n  time_series: false\n", db))
	t.Setenv("FACTORYWIRE_SINK_CONFIG", cfg)
	t.Setenv("FACTORYWIRE_SINK_MONGODB_URI", uri)
	args := []string{"query", "gaps", "--factory", "plant-a", "--class", "press",
		"--from", t0.Format(time.RFC3339), "--to", t0.Add(time.Hour).Format(time.RFC3339)}

	var out bytes.Buffer
	err := run(args, &out)
	var ee cli.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("run = %v, want exit status 3 for the missing samples", err)
	}
	wantErr := "plant-a.press from 2026-12-01T08:00:00Z to 2026-12-01T09:00:00Z: 4 seqs missing and 1 restart, in 2 devices: press-01, press-03"
	if err.Error() != wantErr {
		t.Errorf("error\n %q\nwant\n %q", err, wantErr)
	}
	want := `DEVICE    SEEN  SEQ       FIRST TS                  LAST TS                   MISSING  DUPLICATES  RESTARTS
press-01  16    100..119  2026-12-01T08:00:00.000Z  2026-12-01T08:19:00.000Z  4        0           0
press-02  13    0..11     2026-12-01T08:00:00.000Z  2026-12-01T08:12:00.000Z  0        1           0
press-03  10    500..4    2026-12-01T08:00:00.000Z  2026-12-01T08:09:00.000Z  0        0           1
press-01  missing    103-105 (3)
press-01  missing    110 (1)
press-02  duplicate  9 (1)
press-03  restart    seq 504 at 2026-12-01T08:04:00.000Z, then 0 at 2026-12-01T08:05:00.000Z
plant-a.press from 2026-12-01T08:00:00Z to 2026-12-01T09:00:00Z: 3 devices, 39 samples; 4 seqs missing in 2 ranges, 1 duplicate (1 range), 1 restart
`
	if out.String() != want {
		t.Fatalf("gaps printed\n%s\nwant\n%s", out.String(), want)
	}

	// press-02 lost nothing: exit status 0.
	out.Reset()
	if err := run(append(args, "--device", "press-02"), &out); err != nil {
		t.Fatalf("gaps of press-02: %v\n%s", err, out.String())
	}
	if !strings.HasSuffix(out.String(), "plant-a.press device press-02 from 2026-12-01T08:00:00Z to 2026-12-01T09:00:00Z: 1 device, 13 samples; 0 seqs missing in 0 ranges, 1 duplicate (1 range), 0 restarts\n") {
		t.Fatalf("gaps of press-02 printed:\n%s", out.String())
	}

	// JSON lines, one per device; every list present.
	out.Reset()
	err = run(append(args, "--json"), &out)
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("run --json = %v, want exit status 3", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("--json printed %d lines, want 3:\n%s", len(lines), out.String())
	}
	wantJSON := `{"device":"press-01","seen":16,"first_seq":100,"first_ts":"2026-12-01T08:00:00Z","last_seq":119,"last_ts":"2026-12-01T08:19:00Z",` +
		`"missing":[{"first":103,"last":105},{"first":110,"last":110}],"missing_ranges":2,"missing_samples":4,` +
		`"duplicates":[],"duplicate_ranges":0,"duplicate_samples":0,"restarts":[],"restart_count":0}`
	if lines[0] != wantJSON {
		t.Errorf("--json line 1\n %s\nwant\n %s", lines[0], wantJSON)
	}
	var restarted struct {
		Restarts []struct {
			FromSeq uint64    `json:"from_seq"`
			FromTS  time.Time `json:"from_ts"`
			ToSeq   uint64    `json:"to_seq"`
			TS      time.Time `json:"ts"`
		} `json:"restarts"`
	}
	if err := json.Unmarshal([]byte(lines[2]), &restarted); err != nil || len(restarted.Restarts) != 1 ||
		restarted.Restarts[0].FromSeq != 504 || restarted.Restarts[0].ToSeq != 0 || !restarted.Restarts[0].TS.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("--json line 3 %s: %+v, %v; want the restart from 504 to 0 at 08:05", lines[2], restarted, err)
	}

	// No sample in the range: exit status 3, saying so.
	out.Reset()
	err = run(append(args, "--device", "press-99"), &out)
	if !errors.As(err, &ee) || ee.Code != 3 || !strings.Contains(err.Error(), "no samples of plant-a.press device press-99") {
		t.Fatalf("gaps of a device without samples: %v, want exit status 3 saying there are no samples", err)
	}
	if want := "plant-a.press device press-99 from 2026-12-01T08:00:00Z to 2026-12-01T09:00:00Z: no samples\n"; out.String() != want {
		t.Fatalf("gaps of a device without samples printed %q, want %q", out.String(), want)
	}
}

func TestQueryGapsUsage(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "sink.yaml", "factories: [plant-a]\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"two devices", []string{"--device", "press-01,press-02"}, `--device "press-01,press-02": gaps takes one device`},
		{"empty range", []string{"--from", "2026-12-01T08:00:00Z", "--to", "2026-12-01T08:00:00Z"}, "is not before --to"},
		{"no timeout", []string{"--timeout", "0s"}, "--timeout 0s: want more than 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(append([]string{"query", "gaps", "--config", cfg, "--factory", "plant-a", "--class", "press"}, tc.args...), &bytes.Buffer{})
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
}

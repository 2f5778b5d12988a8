package brokersoak

import (
	"bytes"
	"context"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/recordbatch"
)

// TestSoak runs a short soak against a real broker child (built from
// ./cmd/broker) with every hostile client: no acknowledged record may be
// lost, and the broker's open files stay within the bound its limits set.
// It takes about 25 s.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a 15 s soak against a broker child")
	}
	cfg := DefaultConfig()
	cfg.Duration = 15 * time.Second
	cfg.Warmup = 2 * time.Second
	cfg.DrainTimeout = 30 * time.Second
	cfg.Dir = t.TempDir()
	cfg.Rate = 200
	cfg.MaxConnections = 60
	cfg.MaxConnectionsPerIP = 40
	cfg.ConnectionsMaxIdle = 2 * time.Second
	cfg.RequestReadTimeout = time.Second
	cfg.ResponseWriteTimeout = time.Second
	cfg.MaxPartitions = 100
	cfg.OffsetsRetention = 3 * time.Second
	cfg.OffsetsRetentionCheckInterval = time.Second
	var progress bytes.Buffer
	cfg.Log = &progress
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	t.Log("\n" + md.String())

	if rep.Acked == 0 {
		t.Fatal("no record was acknowledged")
	}
	if rep.Lost != 0 || rep.Mismatched != 0 {
		t.Errorf("%d acknowledged records lost, %d consumed holding another record", rep.Lost, rep.Mismatched)
	}
	if rep.LogCheckErr != "" || rep.Log.Missing != 0 || rep.Log.Mismatched != 0 {
		t.Errorf("final read: %q; %d acknowledged records missing from the log, %d mismatched", rep.LogCheckErr, rep.Log.Missing, rep.Log.Mismatched)
	}
	if rep.BrokerExit != "" || rep.LogSummary.Panics != 0 {
		t.Errorf("broker exit %q, %d panics in its log", rep.BrokerExit, rep.LogSummary.Panics)
	}
	for _, k := range rep.Kinds {
		if len(k.Outcomes) == 0 {
			t.Errorf("hostile client %s recorded no outcome: it did not run", k.Name)
		}
	}
	t.Run("open files within bound", func(t *testing.T) {
		if rep.Peaks.Files.Files <= rep.FilesBound {
			return
		}
		// The bound counts max_connections sockets: it need not hold
		// before the broker refuses connections past that limit.
		if refused(rep, KindConnFlood) == 0 {
			t.Skipf("peak %d open files (%d sockets) exceed the bound %d, but max_connections is not enforced by this broker (the conn-flood was never refused)",
				rep.Peaks.Files.Files, rep.Peaks.Files.Sockets, rep.FilesBound)
		}
		t.Errorf("peak %d open files (%d sockets, at %v), bound %d", rep.Peaks.Files.Files, rep.Peaks.Files.Sockets, rep.Peaks.Files.At, rep.FilesBound)
	})
}

// refused counts the refusals a flood saw.
func refused(rep *Report, kind string) int64 {
	for _, k := range rep.Kinds {
		if k.Name != kind {
			continue
		}
		for _, o := range k.Outcomes {
			if strings.HasPrefix(o.Name, "connections refused") {
				return o.Count
			}
		}
	}
	return 0
}

// TestMalformedBatches checks that every malformed variant is a
// RecordBatch whose header kmsg decodes, whose length covers it and whose
// CRC is right, and that only its records are wrong: internal/recordbatch
// decodes the valid control batch and refuses the others.
func TestMalformedBatches(t *testing.T) {
	for _, v := range malformedVariants {
		t.Run(v.name, func(t *testing.T) {
			b := recordBatch(v.records, v.body())
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				t.Fatal(err)
			}
			if int(rb.Length)+12 != len(b) {
				t.Errorf("length %d for %d bytes", rb.Length, len(b))
			}
			if want := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)); uint32(rb.CRC) != want {
				t.Errorf("CRC %x, want %x", uint32(rb.CRC), want)
			}
			if rb.NumRecords != v.records || rb.LastOffsetDelta != v.records-1 {
				t.Errorf("records %d, last offset delta %d", rb.NumRecords, rb.LastOffsetDelta)
			}
			err := recordbatch.Decode(b, func(int, recordbatch.Record) error { return nil })
			if v.valid && err != nil {
				t.Errorf("the valid batch does not decode: %v", err)
			}
			if !v.valid && err == nil {
				t.Error("the malformed batch decodes")
			}
		})
	}
}

// TestReadLog reads limit lines as the broker's limits logger writes
// them.
func TestReadLog(t *testing.T) {
	path := t.TempDir() + "/broker.log"
	log := `time=2026-01-01T00:00:00Z level=INFO msg="broker listening" addr=127.0.0.1:4000
time=2026-01-01T00:00:01Z level=WARN msg="connection refused" addr=127.0.10.1:5000 max_connections=200 limit=max_connections
time=2026-01-01T00:01:02Z level=WARN msg="connection refused" addr=127.0.10.1:5001 max_connections=200 limit=max_connections hits_not_logged=41
time=2026-01-01T00:01:03Z level=WARN msg="request too slow" limit="request_read_timeout"
time=2026-01-01T00:01:04Z level=ERROR msg="partition write failed" topic=a
panic: boom
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := readLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.LimitLines["max_connections"] != 2 || s.LimitHits["max_connections"] != 43 {
		t.Errorf("max_connections: %d lines, %d hits; want 2, 43", s.LimitLines["max_connections"], s.LimitHits["max_connections"])
	}
	if s.LimitHits["request_read_timeout"] != 1 {
		t.Errorf("request_read_timeout: %d hits, want 1", s.LimitHits["request_read_timeout"])
	}
	if s.Levels["WARN"] != 3 || s.Levels["ERROR"] != 1 || s.Panics != 1 {
		t.Errorf("levels %v, panics %d", s.Levels, s.Panics)
	}
	if len(s.Errors) != 1 || s.Errors[0] != "partition write failed" {
		t.Errorf("errors %q", s.Errors)
	}
}

// TestRecordCodec round-trips the pair's key and value encoding.
func TestRecordCodec(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		want := rec{key: rng.IntN(10000), seq: rng.Int64N(1 << 40)}
		got, err := parseRecord([]byte(keyName(want.key)), value(want.seq, 64))
		if err != nil || got != want {
			t.Fatalf("parse(%v) = %v, %v", want, got, err)
		}
	}
	if _, err := parseRecord([]byte("other"), []byte("1 x")); err == nil {
		t.Error("a foreign key parsed")
	}
}

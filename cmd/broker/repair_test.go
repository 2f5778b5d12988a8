package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/cli"
)

// startInProcess runs a broker over dir in this process.
func startInProcess(t *testing.T, dir string) *broker.Broker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.Logger = "127.0.0.1:0", dir, slog.New(slog.DiscardHandler)
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestScrubAndRepairCommands damages a closed segment of a stopped broker's
// partition; broker scrub finds it (exit 3), broker repair refuses while a
// broker runs, then moves the damaged batch to quarantine; a second scrub
// is clean, and a franz-go consumer of the restarted broker gets every
// other record in order and passes the gap.
func TestScrubAndRepairCommands(t *testing.T) {
	const topic = "plant-a.press"
	dir := t.TempDir()
	b := startInProcess(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": ptrTo("2048")}, topic); err != nil {
		t.Fatal(err)
	}
	const batches, perBatch = 40, 3
	for i := range batches {
		var rs []*kgo.Record
		for j := range perBatch {
			rs = append(rs, &kgo.Record{Value: fmt.Appendf(nil, "record %d %s", i*perBatch+j, bytes.Repeat([]byte{'x'}, 150))})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Damage the last record byte of the first batch of a closed segment.
	pdir := filepath.Join(dir, topic+"-0")
	segs, _ := filepath.Glob(filepath.Join(pdir, "*.log"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %v", segs)
	}
	victim := segs[1]
	raw, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	size := 12 + int(be.Uint32(raw[8:]))
	first := int64(be.Uint64(raw))
	last := first + int64(be.Uint32(raw[23:]))
	records := int(be.Uint32(raw[57:]))
	raw[size-1] ^= 0x5a
	if err := os.WriteFile(victim, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(args, &out)
		return out.String(), err
	}
	wantOut := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("output lacks %q:\n%s", w, out)
			}
		}
	}

	out, err := cmd("scrub", "--data-dir", dir)
	var ee cli.ExitError
	if !errors.As(err, &ee) || ee.Code != exitCorrupt {
		t.Fatalf("scrub of a damaged log: %v, want exit status %d\n%s", err, exitCorrupt, out)
	}
	lost := fmt.Sprintf("offsets %d to %d (%d offsets)", first, last, last-first+1)
	wantOut(out, topic+"-0: DAMAGED", victim+" byte 0 to "+fmt.Sprint(size), lost, fmt.Sprintf("headers claim %d records", records), "crc mismatch")
	wantOut(err.Error(), "broker repair --data-dir "+dir+" --topic "+topic+" --partition 0")
	// The real process exits with that status.
	proc := command(t, nil, "scrub", "--data-dir", dir, "--topic", topic)
	pout, perr := proc.CombinedOutput()
	var pe *exec.ExitError
	if !errors.As(perr, &pe) || pe.ExitCode() != exitCorrupt {
		t.Fatalf("broker scrub process: %v, want exit status %d\n%s", perr, exitCorrupt, pout)
	}

	// While a broker runs, scrub works and repair refuses.
	b = startInProcess(t, dir)
	if _, err := cmd("scrub", "--data-dir", dir, "--topic", topic, "--partition", "0"); !errors.As(err, &ee) {
		t.Fatalf("scrub while the broker runs: %v", err)
	}
	if out, err := cmd("repair", "--data-dir", dir, "--topic", topic, "--partition", "0"); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("repair while the broker runs: %v\n%s", err, out)
	}
	out, err = cmd("repair", "--data-dir", dir, "--topic", topic, "--partition", "0", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	wantOut(out, "would move", "dry run: nothing changed")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	for _, bad := range [][]string{
		{"repair", "--data-dir", dir, "--topic", topic},
		{"repair", "--data-dir", dir, "--topic", "nope", "--partition", "0"},
		{"scrub", "--topic", topic},
		{"scrub", "--data-dir", dir, "--partition", "0"},
	} {
		var ue cli.UsageError
		if _, err := cmd(bad...); !errors.As(err, &ue) {
			t.Fatalf("broker %s: %v, want a usage error", strings.Join(bad, " "), err)
		}
	}

	out, err = cmd("repair", "--data-dir", dir, "--topic", topic, "--partition", "0")
	if err != nil {
		t.Fatalf("repair: %v\n%s", err, out)
	}
	quarantine := victim + ".quarantine-0"
	wantOut(out, lost, fmt.Sprintf("headers claim %d records", records), "moved "+fmt.Sprint(size)+" bytes to "+quarantine,
		fmt.Sprintf("replaced by an empty placeholder batch for offsets %d to %d", first, last),
		fmt.Sprintf("repaired %s-0: %d offsets lost (headers claim %d records)", topic, last-first+1, records))
	if q, err := os.ReadFile(quarantine); err != nil || !bytes.Equal(q, raw[:size]) {
		t.Fatalf("quarantine file: %d bytes, %v", len(q), err)
	}
	if out, err := cmd("scrub", "--data-dir", dir); err != nil {
		t.Fatalf("scrub after repair: %v\n%s", err, out)
	} else {
		wantOut(out, topic+"-0: OK", "no damage")
	}
	out, err = cmd("repair", "--data-dir", dir, "--topic", topic, "--partition", "0")
	if err != nil {
		t.Fatal(err)
	}
	wantOut(out, "no damage found", "nothing changed")

	// Every record outside the lost offsets comes back, in order, and the
	// consumer goes on past the placeholder to a record produced now.
	b = startInProcess(t, dir)
	cl, err = kgo.NewClient(kgo.SeedBrokers(b.Addr().String()), kgo.DefaultProduceTopic(topic),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after repair")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	want := batches*perBatch - int(last-first+1) + 1
	var got []*kgo.Record
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), want, err)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch error at %d records: %v", len(got), e.Err)
		}
		got = append(got, fs.Records()...)
	}
	if len(got) != want {
		t.Fatalf("consumed %d records, want %d", len(got), want)
	}
	next := 0 // index of the next produced record expected
	for i, r := range got {
		if next >= int(first) && next <= int(last) {
			next = int(last) + 1
		}
		if i == len(got)-1 {
			if string(r.Value) != "after repair" || r.Offset != int64(batches*perBatch) {
				t.Fatalf("last record %q at %d, want the one produced after the repair at %d", r.Value, r.Offset, batches*perBatch)
			}
			break
		}
		if r.Offset != int64(next) || !bytes.HasPrefix(r.Value, fmt.Appendf(nil, "record %d ", next)) {
			t.Fatalf("record %d: offset %d value %.12q, want offset %d", i, r.Offset, r.Value, next)
		}
		next++
	}
}

func ptrTo[T any](v T) *T { return &v }

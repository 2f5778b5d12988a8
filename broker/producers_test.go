package broker

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// TestProducerStateRestore checks how a partition's producer windows come
// back after a restart: from the snapshot plus the log after it, or from the
// whole log when the snapshot is missing, corrupt or ahead of the log.
func TestProducerStateRestore(t *testing.T) {
	now := time.Now()
	open := func(t *testing.T, dir string) *commitlog.Log {
		l, err := commitlog.Open(dir, commitlog.Options{SegmentBytes: 1024})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	// appendAll writes batches of producers 1 and 2 across several
	// segments and returns a partition holding them.
	appendAll := func(t *testing.T, dir string, seqs int) *partition {
		p := &partition{dir: dir, log: open(t, dir), producers: producerStates{}}
		for seq := 0; seq < seqs; seq++ {
			for _, pid := range []int64{1, 2} {
				b := makeBatch(testBatch{producerID: pid, producerEpoch: 0, baseSequence: int32(seq), value: make([]byte, 100)})
				h, err := commitlog.ParseBatch(b)
				if err != nil {
					t.Fatal(err)
				}
				if res := p.append(b, h); res.code != 0 {
					t.Fatalf("append: %d", res.code)
				}
			}
		}
		return p
	}
	check := func(t *testing.T, s producerStates, lastSeq int32) {
		t.Helper()
		for _, pid := range []int64{1, 2} {
			st := s[pid]
			if st == nil || len(st.batches) != producerWindow || st.batches[producerWindow-1].lastSeq != lastSeq {
				t.Fatalf("producer %d: state %+v, want a full window ending at sequence %d", pid, st, lastSeq)
			}
		}
	}

	t.Run("snapshot then the log after it", func(t *testing.T) {
		dir := t.TempDir()
		p := appendAll(t, dir, 10)
		if err := p.snapshotProducers(now); err != nil {
			t.Fatal(err)
		}
		for seq := 10; seq < 13; seq++ {
			b := makeBatch(testBatch{producerID: 1, baseSequence: int32(seq), value: []byte("x")})
			h, _ := commitlog.ParseBatch(b)
			p.append(b, h)
		}
		s, err := loadProducers(dir, p.log, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := s[1].batches[producerWindow-1].lastSeq; got != 12 {
			t.Fatalf("producer 1 ends at sequence %d, want 12 (snapshot plus later batches)", got)
		}
	})
	t.Run("no snapshot replays every segment", func(t *testing.T) {
		dir := t.TempDir()
		p := appendAll(t, dir, 10)
		if p.log.ActiveSegmentBase() == 0 {
			t.Fatal("want several segments")
		}
		s, err := loadProducers(dir, p.log, now)
		if err != nil {
			t.Fatal(err)
		}
		check(t, s, 9)
	})
	t.Run("corrupt snapshot is ignored", func(t *testing.T) {
		dir := t.TempDir()
		p := appendAll(t, dir, 10)
		os.WriteFile(filepath.Join(dir, producerSnapshotFile), []byte("{not json"), 0o644)
		s, err := loadProducers(dir, p.log, now)
		if err != nil {
			t.Fatal(err)
		}
		check(t, s, 9)
	})
	t.Run("snapshot ahead of the log is ignored", func(t *testing.T) {
		dir := t.TempDir()
		p := appendAll(t, dir, 10)
		os.WriteFile(filepath.Join(dir, producerSnapshotFile), []byte(`{"version":1,"offset":999999,"producers":[]}`), 0o644)
		s, err := loadProducers(dir, p.log, now)
		if err != nil {
			t.Fatal(err)
		}
		check(t, s, 9)
	})
	t.Run("idle producers expire", func(t *testing.T) {
		dir := t.TempDir()
		p := appendAll(t, dir, 10)
		if err := p.snapshotProducers(now); err != nil {
			t.Fatal(err)
		}
		s, err := loadProducers(dir, p.log, now.Add(producerExpiry+time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 0 {
			t.Fatalf("%d producers kept after a day idle", len(s))
		}
	})
}

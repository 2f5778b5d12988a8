package broker

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/factorywire/factorywire/storage/commitlog"
)

func openTestStore(t *testing.T, dir string) *offsetStore {
	t.Helper()
	s, err := openOffsetStore(dir, commitlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

func commitOffset(t *testing.T, s *offsetStore, group string, p int32, off int64) {
	t.Helper()
	if err := s.commit([]offsetChange{{offsetKey{group, "t", p}, &committedOffset{Offset: off}}}); err != nil {
		t.Fatal(err)
	}
}

// TestOffsetStoreCompaction commits the same few offsets many times: the
// log is compacted so it stays small, and a reopened store has the latest
// offsets, without deleted ones.
func TestOffsetStoreCompaction(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	s.compactMin = 50
	for i := 0; i < 1000; i++ {
		commitOffset(t, s, "g", int32(i%5), int64(i))
	}
	if err := s.commit([]offsetChange{{key: offsetKey{"g", "t", 4}}}); err != nil {
		t.Fatal(err)
	}
	if s.records > 50+5 {
		t.Fatalf("%d records in the log after compaction, want at most the threshold plus the live ones", s.records)
	}
	s.close()
	s2 := openTestStore(t, dir)
	for p := int32(0); p < 4; p++ {
		v, ok := s2.get(offsetKey{"g", "t", p})
		if !ok || v.Offset != int64(995+p) {
			t.Fatalf("partition %d after reopen: %+v %v, want offset %d", p, v, ok, 995+p)
		}
	}
	if _, ok := s2.get(offsetKey{"g", "t", 4}); ok {
		t.Fatal("a deleted offset came back after reopen")
	}
}

// TestOffsetStoreInterruptedCompaction recreates each state a crash during
// compaction can leave, and checks the store opens with the right offsets.
func TestOffsetStoreInterruptedCompaction(t *testing.T) {
	// prepare makes a data dir whose live log holds offset 1 and whose
	// compacted log (complete and closed) holds offset 2.
	prepare := func(t *testing.T) string {
		dir := t.TempDir()
		s := openTestStore(t, dir)
		commitOffset(t, s, "g", 0, 1)
		s.close()
		compact := openTestStore(t, filepath.Join(dir, "x"))
		commitOffset(t, compact, "g", 0, 2)
		compact.close()
		if err := os.Rename(filepath.Join(dir, "x", offsetsDir), filepath.Join(dir, offsetsCompactDir)); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	cases := []struct {
		name  string
		crash func(dir string) error // what the crash left
		want  int64
	}{
		{"before the first rename: the compacted log is discarded", func(string) error { return nil }, 1},
		{"between the renames: the compacted log is used", func(dir string) error {
			return os.Rename(filepath.Join(dir, offsetsDir), filepath.Join(dir, offsetsOldDir))
		}, 2},
		{"after both renames: the old log is removed", func(dir string) error {
			if err := os.Rename(filepath.Join(dir, offsetsDir), filepath.Join(dir, offsetsOldDir)); err != nil {
				return err
			}
			return os.Rename(filepath.Join(dir, offsetsCompactDir), filepath.Join(dir, offsetsDir))
		}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := prepare(t)
			if err := tc.crash(dir); err != nil {
				t.Fatal(err)
			}
			s := openTestStore(t, dir)
			if v, ok := s.get(offsetKey{"g", "t", 0}); !ok || v.Offset != tc.want {
				t.Fatalf("offset %+v %v, want %d", v, ok, tc.want)
			}
			for _, leftover := range []string{offsetsCompactDir, offsetsOldDir} {
				if _, err := os.Stat(filepath.Join(dir, leftover)); err == nil {
					t.Fatalf("%s left behind", leftover)
				}
			}
		})
	}
}

// TestOffsetStoreExpire deletes offsets as the coordinator's expiry does:
// only those still holding the value seen (one committed again meanwhile
// stays), durably (a reopened store does not have them back), and the
// commit times survive a reopen, a missing one reading as the time the
// store was opened. Expiring everything lets compaction empty the log.
func TestOffsetStoreExpire(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	s.compactMin = 50
	put := func(group string, p int32, off, ms int64) {
		t.Helper()
		if err := s.commit([]offsetChange{{offsetKey{group, "t", p}, &committedOffset{Offset: off, CommitMs: ms}}}); err != nil {
			t.Fatal(err)
		}
	}
	put("g", 0, 1, 100)
	put("g", 1, 2, 100)
	put("h", 0, 3, 150)
	put("z", 0, 4, 0)
	seen := s.group("g")
	put("g", 1, 5, 200) // committed again after the expiry looked
	counts, err := s.expire(seen)
	if err != nil {
		t.Fatal(err)
	}
	if counts["g"] != 1 || len(counts) != 1 {
		t.Fatalf("expired %v, want g: 1", counts)
	}
	if last := s.groups(); last["g"] != 200 || last["h"] != 150 || len(last) != 3 {
		t.Fatalf("latest commits %v, want g: 200, h: 150, z: 0", last)
	}
	s.close()
	before := time.Now().UnixMilli()
	s = openTestStore(t, dir)
	s.compactMin = 50
	if v, ok := s.get(offsetKey{"g", "t", 0}); ok {
		t.Fatalf("expired offset back after reopen: %+v", v)
	}
	if v, ok := s.get(offsetKey{"g", "t", 1}); !ok || v.Offset != 5 || v.CommitMs != 200 {
		t.Fatalf("offset committed again: %+v %v, want offset 5 committed at 200", v, ok)
	}
	if v, _ := s.get(offsetKey{"z", "t", 0}); v.CommitMs < before {
		t.Fatalf("an offset without a commit time reads %d, want the store's opening time (>= %d)", v.CommitMs, before)
	}

	for i := 0; i < 100; i++ {
		put(fmt.Sprintf("many-%d", i), 0, int64(i), 300)
	}
	all := map[offsetKey]committedOffset{}
	for id := range s.groups() {
		maps.Copy(all, s.group(id))
	}
	if _, err := s.expire(all); err != nil {
		t.Fatal(err)
	}
	if s.nlive != 0 || len(s.groups()) != 0 || s.records != 0 {
		t.Fatalf("after expiring everything: %d live offsets, %d groups, %d records in the log; want none", s.nlive, len(s.groups()), s.records)
	}
}

package commitlog

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"slices"
	"testing"
)

// errPowerCut is what every file operation returns once a simulated power
// cut has happened.
var errPowerCut = errors.New("power cut")

// crashSeed seeds TestCrashRecovery; stress it with other seeds, e.g.
// for s in $(seq 100); do go test -run CrashRecovery -crash.seed=$s || break; done
var crashSeed = flag.Uint64("crash.seed", 20250101, "seed of TestCrashRecovery")

// TestCrashRecovery appends random batches to a log on a memFS, syncing some
// of them and running retention now and then, and crashes it: power loss
// that drops every unsynced write and directory change, or keeps a random
// prefix of the unsynced writes with a torn last one, or of the process only
// (unsynced writes survive, and Open must make them durable). In a third of the
// iterations the power is cut at a random file operation, so crashes also
// happen inside Open's recovery, segment rolls, retention and Close. After
// every crash Open must succeed, every batch whose Sync (or Close) returned
// must be there and intact, offsets must be contiguous, and Read, Batches
// and OffsetForTime must agree with the batches.
func TestCrashRecovery(t *testing.T) {
	iterations := 2000
	if testing.Short() {
		iterations = 300
	}
	rng := rand.New(rand.NewPCG(*crashSeed, 7))
	pick := func(vs ...int64) int64 { return vs[rng.IntN(len(vs))] }
	var (
		mfs   *memFS
		opts  Options
		model map[int64][]byte // the batch last appended at each base offset
		acked int64            // every offset below was covered by a Sync or Close that returned
		stats struct{ crashes, torn, processCrashes, cuts, cutsInOpen, closes, lostUnsynced, retained int }
	)
	for it := range iterations {
		if it%50 == 0 {
			mfs, model, acked = newMemFS(), map[int64][]byte{}, 0
			opts = Options{
				SegmentBytes:       pick(300, 1024, 4096),
				IndexIntervalBytes: int(pick(1, 100, 1000)),
				RetentionAge:       -1,
				RetentionBytes:     pick(0, 3000),
				FS:                 mfs,
			}
		}
		cut, cutInOpen := rng.IntN(3) == 0, rng.IntN(2) == 0
		armCut := func() {
			stats.cuts++
			left := rng.IntN(60) // file operations before the power goes
			mfs.setFail(func(string, string) error {
				if left == 0 {
					return errPowerCut
				}
				left--
				return nil
			})
		}
		if cut && cutInOpen {
			armCut()
		}
		crash := func() {
			mfs.setFail(nil)
			switch r := rng.IntN(10); {
			case r < 6:
				mfs.crash(rng)
				stats.torn++
			case r < 8:
				mfs.crash(nil)
			default:
				// A process crash: unsynced writes stay in the
				// page cache, and Open must make them durable.
				stats.processCrashes++
			}
			stats.crashes++
		}

		l, err := Open("/log", opts)
		if err != nil {
			if !cut || !errors.Is(err, errPowerCut) {
				t.Fatalf("iteration %d: Open after a crash: %v", it, err)
			}
			stats.cutsInOpen++
			crash()
			continue
		}
		if l.EndOffset() < acked {
			t.Fatalf("iteration %d: EndOffset %d after a crash, but offsets below %d were synced", it, l.EndOffset(), acked)
		}
		if l.DurableOffset() != l.EndOffset() {
			t.Fatalf("iteration %d: DurableOffset %d, EndOffset %d after Open", it, l.DurableOffset(), l.EndOffset())
		}
		acked = l.DurableOffset() // Open promises it
		for base := range model {
			if base >= l.EndOffset() {
				delete(model, base) // lost with unsynced writes; the offsets are reused
				stats.lostUnsynced++
			}
		}
		// Reads open closed segments' files: verify with the power
		// on, so that a cut armed for Open stays for the operations.
		resume := mfs.pauseFail()
		verifyAgainstModel(t, it, l, model, rng)
		resume()
		if cut && !cutInOpen {
			armCut()
		}

		failed := func(what string, err error) bool {
			if err == nil {
				return false
			}
			if !cut || !errors.Is(err, errPowerCut) {
				t.Fatalf("iteration %d: %s: %v", it, what, err)
			}
			return true
		}
	ops:
		for range 1 + rng.IntN(25) {
			switch r := rng.IntN(10); {
			case r < 6:
				b := makeBatch(1+rng.IntN(5), 1+rng.IntN(120), int64(rng.IntN(1000)))
				base, err := l.Append(b)
				if failed("Append", err) {
					break ops
				}
				model[base] = withBase(b, base)
			case r < 9:
				end := l.EndOffset()
				if failed("Sync", l.Sync(end)) {
					break ops
				}
				acked = max(acked, end)
			default:
				n, err := l.Retain()
				if failed("Retain", err) {
					break ops
				}
				stats.retained += n
			}
		}

		if rng.IntN(8) == 0 {
			if !failed("Close", l.Close()) {
				acked = l.EndOffset()
				stats.closes++
			}
		}
		crashLog(l) // closes the handles without writing anything
		crash()
	}
	t.Logf("%d iterations: %d crashes (%d with torn writes, %d of the process only), %d power cuts at a random operation "+
		"(%d inside Open), %d clean closes before a crash, %d unsynced batches lost, %d segments deleted by retention",
		iterations, stats.crashes, stats.torn, stats.processCrashes, stats.cuts, stats.cutsInOpen, stats.closes,
		stats.lostUnsynced, stats.retained)
}

// verifyAgainstModel checks that every batch of l is the one last appended
// at its offset, that offsets are contiguous, and that Read at offsets
// inside batches, Batches and OffsetForTime agree with them.
func verifyAgainstModel(t *testing.T, it int, l *Log, model map[int64][]byte, rng *rand.Rand) {
	t.Helper()
	got := readAll(t, l, 1+rng.IntN(2000))
	for base, b := range got {
		if !bytes.Equal(b, model[base]) {
			t.Fatalf("iteration %d: batch at %d differs from the one appended there", it, base)
		}
	}
	var headers []BatchHeader
	if err := l.Batches(l.StartOffset(), func(h BatchHeader) error { headers = append(headers, h); return nil }); err != nil {
		t.Fatalf("iteration %d: Batches: %v", it, err)
	}
	if len(headers) != len(got) || !slices.IsSortedFunc(headers, func(a, b BatchHeader) int { return int(a.BaseOffset - b.BaseOffset) }) {
		t.Fatalf("iteration %d: Batches visited %d batches, Read found %d", it, len(headers), len(got))
	}
	start, end := l.StartOffset(), l.EndOffset()
	if start == end {
		return
	}
	for range 5 {
		off := start + rng.Int64N(end-start)
		data, err := l.Read(off, 1, end)
		if err != nil {
			t.Fatalf("iteration %d: Read(%d): %v", it, off, err)
		}
		if h := splitBatches(t, data)[0]; h.BaseOffset > off || h.LastOffset() < off {
			t.Fatalf("iteration %d: Read(%d) returned batch %d..%d", it, off, h.BaseOffset, h.LastOffset())
		}
		ts := int64(rng.IntN(1100)) - 50
		want, wantOK := int64(0), false
		for _, h := range headers {
			if h.MaxTimestamp >= ts {
				want, wantOK = h.BaseOffset, true
				break
			}
		}
		if off, ok, err := l.OffsetForTime(ts); err != nil || ok != wantOK || off != want {
			t.Fatalf("iteration %d: OffsetForTime(%d) = %d, %v, %v; want %d, %v", it, ts, off, ok, err, want, wantOK)
		}
	}
}

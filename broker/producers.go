package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/factorywire/factorywire/storage/commitlog"
)

func errorIs(err, target error) bool { return errors.Is(err, target) }

// producerWindow is how many recent batches per producer and partition are
// remembered to answer retries, as Kafka (max.in.flight ≤ 5 with
// idempotence).
const producerWindow = 5

type producerBatch struct {
	firstSeq, lastSeq int32
	baseOffset        int64
}

type producerState struct {
	epoch      int16
	batches    []producerBatch // oldest first, at most producerWindow
	lastAppend int64           // unix ms of the producer's last batch here
}

// producerStates is one partition's idempotent-producer state, keyed by
// producer id. It survives restarts (see loadProducers), so a retry that
// reaches a restarted broker is still recognised as a duplicate.
type producerStates map[int64]*producerState

// producerExpiry is how long a producer may stay idle on a partition before
// its state is dropped, as Kafka's producer.id.expiration.ms (1 day). Its
// next batch then starts a new window.
const producerExpiry = 24 * time.Hour

func lastSequence(h commitlog.BatchHeader) int32 {
	// Sequences wrap from MaxInt32 to 0, as in Kafka.
	return int32((int64(h.BaseSequence) + int64(h.LastOffsetDelta)) % (math.MaxInt32 + 1))
}

func nextSequence(seq int32) int32 {
	if seq == math.MaxInt32 {
		return 0
	}
	return seq + 1
}

// check decides whether batch h may be appended. It returns the base offset
// of an identical earlier batch (a retry: answer success, write nothing), or
// -1 and an error code (0 = append it).
func (s producerStates) check(h commitlog.BatchHeader) (dup int64, code int16) {
	if h.ProducerID < 0 {
		return -1, 0
	}
	st := s[h.ProducerID]
	switch {
	case st == nil:
		// A producer this partition has not seen (or whose state
		// retention removed) may start at any sequence, as in Kafka
		// since KIP-360.
		return -1, 0
	case h.ProducerEpoch < st.epoch:
		return -1, kerr.InvalidProducerEpoch.Code
	case h.ProducerEpoch > st.epoch:
		if h.BaseSequence != 0 {
			return -1, kerr.OutOfOrderSequenceNumber.Code
		}
		return -1, 0
	}
	last := lastSequence(h)
	for _, b := range st.batches {
		if b.firstSeq == h.BaseSequence && b.lastSeq == last {
			return b.baseOffset, 0
		}
	}
	if n := len(st.batches); n > 0 && h.BaseSequence != nextSequence(st.batches[n-1].lastSeq) {
		return -1, kerr.OutOfOrderSequenceNumber.Code
	}
	return -1, 0
}

// record remembers batch h (already appended at h.BaseOffset), appended at
// unix ms at.
func (s producerStates) record(h commitlog.BatchHeader, at int64) {
	if h.ProducerID < 0 {
		return
	}
	st := s[h.ProducerID]
	if st == nil || h.ProducerEpoch > st.epoch {
		st = &producerState{epoch: h.ProducerEpoch}
		s[h.ProducerID] = st
	}
	if len(st.batches) == producerWindow {
		copy(st.batches, st.batches[1:])
		st.batches = st.batches[:producerWindow-1]
	}
	st.batches = append(st.batches, producerBatch{h.BaseSequence, lastSequence(h), h.BaseOffset})
	st.lastAppend = max(st.lastAppend, at)
}

// expire drops producers idle since before cutoff (unix ms).
func (s producerStates) expire(cutoff int64) {
	for id, st := range s {
		if st.lastAppend < cutoff {
			delete(s, id)
		}
	}
}

// The producer-state snapshot of a partition: its producers as of Offset
// (every batch below Offset applied). It is written every
// producerSnapshotInterval and at clean shutdown; on open the log is
// replayed from Offset, so a restart costs a scan of what was written since
// the last snapshot, not of the whole log.
const (
	producerSnapshotFile     = "producer-state.json"
	producerSnapshotVersion  = 1
	producerSnapshotInterval = time.Minute
)

type producerSnapshot struct {
	Version   int                `json:"version"`
	Offset    int64              `json:"offset"`
	Producers []snapshotProducer `json:"producers"`
}

type snapshotProducer struct {
	ID           int64      `json:"id"`
	Epoch        int16      `json:"epoch"`
	LastAppendMs int64      `json:"last_append_ms"`
	Batches      [][3]int64 `json:"batches"` // first sequence, last sequence, base offset
}

// loadProducers restores a partition's producer state: the snapshot in dir
// if it is usable, then every batch after it. Without a usable snapshot (a
// first start, or a snapshot ahead of a log whose unsynced tail a crash
// removed) it replays the whole log.
func loadProducers(dir string, l *commitlog.Log, now time.Time) (producerStates, error) {
	s, from := producerStates{}, l.StartOffset()
	if snap, err := readProducerSnapshot(dir); err == nil && snap.Offset <= l.EndOffset() {
		for _, p := range snap.Producers {
			st := &producerState{epoch: p.Epoch, lastAppend: p.LastAppendMs}
			for _, b := range p.Batches {
				st.batches = append(st.batches, producerBatch{int32(b[0]), int32(b[1]), b[2]})
			}
			s[p.ID] = st
		}
		from = snap.Offset
	}
	// The log does not keep append times, and a batch's own timestamps
	// may be old (a gateway draining a backlog), so replayed batches
	// count as appended now: their producers expire a day after the
	// restart at the earliest, never too soon.
	nowMs := now.UnixMilli()
	err := l.Batches(from, func(h commitlog.BatchHeader) error {
		s.record(h, nowMs)
		return nil
	})
	s.expire(now.Add(-producerExpiry).UnixMilli())
	return s, err
}

func readProducerSnapshot(dir string) (producerSnapshot, error) {
	var snap producerSnapshot
	raw, err := os.ReadFile(filepath.Join(dir, producerSnapshotFile))
	if err != nil {
		return snap, err
	}
	if err := json.Unmarshal(raw, &snap); err != nil {
		return snap, err
	}
	if snap.Version != producerSnapshotVersion {
		return snap, fmt.Errorf("producer snapshot version %d", snap.Version)
	}
	return snap, nil
}

// snapshotProducers writes the partition's producer state as of its log end.
// The file is replaced atomically; if a crash loses the rename, the older
// snapshot (or a full replay) is used instead, which is slower, not wrong.
func (p *partition) snapshotProducers(now time.Time) error {
	p.mu.Lock()
	p.producers.expire(now.Add(-producerExpiry).UnixMilli())
	snap := producerSnapshot{Version: producerSnapshotVersion, Offset: p.log.EndOffset()}
	for id, st := range p.producers {
		sp := snapshotProducer{ID: id, Epoch: st.epoch, LastAppendMs: st.lastAppend}
		for _, b := range st.batches {
			sp.Batches = append(sp.Batches, [3]int64{int64(b.firstSeq), int64(b.lastSeq), b.baseOffset})
		}
		snap.Producers = append(snap.Producers, sp)
	}
	unchanged := snap.Offset == p.snapshotOffset
	p.mu.Unlock()
	if unchanged {
		return nil
	}
	sort.Slice(snap.Producers, func(i, j int) bool { return snap.Producers[i].ID < snap.Producers[j].ID })
	raw, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	tmp := filepath.Join(p.dir, producerSnapshotFile+".tmp")
	if err := writeSynced(tmp, raw, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, producerSnapshotFile)); err != nil {
		return err
	}
	p.mu.Lock()
	p.snapshotOffset = snap.Offset
	p.mu.Unlock()
	return nil
}

// producerIDs hands out producer ids that are never reused, even across
// restarts: ids are reserved in blocks, and a block is persisted before its
// first id is given out.
type producerIDs struct {
	mu          sync.Mutex
	dir         string
	next, limit int64
}

const (
	producerIDFile  = "producer-ids"
	producerIDBlock = 1000
)

func loadProducerIDs(dir string) (*producerIDs, error) {
	a := &producerIDs{dir: dir}
	raw, err := os.ReadFile(filepath.Join(dir, producerIDFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return a, nil
	case err != nil:
		return nil, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s: %q is not a producer id; restore it or set it above every id in use", filepath.Join(dir, producerIDFile), raw)
	}
	a.next, a.limit = n, n
	return a, nil
}

func (a *producerIDs) allocate() (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == a.limit {
		limit := a.limit + producerIDBlock
		if err := writeFileAtomic(a.dir, producerIDFile, []byte(strconv.FormatInt(limit, 10)+"\n")); err != nil {
			return 0, fmt.Errorf("reserve producer ids: %w", err)
		}
		a.limit = limit
	}
	id := a.next
	a.next++
	return id, nil
}

package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/factorywire/factorywire/internal/recordbatch"
	"github.com/factorywire/factorywire/storage/commitlog"
)

// The offset store keeps consumer groups' committed offsets. Every commit is
// one record batch appended to an internal commit log (DATA_DIR/
// __consumer_offsets) and fsynced before the commit is acknowledged; at start
// the log is replayed into memory. Each record's key is the JSON array
// [group, topic, partition] and its value the JSON committedOffset
// ({"offset", "leader_epoch", "metadata", "commit_ms"}, commit_ms being the
// commit's time in Unix milliseconds), or no value (a tombstone) for an
// offset deleted by DeleteGroups or OffsetDelete, or expired after
// OffsetsRetention (see coordinator.expire). A tombstone is durable like a
// commit, so an expired offset does not come back after a restart. A record
// whose commit_ms is missing or not positive counts as committed when the
// store was opened. When the log holds many more records than live offsets
// it is compacted: the live offsets (with their commit_ms) are written to a
// new log, which replaces the old one by rename. Since expiry bounds the live
// offsets, compaction bounds the log: it never holds more than
// max(compactMin, compactRatio × live offsets) records plus one batch.
const (
	offsetsDir        = "__consumer_offsets"
	offsetsCompactDir = offsetsDir + ".compact"
	offsetsOldDir     = offsetsDir + ".old"
	// Compaction runs when the log holds more than compactRatio records
	// per live offset and at least defaultCompactMinRecords records.
	compactRatio             = 4
	defaultCompactMinRecords = 100000
	// maxOffsetMetadata bounds a commit's metadata string, as Kafka's
	// offset.metadata.max.bytes.
	maxOffsetMetadata = 4096
)

type offsetKey struct {
	group, topic string
	partition    int32
}

// topicPartition is an offset's key within its group.
type topicPartition struct {
	topic     string
	partition int32
}

type committedOffset struct {
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata"`
	CommitMs    int64  `json:"commit_ms"`
}

// offsetStore is the durable store of committed offsets. Its methods are
// safe for concurrent use: one mutex serialises appends and guards the
// in-memory index.
type offsetStore struct {
	mu       sync.Mutex
	dataDir  string
	opts     commitlog.Options
	log      *commitlog.Log
	live     map[string]map[topicPartition]committedOffset // group → its offsets
	nlive    int                                           // offsets in live
	records  int64                                         // records in the log, live or not
	openedMs int64                                         // when the store was opened, Unix ms
	// compactMin is the fewest records worth compacting
	// (defaultCompactMinRecords; tests lower it).
	compactMin int64
}

func openOffsetStore(dataDir string, opts commitlog.Options) (*offsetStore, error) {
	opts.RetentionAge, opts.RetentionBytes = -1, -1 // only compaction removes records
	s := &offsetStore{
		dataDir: dataDir, opts: opts,
		live:       map[string]map[topicPartition]committedOffset{},
		openedMs:   time.Now().UnixMilli(),
		compactMin: defaultCompactMinRecords,
	}
	if err := s.finishCompaction(); err != nil {
		return nil, fmt.Errorf("offset store: %w", err)
	}
	l, err := commitlog.Open(filepath.Join(dataDir, offsetsDir), opts)
	if err != nil {
		return nil, fmt.Errorf("offset store: %w", err)
	}
	s.log = l
	if err := s.replay(); err != nil {
		l.Close()
		return nil, fmt.Errorf("offset store: %w", err)
	}
	return s, nil
}

// finishCompaction completes or discards a compaction a crash interrupted.
// The compacted log is complete and closed before the first rename, so if
// the live log is gone the compacted one replaces it; otherwise leftovers
// are removed.
func (s *offsetStore) finishCompaction() error {
	live := filepath.Join(s.dataDir, offsetsDir)
	compact := filepath.Join(s.dataDir, offsetsCompactDir)
	old := filepath.Join(s.dataDir, offsetsOldDir)
	if _, err := os.Stat(live); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(compact); err == nil {
			if err := os.Rename(compact, live); err != nil {
				return err
			}
		}
	}
	if err := os.RemoveAll(compact); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

func (s *offsetStore) replay() error {
	for off := s.log.StartOffset(); off < s.log.EndOffset(); {
		data, err := s.log.Read(off, 1<<20, s.log.EndOffset())
		if err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
		err = commitlog.SplitBatches(data, func(h commitlog.BatchHeader, batch []byte) error {
			if err := s.applyBatch(batch); err != nil {
				return fmt.Errorf("offset %d: %w", h.BaseOffset, err)
			}
			off = h.LastOffset() + 1
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *offsetStore) applyBatch(batch []byte) error {
	return recordbatch.Decode(batch, func(i int, r recordbatch.Record) error {
		var k [3]json.RawMessage
		var key offsetKey
		if err := json.Unmarshal(r.Key, &k); err != nil {
			return fmt.Errorf("record %d key: %w", i, err)
		}
		if json.Unmarshal(k[0], &key.group) != nil || json.Unmarshal(k[1], &key.topic) != nil || json.Unmarshal(k[2], &key.partition) != nil {
			return fmt.Errorf("record %d: key %s is not [group, topic, partition]", i, r.Key)
		}
		s.records++
		if r.Value == nil {
			s.set(key, nil)
			return nil
		}
		var v committedOffset
		if err := json.Unmarshal(r.Value, &v); err != nil {
			return fmt.Errorf("record %d value: %w", i, err)
		}
		if v.CommitMs <= 0 {
			v.CommitMs = s.openedMs
		}
		s.set(key, &v)
		return nil
	})
}

// set stores v under k, or deletes k when v is nil. The caller holds s.mu
// (or is replaying, before the store is shared).
func (s *offsetStore) set(k offsetKey, v *committedOffset) {
	tp := topicPartition{k.topic, k.partition}
	offs := s.live[k.group]
	if v == nil {
		if _, ok := offs[tp]; ok {
			delete(offs, tp)
			s.nlive--
			if len(offs) == 0 {
				delete(s.live, k.group)
			}
		}
		return
	}
	if offs == nil {
		offs = map[topicPartition]committedOffset{}
		s.live[k.group] = offs
	}
	if _, ok := offs[tp]; !ok {
		s.nlive++
	}
	offs[tp] = *v
}

// offsetChange is one offset to store, or to delete when value is nil.
type offsetChange struct {
	key   offsetKey
	value *committedOffset
}

// commit stores changes durably (appended and fsynced), then applies them.
func (s *offsetStore) commit(changes []offsetChange) error {
	if len(changes) == 0 {
		return nil
	}
	batch, err := encodeOffsetBatch(changes)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appendLocked(batch, changes)
}

// appendLocked appends batch, which encodes changes, waits for its fsync,
// applies changes and compacts the log if it is due. The caller holds s.mu.
func (s *offsetStore) appendLocked(batch []byte, changes []offsetChange) error {
	// A transient fault (a full disk) failed the log: heal it first. A
	// heal only removes a batch whose Sync failed, whose changes were
	// never applied (they are applied below, after the Sync).
	if s.log.Failed() {
		if _, err := s.log.Heal(); err != nil {
			return err
		}
	}
	base, err := s.log.Append(batch)
	if err != nil {
		return err
	}
	if err := s.log.Sync(base + int64(len(changes))); err != nil {
		return err
	}
	for _, c := range changes {
		s.set(c.key, c.value)
	}
	s.records += int64(len(changes))
	if s.records >= s.compactMin && s.records > compactRatio*int64(s.nlive) {
		if err := s.compactLocked(); err != nil {
			return fmt.Errorf("compact offsets (the change itself is stored): %w", err)
		}
	}
	return nil
}

// expire deletes the offsets of expired that still hold the value the
// caller saw (an offset committed again since then is kept), durably, with
// one tombstone each. It returns how many offsets it deleted per group.
func (s *offsetStore) expire(expired map[offsetKey]committedOffset) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changes []offsetChange
	counts := map[string]int{}
	for k, seen := range expired {
		if v, ok := s.live[k.group][topicPartition{k.topic, k.partition}]; ok && v == seen {
			changes = append(changes, offsetChange{key: k})
			counts[k.group]++
		}
	}
	if len(changes) == 0 {
		return nil, nil
	}
	batch, err := encodeOffsetBatch(changes)
	if err != nil {
		return nil, err
	}
	if err := s.appendLocked(batch, changes); err != nil {
		return nil, err
	}
	return counts, nil
}

// get returns a committed offset.
func (s *offsetStore) get(k offsetKey) (committedOffset, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.live[k.group][topicPartition{k.topic, k.partition}]
	return v, ok
}

// group returns every committed offset of a group.
func (s *offsetStore) group(group string) map[offsetKey]committedOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[offsetKey]committedOffset, len(s.live[group]))
	for tp, v := range s.live[group] {
		out[offsetKey{group, tp.topic, tp.partition}] = v
	}
	return out
}

// hasGroup reports whether a group has committed offsets.
func (s *offsetStore) hasGroup(group string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live[group]) > 0
}

// groups returns the groups with committed offsets, each with the time of
// its latest commit (Unix ms).
func (s *offsetStore) groups() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.live))
	for g, offs := range s.live {
		out[g] = latestCommit(offs)
	}
	return out
}

// lastCommit returns the time of a group's latest commit (Unix ms), or 0
// if it has no offsets.
func (s *offsetStore) lastCommit(group string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return latestCommit(s.live[group])
}

func latestCommit(offs map[topicPartition]committedOffset) int64 {
	var last int64
	for _, v := range offs {
		last = max(last, v.CommitMs)
	}
	return last
}

// compactLocked rewrites the log with only the live offsets. The caller
// holds s.mu.
func (s *offsetStore) compactLocked() error {
	compact := filepath.Join(s.dataDir, offsetsCompactDir)
	if err := os.RemoveAll(compact); err != nil {
		return err
	}
	nl, err := commitlog.Open(compact, s.opts)
	if err != nil {
		return err
	}
	var changes []offsetChange
	flush := func() error {
		if len(changes) == 0 {
			return nil
		}
		batch, err := encodeOffsetBatch(changes)
		if err != nil {
			return err
		}
		changes = changes[:0]
		_, err = nl.Append(batch)
		return err
	}
	for group, offs := range s.live {
		for tp, v := range offs {
			changes = append(changes, offsetChange{offsetKey{group, tp.topic, tp.partition}, &v})
			if len(changes) == 1000 {
				if err := flush(); err != nil {
					nl.Delete()
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		nl.Delete()
		return err
	}
	if err := nl.Close(); err != nil {
		nl.Delete()
		return err
	}
	// The compacted log is complete and durable: swap it in. See
	// finishCompaction for what a crash between the renames leaves.
	live := filepath.Join(s.dataDir, offsetsDir)
	old := filepath.Join(s.dataDir, offsetsOldDir)
	if err := s.log.Close(); err != nil {
		return err
	}
	if err := os.Rename(live, old); err != nil {
		return err
	}
	if err := os.Rename(compact, live); err != nil {
		return err
	}
	if err := syncDir(s.dataDir); err != nil {
		return err
	}
	os.RemoveAll(old)
	l, err := commitlog.Open(live, s.opts)
	if err != nil {
		return err
	}
	s.log, s.records = l, int64(s.nlive)
	return nil
}

func (s *offsetStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Close()
}

// encodeOffsetBatch encodes changes as one uncompressed RecordBatch v2.
func encodeOffsetBatch(changes []offsetChange) ([]byte, error) {
	now := time.Now().UnixMilli()
	recs := make([]recordbatch.Record, 0, len(changes))
	for _, c := range changes {
		key, err := json.Marshal([]any{c.key.group, c.key.topic, c.key.partition})
		if err != nil {
			return nil, err
		}
		var value []byte
		if c.value != nil {
			if value, err = json.Marshal(c.value); err != nil {
				return nil, err
			}
		}
		recs = append(recs, recordbatch.Record{Key: key, Value: value, Timestamp: now})
	}
	return recordbatch.Encode(recs), nil
}

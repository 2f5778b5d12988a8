package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/recordbatch"
	"github.com/factorywire/factorywire/storage/commitlog"
	"github.com/factorywire/factorywire/topics"
)

// Spool policies for a full spool (SpoolConfig.WhenFull).
const (
	// DropOldest makes room by dropping the oldest samples not yet
	// forwarded, a whole segment at a time, counting them in
	// factorywire_gateway_spool_dropped_samples_total. Polling goes on.
	DropOldest = "drop_oldest"
	// PausePolling blocks the poller until the forwarder has made room:
	// polls that fall due meanwhile are skipped (no sample is taken, so
	// none is lost and seq stays continuous), counted in
	// factorywire_gateway_spool_full_waits_total.
	PausePolling = "pause_polling"
)

// checkpointFile holds a topic's forwarded position, in each topic's spool
// directory.
const checkpointFile = "forwarded.json"

// checkpoint is what the forwarder has delivered of one topic: every record
// below Offset, and for each device the seq of its last sample below Offset.
type checkpoint struct {
	Offset int64             `json:"offset"`
	Seqs   map[string]uint64 `json:"seqs"`
}

// Spool is the gateway's durable buffer between the poller and the
// forwarder: one commitlog.Log per topic in Dir/<topic>/, each record one
// sample (key = device id, value = sample JSON, header content-type, record
// timestamp = sample time), and beside each log the forwarder's checkpoint.
// Append returns once the samples are fsynced. Segments wholly below the
// checkpoint are deleted. All methods are safe for concurrent use.
type Spool struct {
	dir  string
	cfg  SpoolConfig
	log  *slog.Logger
	opts commitlog.Options
	room chan struct{} // closed and replaced whenever space is freed

	// nmu guards notify, closed and replaced on every append and every
	// interval fsync. Not mu: the logs' fsync goroutines call wake while
	// Close holds mu and waits for them.
	nmu    sync.Mutex
	notify chan struct{}

	mu     sync.Mutex
	topics map[string]*spoolTopic
	closed bool

	gc         sync.Mutex   // guards pending and committing (group commit)
	pending    []*appendReq // appends waiting for the next round
	committing bool         // a caller is committing rounds

	qmu         sync.Mutex
	quarantined []Quarantine // see repair

	isClosed atomic.Bool // set by Close before it closes the logs, for repairLive

	dropped   func(topic string, n int) // metrics hook, may be nil
	fullWaits func()                    // metrics hook, may be nil
}

type spoolTopic struct {
	name string
	dir  string
	// lg is the topic's log. repairLive replaces it while the gateway
	// runs: it holds lmu for writing meanwhile, and every operation that
	// must not reach a closed log (Read, Append, Sync, Heal, DeleteBefore,
	// Batches) holds lmu for reading. lmu is taken after mu, never before.
	lg  atomic.Pointer[commitlog.Log]
	lmu sync.RWMutex

	mu          sync.Mutex // guards the fields below and the checkpoint file
	ckpt        checkpoint // what the forwarder has delivered
	persisted   int64      // ckpt.Offset as last written to disk
	persistedAt time.Time
	// storeFailing counts the appends that failed since the last that
	// succeeded (storeFailed).
	storeFailing int
}

// log returns the topic's current log. Its getters (offsets, sizes) may be
// called without lmu; see spoolTopic.lg.
func (t *spoolTopic) log() *commitlog.Log { return t.lg.Load() }

// read is t.log().Read, kept from a repair in progress.
func (t *spoolTopic) read(offset int64, maxBytes int, end int64) ([]byte, error) {
	t.lmu.RLock()
	defer t.lmu.RUnlock()
	return t.log().Read(offset, maxBytes, end)
}

// OpenSpool opens (or creates) the spool in dir and every topic log in it.
func OpenSpool(dir string, cfg SpoolConfig, logger *slog.Logger) (*Spool, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{
		dir:    dir,
		cfg:    cfg,
		log:    logger,
		topics: map[string]*spoolTopic{},
		notify: make(chan struct{}),
		room:   make(chan struct{}),
		opts: commitlog.Options{
			SegmentBytes:   cfg.segmentBytes(),
			RetentionAge:   -1,
			RetentionBytes: -1,
			Logger:         logger,
			FS:             cfg.FS,
		},
	}
	if cfg.Sync == SyncInterval {
		// Each log fsyncs on its own timer; what it makes durable the
		// forwarder sends at once.
		s.opts.Flush, s.opts.FlushInterval, s.opts.OnDurable = commitlog.FlushInterval, cfg.SyncInterval, s.wake
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := s.topic(e.Name()); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// wake closes and replaces the notify channel: the forwarder looks again.
func (s *Spool) wake() {
	s.nmu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.nmu.Unlock()
}

// topic returns the spool of topic, opening it on first use.
func (s *Spool) topic(name string) (*spoolTopic, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, commitlog.ErrClosed
	}
	if t := s.topics[name]; t != nil {
		return t, nil
	}
	// The name becomes a directory: only a valid topic name may.
	if _, err := topics.Parse(name); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	t := &spoolTopic{name: name, dir: filepath.Join(s.dir, name)}
	if _, err := os.Stat(t.dir); err == nil {
		if _, err := s.repair(name, t.dir); err != nil {
			return nil, fmt.Errorf("spool %s: %w", name, err)
		}
	}
	l, err := commitlog.Open(t.dir, s.opts)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", name, err)
	}
	t.lg.Store(l)
	if err := t.loadCheckpoint(); err != nil {
		l.Close()
		return nil, fmt.Errorf("spool %s: %w", name, err)
	}
	if end := l.EndOffset(); t.ckpt.Offset > end {
		// A repair cut a damaged end of the log that had been
		// forwarded: the next appends take those offsets again, and
		// must be forwarded.
		t.ckpt.Offset = end
		if err := t.persistLocked(); err != nil {
			l.Close()
			return nil, err
		}
	}
	s.topics[name] = t
	return t, nil
}

// Quarantine is a damaged range of a spool segment that the spool moved
// aside when it opened the topic (commitlog.Repair): its samples are lost.
type Quarantine struct {
	Topic      string
	Segment    string // path of the segment file the range was in
	Byte       int64  // the range's first byte in that file
	Samples    int64  // the offsets (samples) the range held
	Quarantine string // the file now holding the range's bytes; "" if none
}

// repair verifies every batch of the topic log in dir before it is opened
// and moves any damaged range aside (commitlog.Repair: the bytes go to
// SEGMENT.log.quarantine-BYTE beside the segment, an empty placeholder
// batch keeps the offsets contiguous), so that a corrupt segment costs
// the samples in the damaged range and nothing else. Each range is logged
// with file and byte and kept for Quarantined.
func (s *Spool) repair(topic, dir string) (int, error) {
	rep, err := commitlog.Repair(dir, commitlog.RepairOptions{Log: commitlog.Options{
		SegmentBytes: s.opts.SegmentBytes, RetentionAge: -1, RetentionBytes: -1, Logger: slog.New(slog.DiscardHandler), FS: s.cfg.FS,
	}})
	if err != nil {
		return 0, fmt.Errorf("repair: %w", err)
	}
	for _, r := range rep.Ranges {
		q := Quarantine{Topic: topic, Segment: r.Segment, Byte: r.Start, Samples: r.Offsets(), Quarantine: r.Quarantine}
		s.log.Error("spool: corrupt segment; the damaged range was moved aside, its samples are lost, the rest is forwarded",
			"topic", topic, "file", r.Segment, "byte", r.Start, "end_byte", r.End, "first_offset", r.FirstOffset, "last_offset", r.LastOffset,
			"samples", q.Samples, "quarantine", r.Quarantine, "truncated", r.Truncated, "err", r.Err)
		s.qmu.Lock()
		s.quarantined = append(s.quarantined, q)
		s.qmu.Unlock()
	}
	return len(rep.Ranges), nil
}

// repairLive does for topic t, while the gateway runs, what opening the
// spool does: it closes the topic's log, moves every damaged range aside
// (repair) and opens the repaired log. The forwarder calls it when it reads
// a corrupt batch, so the damage costs its own samples and the rest of the
// topic is forwarded without a restart. Appends to t wait meanwhile (a
// repair reads the topic's segments once); other topics go on. It returns
// the number of damaged ranges moved aside: 0 when the log read as sound
// again. If the repaired log cannot be opened, t's appends and reads fail
// until the next start, like those of a failed disk (spool.when_full).
func (s *Spool) repairLive(t *spoolTopic) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := s.reopenRepaired(t)
	if err != nil {
		return 0, err
	}
	if end := t.log().EndOffset(); t.ckpt.Offset > end {
		t.ckpt.Offset = end // as in topic: a cut end is forwarded again
		if err := t.persistLocked(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// reopenRepaired closes t's log, repairs it and opens it again, holding
// t.lmu for writing. The caller holds t.mu.
func (s *Spool) reopenRepaired(t *spoolTopic) (int, error) {
	t.lmu.Lock()
	defer t.lmu.Unlock()
	if s.isClosed.Load() {
		return 0, commitlog.ErrClosed
	}
	if err := t.log().Close(); err != nil {
		s.log.Warn("spool: close the log before repairing it", "topic", t.name, "err", err)
	}
	n, repairErr := s.repair(t.name, t.dir)
	l, err := commitlog.Open(t.dir, s.opts)
	if err != nil {
		return 0, fmt.Errorf("spool %s: reopen after repair: %w", t.name, errors.Join(repairErr, err))
	}
	t.lg.Store(l)
	if repairErr != nil {
		return 0, fmt.Errorf("spool %s: %w", t.name, repairErr)
	}
	return n, nil
}

// Quarantined returns the damaged ranges moved aside since OpenSpool.
func (s *Spool) Quarantined() []Quarantine {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return slices.Clone(s.quarantined)
}

func (t *spoolTopic) loadCheckpoint() error {
	t.ckpt = checkpoint{Seqs: map[string]uint64{}}
	raw, err := os.ReadFile(filepath.Join(t.dir, checkpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &t.ckpt); err != nil {
		return fmt.Errorf("%s: %w (delete it to forward the whole spool again)", filepath.Join(t.dir, checkpointFile), err)
	}
	if t.ckpt.Seqs == nil {
		t.ckpt.Seqs = map[string]uint64{}
	}
	t.persisted = t.ckpt.Offset
	return nil
}

// Topics returns the names of the topics in the spool, sorted.
func (s *Spool) Topics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.topics))
	for n := range s.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NextSeqs returns, for every device with a sample in the spool or in a
// checkpoint, the seq its next sample must carry: its last seq plus one. It
// reads the samples not yet forwarded; call it once, at start-up.
func (s *Spool) NextSeqs() (map[string]uint64, error) {
	next := map[string]uint64{}
	for _, name := range s.Topics() {
		t, err := s.topic(name)
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		for dev, seq := range t.ckpt.Seqs {
			next[dev] = max(next[dev], seq+1)
		}
		from := max(t.ckpt.Offset, t.log().StartOffset())
		t.mu.Unlock()
		err = t.scan(from, t.log().EndOffset(), func(_ int64, r recordbatch.Record) error {
			seq, err := spooledSeq(r.Value)
			if err != nil {
				return err
			}
			next[string(r.Key)] = max(next[string(r.Key)], seq+1)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("spool %s: %w", name, err)
		}
	}
	return next, nil
}

// scan calls fn for every record from offset from up to (not including)
// end, in order.
func (t *spoolTopic) scan(from, end int64, fn func(offset int64, r recordbatch.Record) error) error {
	for from < end {
		data, err := t.read(from, 1<<20, end)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			return nil
		}
		next, err := eachRecord(data, func(offset int64, r recordbatch.Record) error {
			if offset < from {
				return nil
			}
			return fn(offset, r)
		})
		if err != nil {
			return err
		}
		from = next
	}
	return nil
}

// eachRecord calls fn for every record of the whole batches in data and
// returns the offset after the last one.
func eachRecord(data []byte, fn func(offset int64, r recordbatch.Record) error) (int64, error) {
	next := int64(-1)
	err := commitlog.SplitBatches(data, func(h commitlog.BatchHeader, batch []byte) error {
		err := recordbatch.Decode(batch, func(i int, r recordbatch.Record) error {
			return fn(h.BaseOffset+int64(i), r)
		})
		if err != nil {
			return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
		}
		next = h.LastOffset() + 1
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	return next, nil
}

// spoolHeaders are the headers of every spooled record (read only).
var spoolHeaders = []recordbatch.Header{{Key: "content-type", Value: []byte(devices.ContentType)}}

// maxSpoolBatch bounds the bytes of one spool batch, under commitlog's
// default 1 MiB batch limit.
const maxSpoolBatch = 512 << 10

// appendReq is one caller's samples of one topic waiting for a group
// commit.
type appendReq struct {
	topic   string
	samples []devices.Sample
	done    chan *appendReq // answered once err is set
	err     error
}

// Append stores samples of one topic and returns once they are written,
// and with SpoolConfig.Sync "always" fsynced. It is AppendEach with every
// sample in topic.
func (s *Spool) Append(ctx context.Context, topic string, samples []devices.Sample) error {
	return s.AppendEach(ctx, samples, func(*devices.Sample) string { return topic })
}

// AppendEach stores each sample in topic topicOf(sample) and returns once
// all are written, and with SpoolConfig.Sync "always" fsynced.
// Concurrent calls share the work (group commit): the first caller to
// find no commit running becomes the committer and writes, for every
// topic, the samples of every caller waiting, as batches of at most
// 512 KiB, with one fsync per topic; callers arriving meanwhile wait for
// the next round. A call's samples of one topic stay in order, and all of
// a call's samples are in one round. When the spool is full it drops the
// oldest samples or waits for room (SpoolConfig.WhenFull); waiting for
// room ends with ctx, a commit in progress is always waited for.
func (s *Spool) AppendEach(ctx context.Context, samples []devices.Sample, topicOf func(*devices.Sample) string) error {
	if len(samples) == 0 {
		return nil
	}
	var reqs []*appendReq
	for i := range samples {
		topic := topicOf(&samples[i])
		var r *appendReq
		for _, x := range reqs {
			if x.topic == topic {
				r = x
				break
			}
		}
		if r == nil {
			if _, err := s.topic(topic); err != nil {
				return err
			}
			r = &appendReq{topic: topic}
			reqs = append(reqs, r)
		}
		r.samples = append(r.samples, samples[i])
	}
	if err := s.makeRoom(ctx); err != nil {
		return err
	}
	s.appendReqs(reqs)
	var errs []error
	for _, r := range reqs {
		if r.err == nil {
			continue
		}
		if ctx.Err() != nil || errors.Is(r.err, commitlog.ErrClosed) {
			errs = append(errs, r.err)
			continue
		}
		errs = append(errs, s.storeFailed(ctx, r))
	}
	return errors.Join(errs...)
}

// appendReqs commits reqs by group commit and sets each one's err.
func (s *Spool) appendReqs(reqs []*appendReq) {
	done := make(chan *appendReq, len(reqs))
	s.gc.Lock()
	for _, r := range reqs {
		r.done, r.err = done, nil
		s.pending = append(s.pending, r)
	}
	leader := !s.committing
	s.committing = true
	s.gc.Unlock()
	if leader {
		for {
			s.gc.Lock()
			round := s.pending
			s.pending = nil
			if len(round) == 0 {
				s.committing = false
				s.gc.Unlock()
				break
			}
			s.gc.Unlock()
			s.commit(round)
		}
	}
	for range reqs {
		<-done
	}
}

// storeFailed applies spool.when_full to samples whose append failed: the
// disk is full, or the log failed on an earlier write or fsync
// (commitlog.ErrFailed). It heals the log (commitlog.Log.Heal, which
// removes what a failed fsync may have lost, and paces its own attempts)
// and appends again:
//
//   - drop_oldest: at the first failure after a success, first drops the
//     oldest closed segment of the largest topic, if any, to free space;
//     if the append still fails the samples are dropped, counted in
//     spool_dropped_samples_total and logged, and polling goes on;
//   - pause_polling: waits until the log heals and takes the samples,
//     counting each wait in spool_full_waits_total, until ctx ends.
//
// Samples a heal removed (written but never fsynced) are counted as
// dropped. It returns nil once the samples are stored or dropped.
func (s *Spool) storeFailed(ctx context.Context, r *appendReq) error {
	t, err := s.topic(r.topic)
	if err != nil {
		return err
	}
	cause := r.err
	// The first failure of an episode is logged at warn (and, with
	// drop_oldest, drops the oldest segment), the rest at debug.
	t.mu.Lock()
	first := t.storeFailing == 0
	t.storeFailing++
	t.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
		if s.cfg.WhenFull == DropOldest {
			if _, err := s.dropOldest(); err != nil {
				s.log.Warn("spool: drop the oldest segment for room", "topic", r.topic, "err", err)
			}
		}
	}
	s.log.Log(ctx, level, "spool: cannot store samples (disk full or failing); applying spool.when_full", "topic", r.topic, "samples", len(r.samples), "when_full", s.cfg.WhenFull, "err", cause)
	wait := 100 * time.Millisecond
	for {
		t.lmu.RLock()
		res, err := t.log().Heal()
		t.lmu.RUnlock()
		if err == nil {
			if n := res.To - res.From; n > 0 {
				s.log.Warn("spool: samples written but not fsynced before the failure were removed", "topic", r.topic, "samples", n, "from_offset", res.From, "to_offset", res.To)
				if s.dropped != nil {
					s.dropped(r.topic, int(n))
				}
			}
			s.appendReqs([]*appendReq{r})
			if err = r.err; err == nil {
				t.mu.Lock()
				failed := t.storeFailing
				t.storeFailing = 0
				t.mu.Unlock()
				s.log.Info("spool: storing samples again", "topic", r.topic, "failed_appends", failed)
				return nil
			}
		}
		cause = err
		if s.cfg.WhenFull != PausePolling {
			s.log.Log(ctx, level, "spool: samples dropped: the spool cannot store them", "topic", r.topic, "samples", len(r.samples), "err", cause)
			if s.dropped != nil {
				s.dropped(r.topic, len(r.samples))
			}
			return nil
		}
		if s.fullWaits != nil {
			s.fullWaits()
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("spool %s: %w (waiting for the disk: %w)", r.topic, ctx.Err(), cause)
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// commit writes one round of appends and answers each.
func (s *Spool) commit(round []*appendReq) {
	byTopic := map[string][]*appendReq{}
	var order []string
	for _, r := range round {
		if byTopic[r.topic] == nil {
			order = append(order, r.topic)
		}
		byTopic[r.topic] = append(byTopic[r.topic], r)
	}
	for _, topic := range order {
		reqs := byTopic[topic]
		err := s.commitTopic(topic, reqs)
		for _, r := range reqs {
			r.err = err
			r.done <- r
		}
	}
	s.wake()
}

// commitTopic appends the samples of reqs to topic's log and fsyncs it.
func (s *Spool) commitTopic(topic string, reqs []*appendReq) error {
	t, err := s.topic(topic)
	if err != nil {
		return err
	}
	var (
		recs []recordbatch.Record
		buf  []byte // the values, one after another
	)
	size := 0
	var end int64
	t.lmu.RLock()
	defer t.lmu.RUnlock()
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		base, err := t.log().Append(recordbatch.Encode(recs))
		if err != nil {
			return fmt.Errorf("spool %s: %w", topic, err)
		}
		end = base + int64(len(recs))
		recs, size = recs[:0], 0
		return nil
	}
	for _, r := range reqs {
		for i := range r.samples {
			smp := &r.samples[i]
			// buf only grows: a value taken keeps its bytes, also
			// after a flush (the value that caused it is still to
			// come) and if buf moves.
			start := len(buf)
			buf = smp.AppendJSON(buf)
			value := buf[start:len(buf):len(buf)]
			if size+len(value) > maxSpoolBatch {
				if err := flush(); err != nil {
					return err
				}
			}
			recs = append(recs, recordbatch.Record{
				Key:       []byte(smp.Device),
				Value:     value,
				Headers:   spoolHeaders,
				Timestamp: smp.Time.UnixMilli(),
			})
			size += len(value) + len(smp.Device) + 64
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if s.cfg.Sync == SyncInterval {
		return nil // each log fsyncs on its own timer (OpenSpool)
	}
	if err := t.log().Sync(end); err != nil {
		return fmt.Errorf("spool %s: %w", topic, err)
	}
	return nil
}

// appended returns a channel closed at the next Append, and under sync
// "interval" also at the next fsync that made samples durable
// (commitlog.Options.OnDurable).
func (s *Spool) appended() <-chan struct{} {
	s.nmu.Lock()
	defer s.nmu.Unlock()
	return s.notify
}

// Size is the bytes the spool's logs hold.
func (s *Spool) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, t := range s.topics {
		n += t.log().Size()
	}
	return n
}

// makeRoom applies the full-spool policy before an append.
func (s *Spool) makeRoom(ctx context.Context) error {
	for s.Size() >= s.cfg.MaxBytes {
		if s.cfg.WhenFull == PausePolling {
			if s.fullWaits != nil {
				s.fullWaits()
			}
			s.mu.Lock()
			room := s.room
			s.mu.Unlock()
			select {
			case <-room:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		dropped, err := s.dropOldest()
		if err != nil {
			return err
		}
		if !dropped {
			return nil // only active segments left: nothing to drop
		}
	}
	return nil
}

// dropOldest moves the checkpoint of the topic with the largest backlog
// past its oldest closed segment and deletes it. It reports whether it
// dropped anything.
func (s *Spool) dropOldest() (bool, error) {
	var victim *spoolTopic
	s.mu.Lock()
	for _, t := range s.topics {
		if len(t.log().SegmentBases()) > 1 && (victim == nil || t.log().Size() > victim.log().Size()) {
			victim = t
		}
	}
	s.mu.Unlock()
	if victim == nil {
		return false, nil
	}
	t := victim
	bases := t.log().SegmentBases()
	if len(bases) < 2 {
		return false, nil
	}
	cut := bases[1] // everything in the oldest segment
	t.mu.Lock()
	from := max(t.ckpt.Offset, bases[0])
	t.mu.Unlock()
	seqs := map[string]uint64{}
	n := 0
	if err := t.scan(from, cut, func(_ int64, r recordbatch.Record) error {
		if seq, err := spooledSeq(r.Value); err == nil {
			seqs[string(r.Key)] = max(seqs[string(r.Key)], seq)
		}
		n++
		return nil
	}); err != nil {
		return false, err
	}
	if err := t.advance(cut, seqs, true); err != nil {
		return false, err
	}
	if n > 0 {
		s.log.Warn("spool full: dropped samples not yet forwarded", "topic", t.name, "samples", n, "max_bytes", s.cfg.MaxBytes)
		if s.dropped != nil {
			s.dropped(t.name, n)
		}
	}
	s.freed()
	return true, nil
}

// checkpointEvery is how often, at most, the forwarder's checkpoint is
// written to disk while it advances: each write is an fsync of the file and
// of the directory, and a crash costs at most this much of re-produced
// samples. Close and a drop for room write it at once.
const checkpointEvery = time.Second

// advance moves topic t's checkpoint to offset (never backwards) with the
// last seqs of the devices forwarded or dropped below it. It persists the
// checkpoint when force is set or checkpointEvery has passed since the last
// write, and then deletes the segments below the persisted offset (never
// below what is on disk, so a restart finds every seq it needs).
func (t *spoolTopic) advance(offset int64, seqs map[string]uint64, force bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if offset > t.ckpt.Offset {
		t.ckpt.Offset = offset
		for dev, seq := range seqs {
			t.ckpt.Seqs[dev] = max(t.ckpt.Seqs[dev], seq)
		}
	}
	if t.ckpt.Offset == t.persisted || (!force && time.Since(t.persistedAt) < checkpointEvery) {
		return nil
	}
	return t.persistLocked()
}

// persistLocked writes the checkpoint and deletes what it covers. The
// caller holds t.mu.
func (t *spoolTopic) persistLocked() error {
	if err := writeFileAtomic(filepath.Join(t.dir, checkpointFile), t.ckpt.appendJSON(make([]byte, 0, t.ckpt.jsonSize()))); err != nil {
		return fmt.Errorf("spool %s: write checkpoint: %w", t.name, err)
	}
	t.persisted, t.persistedAt = t.ckpt.Offset, time.Now()
	t.lmu.RLock()
	_, err := t.log().DeleteBefore(t.persisted)
	t.lmu.RUnlock()
	if err != nil {
		return fmt.Errorf("spool %s: %w", t.name, err)
	}
	return nil
}

// spooledSeq is the seq of a spooled sample.
func spooledSeq(value []byte) (uint64, error) {
	if seq, ok := devices.SeqOf(value); ok {
		return seq, nil
	}
	smp, err := devices.DecodeSample(value)
	return smp.Seq, err
}

// position returns the offset the forwarder of t goes on from.
func (t *spoolTopic) position() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return max(t.ckpt.Offset, t.log().StartOffset())
}

// backlog is how many samples of t the broker has not acknowledged, and
// the age of the oldest (0 when none).
func (t *spoolTopic) backlog() (samples int64, age time.Duration) {
	pos, end := t.position(), t.log().DurableOffset()
	if pos >= end {
		return 0, 0
	}
	t.lmu.RLock()
	_ = t.log().Batches(pos, func(h commitlog.BatchHeader) error {
		age = time.Since(time.UnixMilli(h.BaseTimestamp))
		return errStopBatches
	})
	t.lmu.RUnlock()
	return end - pos, max(0, age)
}

var errStopBatches = errors.New("stop")

// freed wakes appends waiting for room.
func (s *Spool) freed() {
	s.mu.Lock()
	close(s.room)
	s.room = make(chan struct{})
	s.mu.Unlock()
}

// Close closes every topic log. It is idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.isClosed.Store(true)
	var err error
	for _, t := range s.topics {
		t.mu.Lock()
		if t.ckpt.Offset != t.persisted {
			err = errors.Join(err, t.persistLocked())
		}
		t.lmu.Lock()
		err = errors.Join(err, t.log().Close())
		t.lmu.Unlock()
		t.mu.Unlock()
	}
	return err
}

// writeFileAtomic writes raw to name through a temporary file, fsynced
// and renamed, and fsyncs the directory, so a crash leaves the old or the
// new content.
func writeFileAtomic(name string, raw []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// backlog is the number of samples written but not yet forwarded, over
// every topic; with durableOnly, only those fsynced, which the forwarder can
// deliver now.
func (s *Spool) backlog(durableOnly bool) int64 {
	var n int64
	for _, name := range s.Topics() {
		if t, err := s.topic(name); err == nil {
			end := t.log().EndOffset()
			if durableOnly {
				end = t.log().DurableOffset()
			}
			n += max(0, end-t.position())
		}
	}
	return n
}

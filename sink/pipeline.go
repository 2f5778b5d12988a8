package sink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/storage/mongots"
	"github.com/factorywire/factorywire/topics"
)

// store is what the sink needs of MongoDB; *mongots.Store implements it.
type store interface {
	Ensure(ctx context.Context, spec mongots.CollectionSpec) error
	Write(ctx context.Context, coll string, docs []mongots.Doc) (mongots.WriteResult, error)
	UnstoredSamples(ctx context.Context, coll string, docs []mongots.Doc) ([]mongots.Doc, error)
	ReadStatus(ctx context.Context, topic string, devs []string) (map[string]mongots.DeviceStatus, error)
	UpdateStatus(ctx context.Context, updates []mongots.DeviceStatus) error
	EnsureRollups(ctx context.Context, topic string, p mongots.Period, expireAfter time.Duration) error
	LoadRollups(ctx context.Context, topic string, p mongots.Period, keys []mongots.RollupKey) (map[mongots.RollupKey]*mongots.Rollup, error)
	SaveRollups(ctx context.Context, topic string, p mongots.Period, rs []*mongots.Rollup) ([]mongots.RollupKey, error)
	LastSeqs(ctx context.Context, coll string, devs []string) (map[string]mongots.SeqMark, error)
	LoadCheckpoints(ctx context.Context, group, topic string) (map[int32]mongots.Checkpoint, error)
	MarkTopicsAttempted(ctx context.Context, group string, attempted map[string]map[int32]int64) error
	SaveTopicOffsets(ctx context.Context, group string, next map[string]map[int32]int64) error
	LowerAttempted(ctx context.Context, group string, marks []mongots.MarkLowering) (int, error)
}

// errAbandoned means a batch was given up, unwritten or partly written,
// because a rebalance waits for it while MongoDB or the dead-letter topic
// keeps failing: its records are consumed again, by this member or the
// partition's next owner.
var errAbandoned = errors.New("sink: batch given up for a rebalance")

// transientError marks a failure worth retrying that mongots.IsTransient
// does not know: documents refused with a transient code, a dead letter
// the broker did not take.
type transientError struct{ error }

func (e transientError) Unwrap() error { return e.error }

// isTransient reports whether err is a failure expected to pass: a
// network error, no primary, a timeout (mongots.IsTransient), or a
// transientError.
func isTransient(err error) bool {
	var te transientError
	return errors.As(err, &te) || mongots.IsTransient(err)
}

// MongoDB error codes that need a person: the credentials or the roles.
const (
	codeUnauthorized              = 13
	codeAuthenticationFailed      = 18
	codeCommandNotFound           = 59
	codeUnknownReplWriteConcern   = 79
	codeUnsatisfiableWriteConcern = 100
	codeNotImplemented            = 238
)

// isFatal reports whether err stops the sink instead of being retried:
// a collection of the wrong shape or an invalid collection spec, a stored
// document of an unexpected shape, an invalid argument (a bug), or
// MongoDB refusing a command for a cause retrying cannot remove
// (mongots.CommandError: a missing privilege, an unknown option, a
// conflicting index, an unknown write concern) or the credentials. Every
// other error is retried: a transient one is expected, and one the sink
// does not know (logged as an error) is retried rather than stopping all
// partitions.
func isFatal(err error) bool {
	for _, target := range []error{mongots.ErrNotTimeSeries, mongots.ErrShape, mongots.ErrInvalidSpec,
		mongots.ErrInvalidArgument, mongots.ErrCorruptDoc} {
		if errors.Is(err, target) {
			return true
		}
	}
	if ce := new(mongots.CommandError); errors.As(err, &ce) {
		return true
	}
	var se mongo.ServerError
	return errors.As(err, &se) && (se.HasErrorCode(codeUnauthorized) || se.HasErrorCode(codeAuthenticationFailed))
}

// fatalHint adds to a fatal error the sink's configuration key that fixes
// it, where there is one.
func fatalHint(err error) error {
	var ce *mongots.CommandError
	if errors.As(err, &ce) && ce.Command == "create" && (ce.Code == codeNotImplemented || ce.Code == codeCommandNotFound) {
		return fmt.Errorf("%w (the FerretDB stand-in: set mongodb.time_series: false in the sink's config)", err)
	}
	if errors.As(err, &ce) && (ce.Code == codeUnknownReplWriteConcern || ce.Code == codeUnsatisfiableWriteConcern) {
		return fmt.Errorf("%w (mongodb.write_concern)", err)
	}
	return err
}

// ambiguousError is a write that failed after it may have reached
// MongoDB: the server may still apply it until its deadline (the driver
// sends the context's deadline as maxTimeMS), so what it stored is
// checked only after notBefore.
type ambiguousError struct {
	error
	notBefore time.Time
}

func (e ambiguousError) Unwrap() error { return e.error }

// settle waits, when err is an ambiguousError, until the write it reports
// can no longer be applied, so that whoever consumes the batch next does
// not check MongoDB while the write may still land. It waits at most
// retry.attempt_timeout and ambiguityMargin.
func settle(err error) {
	var ae ambiguousError
	if errors.As(err, &ae) {
		time.Sleep(time.Until(ae.notBefore))
	}
}

// ambiguityMargin is added to a failed write's deadline before checking
// what it stored: the server notices an expired maxTimeMS at its next
// interrupt check, not at once.
const ambiguityMargin = time.Second

// tp names a partition.
type tp struct {
	topic     string
	partition int32
}

// partState is what the sink knows of one partition it owns. Both marks
// may overestimate what MongoDB holds, never underestimate it: a record at
// or below floor, or a sample whose seq is below its device's mark, is
// checked against MongoDB before it is written (mongots.UnstoredSamples).
type partState struct {
	// floor is the highest offset of the partition that may have been
	// written: when the partition was assigned, the lower of the
	// checkpoint's attempted mark and the partition's end offset then
	// (nothing later was written, because nothing later had been
	// consumed), raised by every batch attempted since.
	floor int64
	// attempted is the checkpoint's attempted mark (-1: none): a batch
	// whose records reach past it raises it before writing
	// (mongots.Store.MarkAttempted).
	attempted int64
	// marks holds, per device, one more than the highest seq that may
	// have been stored (0: none). A device is absent until it is read
	// from MongoDB (its status entry, or its newest document).
	marks map[string]uint64
	// devs holds, per device of marks, what its status entry says.
	devs map[string]devState
	// bins holds, per rollup period and device, the rollup of the
	// device's newest bin, folded up to the last sample consumed; dirty,
	// per period, the rollups folded since they were last written.
	// loadAll is the highest offset whose samples' rollups are all read
	// from MongoDB before they are folded (foldRollups): a sink before
	// this one may have written the bins of records up to it (the floor
	// when the partition was assigned; after a rollup conflict, the floor
	// then). Past it, a device's bin later than the one held is new.
	loadAll int64
	bins    map[string]map[string]*mongots.Rollup
	dirty   map[string]map[mongots.RollupKey]*mongots.Rollup
	// flying, per period, holds the rollups the summaries write in
	// progress takes (the pipeline's own, which batches may fold into
	// meanwhile); nil when none.
	flying map[string]map[mongots.RollupKey]*mongots.Rollup
	// pending holds, per device, the status entry to write.
	pending map[string]mongots.DeviceStatus
	// hold is the lowest offset of a sample folded into a status entry or
	// a rollup not written yet (-1: none): the checkpoint does not pass
	// it. flushing is the hold of the entries and rollups a summaries
	// write in progress takes (-1: none), which the checkpoint does not
	// pass either until the write has landed.
	hold, flushing int64
	// saved is the offset last saved in the checkpoint (-1: none known).
	saved int64
}

// newPartState is the state of a partition this member starts to own.
func newPartState(floor, attempted int64) *partState {
	return &partState{floor: floor, attempted: attempted, loadAll: floor, marks: map[string]uint64{}, devs: map[string]devState{},
		bins: map[string]map[string]*mongots.Rollup{}, dirty: map[string]map[mongots.RollupKey]*mongots.Rollup{},
		pending: map[string]mongots.DeviceStatus{}, hold: -1, flushing: -1, saved: -1}
}

// held is the lowest offset the checkpoint must not pass for the status
// entries and rollups not written yet: the lower of hold and flushing
// (-1: none).
func (st *partState) held() int64 { return lowHold(st.hold, st.flushing) }

// lowHold is the lower of two holds, -1 meaning none.
func lowHold(a, b int64) int64 {
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}

// devState is what the sink knows of a device's status entry
// (mongots.DeviceStatus).
type devState struct {
	next        uint64    // one more than the seq read at first sight
	newest      time.Time // ts of the entry's sample; zero: no entry known
	errorsSince time.Time // start of the current run of samples with errors; zero: none
}

// topicName is a topic's parsed name and its records-consumed counter,
// cached: process looks both up for every record.
type topicName struct {
	name     topics.Name
	err      error
	consumed prometheus.Counter
	// pastLimit is how far back from now a sample's ts may lie (the
	// collection's TTL or max_past_skew, the shorter); 0: no limit. why
	// says which.
	pastLimit time.Duration
	why       string
}

// pipeline turns batches of records into stored documents, dead letters
// and saved offsets: the sink without Kafka's consumer. process, finish
// and landSummaries are called by one goroutine at a time; assign,
// revoke and awaitSummaries may be called concurrently with them (by the
// group's callbacks), and the summaries write runs beside them on a
// goroutine of its own (summaries.go), which finish waits for when the
// sink stops.
type pipeline struct {
	cfg   Config
	log   *slog.Logger
	m     *metrics
	store store
	now   func() time.Time
	// produce sends dead letters with acks=all and returns, per record,
	// nil or why the broker did not take it.
	produce func(ctx context.Context, recs []*kgo.Record) []error
	// abandon reports whether a rebalance waits for the batch: a failing
	// batch is then given up instead of retried.
	abandon func() bool

	mu    sync.Mutex
	parts map[tp]*partState

	names   map[string]topicName   // by topic; only process uses it
	dec     devices.Decoder        // decodes every record; only process uses it
	ensured map[string]bool        // collections ensured; only process uses it
	rewinds map[tp]int64           // partitions to consume again from, after a rollup conflict
	held    map[tp]kgo.EpochOffset // per partition held back, the offset after the last batch

	// The status entries and rollups are written beside the pipeline
	// (summaries.go): flight is the write in progress (nil: none),
	// lastFlush when the last one started, revoking how many rebalance
	// callbacks wait for the write to end (none starts meanwhile).
	flight    *summaries
	lastFlush time.Time
	revoking  int
	// gate is held while a batch's samples are written; the summaries
	// write gives way to it between its commands.
	gate batchGate
}

func newPipeline(cfg Config, log *slog.Logger, m *metrics, st store) *pipeline {
	return &pipeline{
		cfg: cfg, log: log, m: m, store: st, now: time.Now,
		produce: func(context.Context, []*kgo.Record) []error { return nil },
		abandon: func() bool { return false },
		parts:   map[tp]*partState{}, names: map[string]topicName{}, ensured: map[string]bool{}, rewinds: map[tp]int64{}, held: map[tp]kgo.EpochOffset{},
	}
}

// assign reads the checkpoint of newly assigned partitions of topic and
// returns where each should start: the highest of the offset saved in
// MongoDB and the one committed at the broker (-1: none). ends returns
// each partition's end offset (the offset the next record produced will
// get), which bounds what any sink may have written. It reads a few
// documents per partition, whatever the collection holds, and retries
// transient failures until ctx ends.
func (p *pipeline) assign(ctx context.Context, topic string, committed map[int32]int64, ends func(context.Context) (map[int32]int64, error)) (map[int32]int64, error) {
	partitions := make([]int32, 0, len(committed))
	for part := range committed {
		partitions = append(partitions, part)
	}
	slices.Sort(partitions)
	var (
		saved map[int32]mongots.Checkpoint
		end   map[int32]int64
	)
	err := p.retry(ctx, opLoad, nil, func(ctx context.Context) error {
		var err error
		if saved, err = p.store.LoadCheckpoints(ctx, p.cfg.Kafka.Group, topic); err != nil {
			return err
		}
		if end, err = ends(ctx); err != nil {
			return transientError{fmt.Errorf("end offsets of %s: %w", topic, err)}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	start := make(map[int32]int64, len(committed))
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range partitions {
		o := committed[part] // negative: none, start at the earliest
		cp, ok := saved[part]
		if !ok {
			cp = mongots.Checkpoint{Next: -1, Attempted: -1}
		}
		o = max(o, cp.Next)
		start[part] = o
		floor := int64(math.MaxInt64) // no end offset: check everything
		if e, ok := end[part]; ok {
			floor = e - 1
		}
		if cp.Attempted >= 0 {
			floor = min(floor, cp.Attempted)
		}
		p.parts[tp{topic, part}] = newPartState(floor, cp.Attempted)
		p.parts[tp{topic, part}].saved = cp.Next
		p.log.Info("partition assigned", "topic", topic, "partition", part, "start", o,
			"committed", committed[part], "saved", cp.Next, "attempted", cp.Attempted, "end", end[part], "floor", floor)
	}
	return start, nil
}

// revoke forgets partitions this member no longer owns: another member
// may write them meanwhile, so what this one knew goes stale. Rollups
// folded and not written are dropped with them: the checkpoint held their
// samples back, so the next owner folds them.
func (p *pipeline) revoke(topic string, partitions []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range partitions {
		delete(p.parts, tp{topic, part})
		delete(p.held, tp{topic, part})
	}
}

// candidate is a valid sample on its way to MongoDB.
type candidate struct {
	rec *kgo.Record
	doc mongots.Doc
}

// check is a document that MongoDB may hold already: its index among its
// collection's documents, and whether its record was replayed (at or
// below the partition's floor) rather than its seq delivered again.
type check struct {
	idx    int
	replay bool
}

// batchResult is what process did.
type batchResult struct {
	next   map[string]map[int32]kgo.EpochOffset // per partition, the offset after the batch's last record
	stored int                                  // documents written
}

// decode classifies a batch's records: the samples to store, the dead
// letters, each partition's highest offset, and the offsets to commit.
func (p *pipeline) decode(recs []*kgo.Record) (batchResult, []candidate, []*deadLetter, map[tp]int64) {
	res := batchResult{next: map[string]map[int32]kgo.EpochOffset{}}
	now := p.now()
	var (
		cands = make([]candidate, 0, len(recs)) // sized once: a candidate is over 100 bytes
		dead  []*deadLetter
		high  = map[tp]int64{}
	)
	for _, r := range recs {
		tn, ok := p.names[r.Topic]
		if !ok {
			tn.name, tn.err = topics.Parse(r.Topic)
			if tn.err == nil && tn.name.DLQ {
				tn.err = errors.New("a dead-letter topic is not a sample topic")
			}
			tn.consumed = p.m.consumed.WithLabelValues(r.Topic)
			if tn.err == nil {
				tn.pastLimit, tn.why = p.pastLimit(tn.name.Class)
			}
			p.names[r.Topic] = tn
		}
		tn.consumed.Inc()
		if res.next[r.Topic] == nil {
			res.next[r.Topic] = map[int32]kgo.EpochOffset{}
		}
		res.next[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		high[tp{r.Topic, r.Partition}] = r.Offset
		lim := timeLimits{skew: p.cfg.MaxFutureSkew, why: tn.why}
		lim.ref, lim.refName = referenceTime(r, now)
		if tn.pastLimit > 0 {
			lim.oldest = now.Add(-tn.pastLimit)
		}
		s, dl := classify(&p.dec, r, tn.name, tn.err, lim)
		if dl != nil {
			dead = append(dead, dl)
			continue
		}
		cands = append(cands, candidate{rec: r, doc: mongots.Doc{Sample: s, Partition: r.Partition, Offset: r.Offset}})
	}
	return res, cands, dead, high
}

// process stores a batch: records in offset order per partition, every
// partition owned. It returns the offsets to commit, an error wrapping
// errAbandoned or ctx's error when the batch was given up (nothing saved:
// consume it again), or another error when MongoDB refused the batch for
// good (stop the sink).
func (p *pipeline) process(ctx context.Context, recs []*kgo.Record) (batchResult, error) {
	res, cands, dead, high := p.decode(recs)
	if err := p.learn(ctx, cands); err != nil {
		return res, err
	}
	docs, checks := p.mark(cands, high)
	if err := p.sendDeadLetters(ctx, dead); err != nil {
		return res, err
	}
	stored, rejected, err := p.writeSamples(ctx, high, docs, checks, recs)
	res.stored += stored
	if err != nil {
		return res, err
	}
	if err := p.sendDeadLetters(ctx, rejected); err != nil {
		return res, err
	}
	skip := rejectedOffsets(rejected)
	p.updateStatus(docs, skip)
	if err := p.updateRollups(ctx, docs, skip); err != nil {
		return res, err
	}
	p.holdOffsets(res.next)
	p.dropSaved(res.next)
	if err := p.saveOffsets(ctx, res.next); err != nil {
		return res, err
	}
	return res, nil
}

// writeSamples raises the attempted marks and writes the batch's samples,
// one collection after the other, holding the gate the summaries write
// gives way at (batchGate) meanwhile. It returns how many it stored and
// the samples MongoDB refused for good.
func (p *pipeline) writeSamples(ctx context.Context, high map[tp]int64, docs map[string][]mongots.Doc, checks map[string][]check, recs []*kgo.Record) (int, []*deadLetter, error) {
	p.gate.hold()
	defer p.gate.release()
	if err := p.markAttempted(ctx, high); err != nil {
		return 0, nil, err
	}
	colls := make([]string, 0, len(docs))
	for coll := range docs {
		colls = append(colls, coll)
	}
	slices.Sort(colls)
	stored := 0
	var rejected []*deadLetter
	for _, coll := range colls {
		n, rej, err := p.writeCollection(ctx, coll, docs[coll], checks[coll], recs)
		stored += n
		rejected = append(rejected, rej...)
		if err != nil {
			return stored, rejected, err
		}
	}
	return stored, rejected, nil
}

// saveOffsets saves next in the checkpoint, every topic in one write,
// and notes what it saved.
func (p *pipeline) saveOffsets(ctx context.Context, next map[string]map[int32]kgo.EpochOffset) error {
	if len(next) == 0 {
		return nil
	}
	offsets := plainOffsets(next)
	err := p.retry(ctx, opSave, p.abandon, func(ctx context.Context) error {
		return p.store.SaveTopicOffsets(ctx, p.cfg.Kafka.Group, offsets)
	})
	if err != nil {
		return fmt.Errorf("save offsets of %s: %w", strings.Join(slices.Sorted(maps.Keys(offsets)), ","), err)
	}
	p.markSaved(offsets)
	return nil
}

// plainOffsets is next without the leader epochs, as the checkpoint
// holds it.
func plainOffsets(next map[string]map[int32]kgo.EpochOffset) map[string]map[int32]int64 {
	out := make(map[string]map[int32]int64, len(next))
	for topic, parts := range next {
		out[topic] = make(map[int32]int64, len(parts))
		for part, eo := range parts {
			out[topic][part] = eo.Offset
		}
	}
	return out
}

// dropSaved removes from next the partitions whose offset is the one
// saved last: while a partition's hold keeps its checkpoint back, most
// batches would save (and commit) the same offset again.
func (p *pipeline) dropSaved(next map[string]map[int32]kgo.EpochOffset) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for topic, parts := range next {
		for part, eo := range parts {
			if st := p.parts[tp{topic, part}]; st != nil && st.saved == eo.Offset {
				delete(parts, part)
			}
		}
		if len(parts) == 0 {
			delete(next, topic)
		}
	}
}

// markSaved notes the offsets just saved (topic → partition → offset).
func (p *pipeline) markSaved(next map[string]map[int32]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for topic, parts := range next {
		for part, o := range parts {
			if st := p.parts[tp{topic, part}]; st != nil {
				st.saved = o
			}
		}
	}
}

// learn makes sure the state of every partition and device of cands is
// known: a partition not assigned through assign (which does not happen
// with a group, but costs nothing to handle) gets no floor (every record
// is checked), a device seen for the first time its newest stored seq.
func (p *pipeline) learn(ctx context.Context, cands []candidate) error {
	missingParts := map[string][]int32{}
	missingDevs := map[tp][]string{}
	seenPart := map[tp]bool{}
	seenDev := map[tp]map[string]bool{}
	p.mu.Lock()
	for i := range cands {
		c := &cands[i]
		k := tp{c.rec.Topic, c.rec.Partition}
		st := p.parts[k]
		if st == nil && !seenPart[k] {
			seenPart[k] = true
			missingParts[k.topic] = append(missingParts[k.topic], k.partition)
		}
		dev := c.doc.Sample.Device
		if st != nil {
			if _, ok := st.marks[dev]; ok {
				continue
			}
		}
		if seenDev[k] == nil {
			seenDev[k] = map[string]bool{}
		}
		if !seenDev[k][dev] {
			seenDev[k][dev] = true
			missingDevs[k] = append(missingDevs[k], dev)
		}
	}
	p.mu.Unlock()
	if len(missingParts) == 0 && len(missingDevs) == 0 {
		return nil
	}
	// A partition not assigned through assign has no known floor: every
	// record is checked.
	floors := map[tp]int64{}
	for topic, parts := range missingParts {
		for _, part := range parts {
			floors[tp{topic, part}] = math.MaxInt64
		}
	}
	// The devices of one topic together: their status entries (one find
	// by _id per 1,000), then, for those without one (new devices, or a
	// collection written before the status existed), their newest samples
	// (one last-point aggregation per 1,000).
	byTopic := map[string][]string{}
	for k, devs := range missingDevs {
		byTopic[k.topic] = append(byTopic[k.topic], devs...)
	}
	known := map[string]map[string]devState{}
	for topic, devs := range byTopic {
		var status map[string]mongots.DeviceStatus
		var last map[string]mongots.SeqMark
		err := p.retry(ctx, opLoad, p.abandon, func(ctx context.Context) error {
			var err error
			if status, err = p.store.ReadStatus(ctx, topic, devs); err != nil {
				return err
			}
			var rest []string
			for _, d := range devs {
				if _, ok := status[d]; !ok {
					rest = append(rest, d)
				}
			}
			if len(rest) == 0 {
				return nil
			}
			last, err = p.store.LastSeqs(ctx, topic, rest)
			return err
		})
		if err != nil {
			return fmt.Errorf("last seqs in %s: %w", topic, err)
		}
		m := make(map[string]devState, len(devs))
		for _, d := range devs {
			if st, ok := status[d]; ok {
				m[d] = devState{next: seqMark(st.Sample.Seq), newest: st.Sample.Time, errorsSince: st.ErrorsSince}
			} else if l, ok := last[d]; ok {
				m[d] = devState{next: seqMark(l.Seq)}
			} else {
				m[d] = devState{}
			}
		}
		known[topic] = m
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, floor := range floors {
		if p.parts[k] == nil {
			p.parts[k] = newPartState(floor, -1)
		}
	}
	for k, devs := range missingDevs {
		st := p.parts[k]
		if st == nil {
			continue // revoked meanwhile; mark treats it as unknown
		}
		for _, d := range devs {
			if _, ok := st.marks[d]; !ok {
				st.marks[d] = known[k.topic][d].next
				st.devs[d] = known[k.topic][d]
			}
		}
	}
	return nil
}

// lowerMarksTimeout bounds the one attempt to lower the attempted marks
// of partitions given up (lowerMarks).
const lowerMarksTimeout = 5 * time.Second

// markAttempted records in the checkpoint, before the batch is written,
// how far it may write each partition: every partition whose batch
// records reach past its attempted mark gets the mark raised, all topics
// in one write. A sink that takes a partition over checks the records up
// to the mark against MongoDB, instead of reading the collection to learn
// what was written.
//
// The mark is raised batch.max_records past the batch's highest offset of
// the partition, so that most batches find their records under the mark
// already and write nothing before their samples: at a steady rate the
// checkpoint is written once per max_records records of a partition, not
// once per batch. A member that gives partitions up cleanly (a stop, a
// rebalance) lowers their marks again (lowerMarks). After a crash the
// next owner checks up to max_records more records of each partition
// against MongoDB than the batch the crash cut short (its floor is also
// bounded by the partition's end offset, so it never checks records
// produced after it took over).
func (p *pipeline) markAttempted(ctx context.Context, high map[tp]int64) error {
	ahead := int64(p.cfg.Batch.MaxRecords)
	raise := map[string]map[int32]int64{}
	p.mu.Lock()
	for k, o := range high {
		st := p.parts[k]
		if st != nil && o <= st.attempted {
			continue
		}
		if raise[k.topic] == nil {
			raise[k.topic] = map[int32]int64{}
		}
		raise[k.topic][k.partition] = o + ahead
	}
	p.mu.Unlock()
	if len(raise) == 0 {
		return nil
	}
	err := p.retry(ctx, opSave, p.abandon, func(ctx context.Context) error {
		return p.store.MarkTopicsAttempted(ctx, p.cfg.Kafka.Group, raise)
	})
	if err != nil {
		return fmt.Errorf("mark attempted offsets of %s: %w", strings.Join(slices.Sorted(maps.Keys(raise)), ","), err)
	}
	p.mu.Lock()
	for topic, marks := range raise {
		for part, o := range marks {
			if st := p.parts[tp{topic, part}]; st != nil {
				st.attempted = max(st.attempted, o)
			}
		}
	}
	p.mu.Unlock()
	return nil
}

// lowerMarks lowers the attempted marks this member raised ahead of what
// it wrote, for the partitions of parts (every partition it owns when
// parts is nil) that it gives up cleanly: each to the partition's floor,
// the highest offset that may have been written, so that the next owner
// checks no record that no write reached. One attempt, bounded by
// retry.attempt_timeout or lowerMarksTimeout, the shorter (a rebalance
// waits for it); a mark not lowered stays ahead, which is safe: the next
// owner checks up to batch.max_records records more.
func (p *pipeline) lowerMarks(ctx context.Context, parts map[string][]int32) {
	var marks []mongots.MarkLowering
	p.mu.Lock()
	for k, st := range p.parts {
		if parts != nil && !slices.Contains(parts[k.topic], k.partition) {
			continue
		}
		if st.floor >= 0 && st.attempted > st.floor {
			marks = append(marks, mongots.MarkLowering{Topic: k.topic, Partition: k.partition, From: st.attempted, To: st.floor})
		}
	}
	p.mu.Unlock()
	if len(marks) == 0 {
		return
	}
	slices.SortFunc(marks, func(a, b mongots.MarkLowering) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	ctx, cancel := context.WithTimeout(ctx, min(p.cfg.Retry.AttemptTimeout, lowerMarksTimeout))
	defer cancel()
	n, err := p.store.LowerAttempted(ctx, p.cfg.Kafka.Group, marks)
	if err != nil {
		p.log.Warn("attempted marks not lowered: the partitions' next owner checks their last records against MongoDB",
			"partitions", len(marks), "err", err)
		return
	}
	p.log.Debug("attempted marks lowered", "partitions", len(marks), "lowered", n)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range marks {
		if st := p.parts[tp{m.Topic, m.Partition}]; st != nil && st.attempted == m.From {
			st.attempted = m.To
		}
	}
}

// pastLimit returns how far back from now a sample of class may lie, and
// why: the class's expire_after (TTL) or max_past_skew, the shorter; 0
// when neither is set.
func (p *pipeline) pastLimit(class string) (time.Duration, string) {
	var limit time.Duration
	why := ""
	if ttl := p.cfg.Collections.collectionFor(class).ExpireAfter; ttl != nil && *ttl > 0 {
		limit, why = *ttl, fmt.Sprintf("older than the collection's expire_after %s: MongoDB would delete it at once", *ttl)
	}
	if skew := p.cfg.MaxPastSkew; skew > 0 && (limit == 0 || skew < limit) {
		limit, why = skew, fmt.Sprintf("more than max_past_skew %s behind the sink's clock", skew)
	}
	return limit, why
}

// rejectedOffsets returns, per partition, the offsets of the records of
// rejected: samples MongoDB refused, which status and rollups leave out.
func rejectedOffsets(rejected []*deadLetter) map[tp]map[int64]bool {
	skip := map[tp]map[int64]bool{}
	for _, d := range rejected {
		k := tp{d.rec.Topic, d.rec.Partition}
		if skip[k] == nil {
			skip[k] = map[int64]bool{}
		}
		skip[k][d.rec.Offset] = true
	}
	return skip
}

// updateStatus folds the batch's samples (stored now or before, not at
// skip: rejected) into their devices' status entries: the newest sample, and
// since when the device has had errors. The entries are written with the
// rollups (flushSummaries), and until they are the checkpoint does not
// pass the samples folded in (the partition's hold): after a crash the
// entries lag, and the records consumed again (all at or below the floor,
// so checked) bring the marks back up before any later record of their
// devices, and write the entries.
func (p *pipeline) updateStatus(docs map[string][]mongots.Doc, skip map[tp]map[int64]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for coll, ds := range docs {
		for i := range ds {
			d := &ds[i]
			k := tp{coll, d.Partition}
			st := p.parts[k]
			if st == nil || skip[k][d.Offset] {
				continue // revoked: its next owner folds it
			}
			// docs are in offset order per partition, so per device in
			// seq and time order.
			dev := st.devs[d.Sample.Device]
			if !d.Sample.Time.After(dev.newest) {
				continue // the entry holds this sample or a newer one
			}
			if len(d.Sample.Errors) == 0 {
				dev.errorsSince = time.Time{}
			} else if dev.errorsSince.IsZero() {
				dev.errorsSince = d.Sample.Time
			}
			prev, pending := st.pending[d.Sample.Device]
			st.pending[d.Sample.Device] = mongots.DeviceStatus{Topic: coll, Sample: d.Sample, ErrorsSince: dev.errorsSince,
				New: dev.newest.IsZero() || pending && prev.New} // no entry known: insert one
			dev.newest = d.Sample.Time
			st.devs[d.Sample.Device] = dev
			if st.hold < 0 || d.Offset < st.hold {
				st.hold = d.Offset
			}
		}
	}
}

// updateRollups folds the batch's samples (stored now or before, not at
// skip: rejected) into their devices' minute and hour rollups, and starts
// writing, beside the pipeline, the status entries and rollups folded
// since the last write once summary_interval has passed (at every batch
// with 0) and no such write is in progress (startSummaries).
//
// Exactly once without transactions: a rollup records the (ts, seq) of
// the last sample folded in and folds only later ones (mongots.Rollup.Fold),
// per-device order makes every sample of a device arrive after those
// before it, and a rollup is written whole, over the revision it was read
// at (mongots.Store.SaveRollups). Until the rollups a sample was folded
// into are written, the checkpoint does not pass the sample (the
// partition's hold): a sink that stops or crashes before, or loses the
// partition, leaves the sample to be consumed again and folded into the
// rollup as stored. Rollups the sink does not hold (a device's first
// sample in a bin since it took the partition) are read first, one find
// by _id per 1,000.
func (p *pipeline) updateRollups(ctx context.Context, docs map[string][]mongots.Doc, skip map[tp]map[int64]bool) error {
	colls := make([]string, 0, len(docs))
	for coll := range docs {
		colls = append(colls, coll)
	}
	slices.Sort(colls)
	for _, coll := range colls {
		rc := p.cfg.Collections.collectionFor(p.className(coll)).Rollups
		if rc.Enabled == nil || !*rc.Enabled {
			continue
		}
		var samples []*mongots.Doc
		for i := range docs[coll] {
			d := &docs[coll][i]
			if !skip[tp{coll, d.Partition}][d.Offset] {
				samples = append(samples, d)
			}
		}
		for _, per := range mongots.Periods {
			if err := p.ensureRollups(ctx, coll, per, rc.expireAfter(per.Name)); err != nil {
				return err
			}
			if err := p.foldRollups(ctx, coll, per, samples); err != nil {
				return fmt.Errorf("rollups %s of %s: %w", per.Name, coll, err)
			}
		}
	}
	if p.summariesDue() {
		p.startSummaries(ctx)
	}
	return nil
}

// foldRollups folds samples of coll into their rollups of period per,
// reading first, with retries, the rollups the sink does not hold.
func (p *pipeline) foldRollups(ctx context.Context, coll string, per mongots.Period, samples []*mongots.Doc) error {
	keyOf := func(d *mongots.Doc) mongots.RollupKey {
		return mongots.RollupKey{Device: d.Sample.Device, Start: d.Sample.Time.UTC().Truncate(per.D)}
	}
	var need []mongots.RollupKey
	seen := map[mongots.RollupKey]bool{}
	p.mu.Lock()
	for _, d := range samples {
		key := keyOf(d)
		st := p.parts[tp{coll, d.Partition}]
		if st == nil || seen[key] {
			continue
		}
		cur := st.bins[per.Name][key.Device]
		if cur != nil && cur.Start.Equal(key.Start) || st.dirty[per.Name][key] != nil || st.flying[per.Name][key] != nil {
			seen[key] = true // held
			continue
		}
		if cur != nil && cur.Start.Before(key.Start) && d.Offset > st.loadAll {
			// A bin later than the one held, of a record no sink before
			// this one attempted: no sink wrote it, since every earlier
			// sample of the device went through this one (a stale
			// writer's conflicts on saving). Not marked seen: a sample of
			// the bin from another partition (a device that moved when
			// partitions were added) may still need it read.
			continue
		}
		seen[key] = true
		need = append(need, key)
	}
	p.mu.Unlock()
	var loaded map[mongots.RollupKey]*mongots.Rollup
	if len(need) > 0 {
		err := p.retry(ctx, opLoad, p.abandon, func(ctx context.Context) error {
			var err error
			loaded, err = p.store.LoadRollups(ctx, coll, per, need)
			return err
		})
		if err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	objs := map[mongots.RollupKey]*mongots.Rollup{}
	for _, d := range samples {
		key := keyOf(d)
		st := p.parts[tp{coll, d.Partition}]
		if st == nil {
			continue // revoked: its next owner folds it
		}
		r := objs[key]
		if r == nil {
			switch cur := st.bins[per.Name][key.Device]; {
			case cur != nil && cur.Start.Equal(key.Start):
				r = cur
			case st.dirty[per.Name][key] != nil:
				r = st.dirty[per.Name][key]
			case st.flying[per.Name][key] != nil:
				r = st.flying[per.Name][key] // being written: its revision is raised when the write lands
			case loaded[key] != nil:
				r = loaded[key]
			default:
				r = mongots.NewRollup(coll, per, &d.Sample)
			}
			objs[key] = r
		}
		if r.Fold(&d.Sample) {
			if st.dirty[per.Name] == nil {
				st.dirty[per.Name] = map[mongots.RollupKey]*mongots.Rollup{}
			}
			st.dirty[per.Name][key] = r
			if st.hold < 0 || d.Offset < st.hold {
				st.hold = d.Offset
			}
		}
		if st.bins[per.Name] == nil {
			st.bins[per.Name] = map[string]*mongots.Rollup{}
		}
		if cur := st.bins[per.Name][key.Device]; cur == nil || cur.Start.Before(key.Start) {
			st.bins[per.Name][key.Device] = r
		}
	}
	return nil
}

// ensureRollups prepares coll's rollup collection of period per the first
// time this process writes it.
func (p *pipeline) ensureRollups(ctx context.Context, coll string, per mongots.Period, ttl time.Duration) error {
	name := mongots.RollupCollection(coll, per)
	if p.ensured[name] {
		return nil
	}
	err := p.retry(ctx, opEnsure, p.abandon, func(ctx context.Context) error { return p.store.EnsureRollups(ctx, coll, per, ttl) })
	if err != nil {
		return fmt.Errorf("ensure rollups %s: %w", name, err)
	}
	p.ensured[name] = true
	return nil
}

// className returns the class of coll's topic, or coll when it does not
// parse.
func (p *pipeline) className(coll string) string {
	if n, ok := p.names[coll]; ok && n.err == nil {
		return n.name.Class
	}
	return coll
}

// seqMark is one more than seq, saturating.
func seqMark(seq uint64) uint64 {
	if seq == math.MaxUint64 {
		return seq
	}
	return seq + 1
}

// sampleKey identifies a sample: a gateway delivering a sample again
// delivers the same device, seq and ts.
type sampleKey struct {
	coll, device string
	seq          uint64
	ms           int64
}

// mark sorts cands into documents per collection, skipping samples seen
// earlier in the batch, and flags those that MongoDB may hold already
// (checks: indexes into the collection's documents). It then raises the
// partitions' floors and the devices' marks to what the batch may write.
func (p *pipeline) mark(cands []candidate, high map[tp]int64) (map[string][]mongots.Doc, map[string][]check) {
	// Size each collection's documents once: growing them by append
	// copied every document several times per batch.
	perColl := map[string]int{}
	for i := range cands {
		perColl[cands[i].rec.Topic]++
	}
	docs := make(map[string][]mongots.Doc, len(perColl))
	for coll, n := range perColl {
		docs[coll] = make([]mongots.Doc, 0, n)
	}
	checks := map[string][]check{}
	inBatch := make(map[sampleKey]bool, len(cands))
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range cands {
		c := &cands[i]
		coll, s := c.rec.Topic, &c.doc.Sample
		key := sampleKey{coll, s.Device, s.Seq, s.Time.UnixMilli()}
		if inBatch[key] {
			p.m.duplicates.WithLabelValues(coll, ruleSeq).Inc()
			continue
		}
		inBatch[key] = true
		st := p.parts[tp{coll, c.rec.Partition}]
		ck := check{idx: len(docs[coll]), replay: true}
		needed := st == nil // revoked since learn: check everything
		if st != nil {
			m, known := st.marks[s.Device]
			ck.replay = c.rec.Offset <= st.floor
			needed = !known || ck.replay || s.Seq < m
			st.marks[s.Device] = max(m, seqMark(s.Seq))
		}
		if needed {
			checks[coll] = append(checks[coll], ck)
		}
		docs[coll] = append(docs[coll], c.doc)
	}
	for k, o := range high {
		if st := p.parts[k]; st != nil {
			st.floor = max(st.floor, o)
		}
	}
	return docs, checks
}

// writeCollection writes docs to coll, first dropping the documents at
// checks that MongoDB holds already. It retries transient failures,
// dropping before each retry what the failed attempt may have stored. It
// returns the documents stored and the dead letters of those MongoDB
// refused for good.
func (p *pipeline) writeCollection(ctx context.Context, coll string, docs []mongots.Doc, checks []check, recs []*kgo.Record) (int, []*deadLetter, error) {
	if err := p.ensure(ctx, coll); err != nil {
		return 0, nil, err
	}
	pending := docs
	if len(checks) > 0 {
		ask := make([]mongots.Doc, len(checks))
		keep := make([]mongots.Doc, 0, len(docs)-len(checks))
		j := 0
		for i, d := range docs {
			if j < len(checks) && checks[j].idx == i {
				ask[j] = d
				j++
			} else {
				keep = append(keep, d)
			}
		}
		var unstored []mongots.Doc
		err := p.retry(ctx, opLoad, p.abandon, func(ctx context.Context) error {
			var err error
			unstored, err = p.store.UnstoredSamples(ctx, coll, ask)
			return err
		})
		if err != nil {
			return 0, nil, fmt.Errorf("stored samples in %s: %w", coll, err)
		}
		p.countSkipped(coll, ask, checks, unstored)
		pending = append(keep, unstored...)
	}
	var (
		stored   int
		rejected []mongots.DocError
		verify   bool // the last attempt failed part way: drop what it stored
	)
	err := p.retry(ctx, opWrite, p.abandon, func(ctx context.Context) error {
		if verify {
			unstored, err := p.store.UnstoredSamples(ctx, coll, pending)
			if err != nil {
				return err
			}
			pending, verify = unstored, false
		}
		if len(pending) == 0 {
			return nil
		}
		start := time.Now()
		res, err := p.store.Write(ctx, coll, pending)
		stored += res.Inserted
		p.m.stored.WithLabelValues(coll).Add(float64(res.Inserted))
		if err == nil {
			p.m.observeDelay(pending, res.Failed, time.Now())
		}
		if err != nil {
			result := "error"
			if isTransient(err) {
				result = "transient"
			}
			p.m.writeTime.WithLabelValues(result).Observe(time.Since(start).Seconds())
			verify = true
			var sse topology.ServerSelectionError
			if errors.As(err, &sse) {
				return err // no command was sent
			}
			deadline, ok := ctx.Deadline()
			if !ok {
				deadline = time.Now()
			}
			return ambiguousError{err, deadline.Add(ambiguityMargin)}
		}
		p.m.writeTime.WithLabelValues("ok").Observe(time.Since(start).Seconds())
		var again []mongots.Doc
		var first error
		for _, f := range res.Failed {
			if f.Transient {
				again = append(again, f.Doc)
				if first == nil {
					first = f
				}
			} else {
				rejected = append(rejected, f)
			}
		}
		pending = again
		if len(again) > 0 {
			return transientError{fmt.Errorf("%d documents of %s failed transiently, such as %w", len(again), coll, first)}
		}
		return nil
	})
	if err != nil {
		return stored, nil, fmt.Errorf("write %s: %w", coll, err)
	}
	if len(rejected) == 0 {
		return stored, nil, nil
	}
	byOffset := map[tp]map[int64]*kgo.Record{}
	for _, r := range recs {
		if r.Topic != coll {
			continue
		}
		k := tp{r.Topic, r.Partition}
		if byOffset[k] == nil {
			byOffset[k] = map[int64]*kgo.Record{}
		}
		byOffset[k][r.Offset] = r
	}
	dead := make([]*deadLetter, 0, len(rejected))
	for _, f := range rejected {
		r := byOffset[tp{coll, f.Doc.Partition}][f.Doc.Offset]
		class := ClassWriteRejected
		if errors.Is(f.Err, mongots.ErrTooLarge) {
			class = ClassTooLarge
		}
		dead = append(dead, &deadLetter{rec: r, class: class, err: f})
	}
	return stored, dead, nil
}

// countSkipped counts the documents of asked (flagged by checks) that
// MongoDB holds, those not in unstored, as duplicates: by offset when
// their record was replayed, by seq when a gateway delivered the sample
// again at a new offset.
func (p *pipeline) countSkipped(coll string, asked []mongots.Doc, checks []check, unstored []mongots.Doc) {
	if len(asked) == len(unstored) {
		return
	}
	kept := make(map[tp]map[int64]bool, 1)
	for _, d := range unstored {
		k := tp{coll, d.Partition}
		if kept[k] == nil {
			kept[k] = map[int64]bool{}
		}
		kept[k][d.Offset] = true
	}
	byOffset, bySeq := 0, 0
	for i, d := range asked {
		switch {
		case kept[tp{coll, d.Partition}][d.Offset]:
		case checks[i].replay:
			byOffset++
		default:
			bySeq++
		}
	}
	if byOffset > 0 {
		p.m.duplicates.WithLabelValues(coll, ruleOffset).Add(float64(byOffset))
	}
	if bySeq > 0 {
		p.m.duplicates.WithLabelValues(coll, ruleSeq).Add(float64(bySeq))
	}
}

// ensure creates coll the first time this process sees it.
func (p *pipeline) ensure(ctx context.Context, coll string) error {
	if p.ensured[coll] {
		return nil
	}
	cc := p.cfg.Collections.collectionFor(p.className(coll))
	spec := mongots.CollectionSpec{Name: coll, Granularity: cc.Granularity, BucketMaxSpan: cc.BucketMaxSpan}
	if cc.ExpireAfter != nil {
		spec.ExpireAfter = *cc.ExpireAfter
	}
	err := p.retry(ctx, opEnsure, p.abandon, func(ctx context.Context) error { return p.store.Ensure(ctx, spec) })
	if err != nil {
		return fmt.Errorf("ensure collection %s: %w", coll, err)
	}
	p.ensured[coll] = true
	return nil
}

// sendDeadLetters produces dead, retrying what the broker did not take
// until it takes everything, the batch is abandoned or ctx ends.
func (p *pipeline) sendDeadLetters(ctx context.Context, dead []*deadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	type group struct{ topic, class string }
	first := map[group]*deadLetter{}
	count := map[group]int{}
	for _, d := range dead {
		g := group{d.rec.Topic, d.class}
		if first[g] == nil {
			first[g] = d
		}
		count[g]++
	}
	pending := dead
	err := p.retry(ctx, opDLQ, p.abandon, func(ctx context.Context) error {
		recs := make([]*kgo.Record, len(pending))
		for i, d := range pending {
			recs[i] = d.record()
		}
		errs := p.produce(ctx, recs)
		var failed []*deadLetter
		var firstErr error
		for i, err := range errs {
			if err != nil {
				failed = append(failed, pending[i])
				if firstErr == nil {
					firstErr = fmt.Errorf("produce to %s: %w (the dead-letter topic must exist: create it with `broker topics create`)", recs[i].Topic, err)
				}
			}
		}
		pending = failed
		if firstErr != nil {
			return transientError{firstErr}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead letters: %w", err)
	}
	groups := make([]group, 0, len(first))
	for g := range first {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b group) int { return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.class, b.class)) })
	for _, g := range groups {
		d := first[g]
		p.m.deadLetter.WithLabelValues(g.topic, g.class).Add(float64(count[g]))
		p.log.Warn("records sent to the dead-letter topic", "topic", g.topic, "dlq", deadLetterTopic(g.topic), "class", g.class,
			"records", count[g], "first_partition", d.rec.Partition, "first_offset", d.rec.Offset, "err", d.err)
	}
	return nil
}

// retry runs op until it succeeds, fails fatally (isFatal), ctx ends or
// abandon (when not nil) says a rebalance waits. Each attempt is bounded
// by retry.attempt_timeout; waits double from retry.min_backoff to
// retry.max_backoff, with jitter, and last at least until an
// ambiguousError's notBefore. Every retry is logged and counted.
func (p *pipeline) retry(ctx context.Context, op string, abandon func() bool, fn func(ctx context.Context) error) error {
	backoff := p.cfg.Retry.MinBackoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.Retry.AttemptTimeout)
		err := fn(actx)
		cancel()
		switch {
		case err == nil:
			if attempt > 1 {
				p.log.Info("recovered after transient failures", "op", op, "attempts", attempt)
			}
			return nil
		case ctx.Err() != nil:
			settle(err)
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case isFatal(err), errors.Is(err, errAbandoned):
			return err
		case abandon != nil && abandon():
			settle(err)
			return fmt.Errorf("%w: %v", errAbandoned, err)
		}
		p.m.retries.WithLabelValues(op).Inc()
		wait := backoff/2 + rand.N(backoff/2+1)
		var ae ambiguousError
		if errors.As(err, &ae) {
			wait = max(wait, time.Until(ae.notBefore))
		}
		if isTransient(err) {
			p.log.Warn("transient failure, retrying", "op", op, "attempt", attempt, "wait", wait, "err", err)
		} else {
			p.log.Error("unexpected failure, retrying", "op", op, "attempt", attempt, "wait", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			settle(err)
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, p.cfg.Retry.MaxBackoff)
	}
}

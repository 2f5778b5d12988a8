package sink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/factorywire/factorywire/storage/mongots"
	"github.com/factorywire/factorywire/topics"
)

// store is what the sink needs of MongoDB; *mongots.Store implements it.
type store interface {
	Ensure(ctx context.Context, spec mongots.CollectionSpec) error
	Write(ctx context.Context, coll string, docs []mongots.Doc) (mongots.WriteResult, error)
	MaxStoredOffsets(ctx context.Context, coll string, partitions []int32) (map[int32]int64, error)
	UnstoredSamples(ctx context.Context, coll string, docs []mongots.Doc) ([]mongots.Doc, error)
	LastSeqs(ctx context.Context, coll string, devs []string) (map[string]mongots.SeqMark, error)
	LoadOffsets(ctx context.Context, group, topic string) (map[int32]int64, error)
	SaveOffsets(ctx context.Context, group, topic string, next map[int32]int64) error
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
	codeUnauthorized         = 13
	codeAuthenticationFailed = 18
)

// isFatal reports whether err stops the sink instead of being retried:
// a collection of the wrong shape or an invalid collection spec, a stored
// document of an unexpected shape, an invalid argument (a bug), or
// MongoDB refusing the credentials or the operation. Every other error is
// retried: a transient one is expected, and one the sink does not know
// (logged as an error) is retried rather than stopping all partitions.
func isFatal(err error) bool {
	for _, target := range []error{mongots.ErrNotTimeSeries, mongots.ErrShape, mongots.ErrInvalidSpec,
		mongots.ErrInvalidArgument, mongots.ErrCorruptDoc} {
		if errors.Is(err, target) {
			return true
		}
	}
	var se mongo.ServerError
	return errors.As(err, &se) && (se.HasErrorCode(codeUnauthorized) || se.HasErrorCode(codeAuthenticationFailed))
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
	// written: the highest stored source offset when the partition was
	// assigned, raised by every batch attempted since.
	floor int64
	// marks holds, per device, one more than the highest seq that may
	// have been stored (0: none). A device is absent until it is read
	// from MongoDB (the newest document of the device, mongots.LastSeqs).
	marks map[string]uint64
}

// topicName is a topic's parsed name and its records-consumed counter,
// cached: process looks both up for every record.
type topicName struct {
	name     topics.Name
	err      error
	consumed prometheus.Counter
}

// pipeline turns batches of records into stored documents, dead letters
// and saved offsets: the sink without Kafka's consumer. process is called
// by one goroutine at a time; assign and revoke may be called
// concurrently with it (by the group's callbacks).
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

	names   map[string]topicName // by topic; only process uses it
	ensured map[string]bool      // collections ensured; only process uses it
}

func newPipeline(cfg Config, log *slog.Logger, m *metrics, st store) *pipeline {
	return &pipeline{
		cfg: cfg, log: log, m: m, store: st, now: time.Now,
		produce: func(context.Context, []*kgo.Record) []error { return nil },
		abandon: func() bool { return false },
		parts:   map[tp]*partState{}, names: map[string]topicName{}, ensured: map[string]bool{},
	}
}

// assign reads what MongoDB holds for newly assigned partitions of topic
// and returns where each should start: the highest of the offset saved in
// MongoDB and the one committed at the broker (-1: none). It retries
// transient failures until ctx ends.
func (p *pipeline) assign(ctx context.Context, topic string, committed map[int32]int64) (map[int32]int64, error) {
	partitions := make([]int32, 0, len(committed))
	for part := range committed {
		partitions = append(partitions, part)
	}
	slices.Sort(partitions)
	var saved, stored map[int32]int64
	err := p.retry(ctx, opLoad, nil, func(ctx context.Context) error {
		var err error
		if saved, err = p.store.LoadOffsets(ctx, p.cfg.Kafka.Group, topic); err != nil {
			return err
		}
		stored, err = p.store.MaxStoredOffsets(ctx, topic, partitions)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	start := make(map[int32]int64, len(committed))
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range partitions {
		o := committed[part] // negative: none, start at the earliest
		sv, ok := saved[part]
		if ok && sv > o {
			o = sv
		}
		if !ok {
			sv = -1
		}
		start[part] = o
		floor := int64(-1)
		if s, ok := stored[part]; ok {
			floor = s
		}
		p.parts[tp{topic, part}] = &partState{floor: floor, marks: map[string]uint64{}}
		p.log.Info("partition assigned", "topic", topic, "partition", part, "start", o,
			"committed", committed[part], "saved", sv, "highest_stored", floor)
	}
	return start, nil
}

// revoke forgets partitions this member no longer owns: another member
// may write them meanwhile, so what this one knew goes stale.
func (p *pipeline) revoke(topic string, partitions []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range partitions {
		delete(p.parts, tp{topic, part})
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

// process stores a batch: records in offset order per partition, every
// partition owned. It returns the offsets to commit, an error wrapping
// errAbandoned or ctx's error when the batch was given up (nothing saved:
// consume it again), or another error when MongoDB refused the batch for
// good (stop the sink).
func (p *pipeline) process(ctx context.Context, recs []*kgo.Record) (batchResult, error) {
	res := batchResult{next: map[string]map[int32]kgo.EpochOffset{}}
	now := p.now()
	var (
		cands []candidate
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
			p.names[r.Topic] = tn
		}
		tn.consumed.Inc()
		if res.next[r.Topic] == nil {
			res.next[r.Topic] = map[int32]kgo.EpochOffset{}
		}
		res.next[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		high[tp{r.Topic, r.Partition}] = r.Offset
		ref, refName := referenceTime(r, now)
		s, dl := classify(r, tn.name, tn.err, ref, refName, p.cfg.MaxFutureSkew)
		if dl != nil {
			dead = append(dead, dl)
			continue
		}
		cands = append(cands, candidate{rec: r, doc: mongots.Doc{Sample: s, Partition: r.Partition, Offset: r.Offset}})
	}
	if err := p.learn(ctx, cands); err != nil {
		return res, err
	}
	docs, checks := p.mark(cands, high)
	if err := p.sendDeadLetters(ctx, dead); err != nil {
		return res, err
	}
	colls := make([]string, 0, len(docs))
	for coll := range docs {
		colls = append(colls, coll)
	}
	slices.Sort(colls)
	var rejected []*deadLetter
	for _, coll := range colls {
		n, rej, err := p.writeCollection(ctx, coll, docs[coll], checks[coll], recs)
		res.stored += n
		rejected = append(rejected, rej...)
		if err != nil {
			return res, err
		}
	}
	if err := p.sendDeadLetters(ctx, rejected); err != nil {
		return res, err
	}
	for topic, parts := range res.next {
		next := make(map[int32]int64, len(parts))
		for part, eo := range parts {
			next[part] = eo.Offset
		}
		err := p.retry(ctx, opSave, p.abandon, func(ctx context.Context) error {
			return p.store.SaveOffsets(ctx, p.cfg.Kafka.Group, topic, next)
		})
		if err != nil {
			return res, fmt.Errorf("save offsets of %s: %w", topic, err)
		}
	}
	return res, nil
}

// learn makes sure the state of every partition and device of cands is
// known: a partition not assigned through assign (which does not happen
// with a group, but costs nothing to handle) gets its highest stored
// offset, a device seen for the first time its newest stored seq.
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
	floors := map[tp]int64{}
	for topic, parts := range missingParts {
		var stored map[int32]int64
		err := p.retry(ctx, opLoad, p.abandon, func(ctx context.Context) error {
			var err error
			stored, err = p.store.MaxStoredOffsets(ctx, topic, parts)
			return err
		})
		if err != nil {
			return fmt.Errorf("highest stored offsets of %s: %w", topic, err)
		}
		for _, part := range parts {
			floors[tp{topic, part}] = stored[part]
		}
	}
	marks := map[tp]map[string]uint64{}
	for k, devs := range missingDevs {
		var last map[string]mongots.SeqMark
		err := p.retry(ctx, opLoad, p.abandon, func(ctx context.Context) error {
			var err error
			last, err = p.store.LastSeqs(ctx, k.topic, devs)
			return err
		})
		if err != nil {
			return fmt.Errorf("last seqs in %s: %w", k.topic, err)
		}
		m := make(map[string]uint64, len(devs))
		for _, d := range devs {
			if l, ok := last[d]; ok {
				m[d] = seqMark(l.Seq)
			} else {
				m[d] = 0
			}
		}
		marks[k] = m
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, floor := range floors {
		if p.parts[k] == nil {
			p.parts[k] = &partState{floor: floor, marks: map[string]uint64{}}
		}
	}
	for k, m := range marks {
		st := p.parts[k]
		if st == nil {
			continue // revoked meanwhile; mark treats it as unknown
		}
		for d, v := range m {
			if _, ok := st.marks[d]; !ok {
				st.marks[d] = v
			}
		}
	}
	return nil
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
	docs := map[string][]mongots.Doc{}
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
		dead = append(dead, &deadLetter{rec: r, class: ClassWriteRejected, err: f})
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
	class := coll
	if n, ok := p.names[coll]; ok && n.err == nil {
		class = n.name.Class
	}
	cc := p.cfg.Collections.collectionFor(class)
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
		case isFatal(err):
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

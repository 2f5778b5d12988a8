package mongots

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MaxReportedRanges bounds each list of a DeviceGaps (Missing, Duplicates,
// Restarts): Gaps keeps the earliest MaxReportedRanges entries of each and
// counts the rest, so a device with a million gaps still yields a small
// answer.
const MaxReportedRanges = 1000

// gapsTieBuffer bounds the samples of one device with one ts that Gaps
// orders by seq before it compares them.
const gapsTieBuffer = 1 << 16

// SeqRange is the sequence numbers First to Last, both included.
type SeqRange struct {
	First, Last uint64
}

// Len returns how many sequence numbers r holds.
func (r SeqRange) Len() uint64 { return r.Last - r.First + 1 }

// String returns "First-Last (Len)", or "First (1)" for one number:
// "101-105 (5)".
func (r SeqRange) String() string {
	if r.First == r.Last {
		return fmt.Sprintf("%d (1)", r.First)
	}
	return fmt.Sprintf("%d-%d (%d)", r.First, r.Last, r.Len())
}

// SeqRestart is a device's seq going down while its ts goes up: seq From
// at FromTime, then seq To at Time. A gateway whose spool was wiped (a new
// disk, a deleted data directory) starts its devices at seq 0 again; the
// samples it had not forwarded are lost, and how many cannot be told.
type SeqRestart struct {
	From     uint64
	FromTime time.Time // UTC
	To       uint64
	Time     time.Time // UTC, after FromTime
}

// DeviceGaps is what Gaps found for one device in a time range.
type DeviceGaps struct {
	Device string
	// Seen counts the documents read, duplicates included.
	Seen int64
	// FirstSeq and FirstTime are those of the earliest sample (by ts, then
	// seq); LastSeq and LastTime those of the latest. Times are UTC.
	FirstSeq, LastSeq   uint64
	FirstTime, LastTime time.Time

	// Missing holds the earliest MaxReportedRanges ranges of seqs missing
	// between two samples that follow each other, ascending. MissingRanges
	// counts every range and MissingSamples every missing seq.
	Missing        []SeqRange
	MissingRanges  int64
	MissingSamples uint64

	// Duplicates holds the earliest MaxReportedRanges ranges of seqs stored
	// more than once, consecutive seqs merged, ascending.
	// DuplicateRanges counts every range, DuplicateSamples every extra copy
	// (a seq stored three times counts two).
	Duplicates       []SeqRange
	DuplicateRanges  int64
	DuplicateSamples int64

	// Restarts holds the earliest MaxReportedRanges restarts, in time
	// order; RestartCount counts them all.
	Restarts     []SeqRestart
	RestartCount int64
}

// Lossless reports whether g shows no missing seq and no restart.
// Duplicates lose nothing.
func (g DeviceGaps) Lossless() bool { return g.MissingRanges == 0 && g.RestartCount == 0 }

// Gaps checks the seq of every sample in coll with ts in [from, to), of
// device or, when device is "", of every device, and returns per device
// (sorted by device; a device without samples in the range is absent) the
// seqs missing, stored more than once, or restarted. It is the loss check
// of the stored documents: a device's seq grows by one per sample, so a
// seq absent between two stored ones is a sample lost somewhere between
// the device and MongoDB (sink query gaps prints it).
//
// It sends one command, which FerretDB runs too:
//
//	{find: coll,
//	 filter: {meta.device: device, ts: {$gte: from, $lt: to}},   // meta.device only when device is not ""
//	 projection: {_id: 0, meta.device: 1, seq: 1, ts: 1},
//	 sort: {meta.device: 1, ts: -1}}
//
// and reads its cursor batch by batch, keeping per device its counts and
// bounded lists, never the documents. The sort is the key order of the
// index {meta.device: 1, ts: -1}, so MongoDB can walk the index instead of
// sorting (on a time-series collection whether it does is its planner's
// choice: explain shows it); it walks time backwards, which changes
// nothing in the result. The comparison is done here, not in an
// aggregation, because FerretDB lacks the $group accumulators it would
// need ($min, $max, $first); FerretDB reads the whole collection for this
// find, as for any filter but _id equality.
//
// Samples are compared in (ts, seq) order, each with the next one of its
// device: seq s then s+1 is continuous; s then s+k, k > 1, misses s+1 to
// s+k-1; s then s again is a duplicate; s then a lower seq is a restart,
// not a gap. A seq missing before the first sample in the range, or after
// the last, is therefore not seen: widen the range to see it. The order
// trusts the device's ts: a gateway clock set back shows as restarts and
// gaps. Samples of one device with the same ts are ordered by seq, at
// most 65536 at a time.
//
// An empty coll, or from not before to, is ErrInvalidArgument; a stored
// document without a string meta.device, an integer seq of 0 or more and
// a date ts is ErrCorruptDoc, naming the collection and the document.
func (s *Store) Gaps(ctx context.Context, coll, device string, from, to time.Time) ([]DeviceGaps, error) {
	if err := checkCollection(coll); err != nil {
		return nil, err
	}
	if !from.Before(to) {
		return nil, fmt.Errorf("%w: time range [%s, %s) is empty: want from before to", ErrInvalidArgument,
			from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	}
	what := "every device"
	if device != "" {
		what = device
	}
	cur, err := s.db.Collection(coll).Find(ctx, gapsFilter(device, from, to), gapsFindOptions())
	if err != nil {
		return nil, fmt.Errorf("seq gaps of %s in %s: %w", what, s.namespace(coll), err)
	}
	defer func() { _ = cur.Close(ctx) }()
	var r gapsReader
	for cur.Next(ctx) {
		dev, seq, ts, err := gapsDoc(cur.Current)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorruptDoc, s.namespace(coll), err)
		}
		r.feed(dev, seq, ts)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("seq gaps of %s in %s: %w", what, s.namespace(coll), err)
	}
	return r.finish(), nil
}

// gapsReader takes the documents in Gaps's order (device ascending, ts
// descending) and hands each device's samples to a gapScan, those of one
// ts ordered by seq.
type gapsReader struct {
	out  []DeviceGaps
	scan *gapScan
	ties []uint64 // the seqs of scan's device at tieT, not yet scanned
	tieT time.Time
}

func (r *gapsReader) feed(dev string, seq uint64, ts time.Time) {
	switch {
	case r.scan == nil:
		r.scan = &gapScan{device: dev}
	case dev != r.scan.device:
		r.out = append(r.out, r.flush())
		r.scan = &gapScan{device: dev}
	case !ts.Equal(r.tieT) || len(r.ties) == gapsTieBuffer:
		r.flushTies()
	}
	r.tieT = ts
	r.ties = append(r.ties, seq)
}

// flushTies scans the seqs held: walking backwards in time, the highest
// seq of a ts comes first.
func (r *gapsReader) flushTies() {
	slices.SortFunc(r.ties, func(a, b uint64) int { return cmpUint(b, a) })
	for _, seq := range r.ties {
		r.scan.add(seq, r.tieT)
	}
	r.ties = r.ties[:0]
}

func (r *gapsReader) flush() DeviceGaps {
	r.flushTies()
	return r.scan.result()
}

// finish returns the findings of every device fed.
func (r *gapsReader) finish() []DeviceGaps {
	if r.scan != nil {
		r.out = append(r.out, r.flush())
		r.scan = nil
	}
	return r.out
}

func gapsFilter(device string, from, to time.Time) bson.D {
	var f bson.D
	if device != "" {
		f = append(f, bson.E{Key: fieldMeta + "." + metaDevice, Value: device})
	}
	return append(f, bson.E{Key: fieldTS, Value: bson.D{
		{Key: "$gte", Value: bson.NewDateTimeFromTime(from)},
		{Key: "$lt", Value: bson.NewDateTimeFromTime(to)},
	}})
}

func gapsFindOptions() *options.FindOptionsBuilder {
	return options.Find().
		SetSort(bson.D{{Key: fieldMeta + "." + metaDevice, Value: int32(1)}, {Key: fieldTS, Value: int32(-1)}}).
		SetProjection(bson.D{
			{Key: "_id", Value: int32(0)}, {Key: fieldMeta + "." + metaDevice, Value: int32(1)},
			{Key: fieldSeq, Value: int32(1)}, {Key: fieldTS, Value: int32(1)},
		})
}

// gapsDoc reads the projected document Gaps asks for.
func gapsDoc(doc bson.Raw) (string, uint64, time.Time, error) {
	dev, ok := doc.Lookup(fieldMeta, metaDevice).StringValueOK()
	if !ok {
		return "", 0, time.Time{}, fmt.Errorf("stored sample %s: meta.device is %s, want a string", doc, doc.Lookup(fieldMeta, metaDevice).Type)
	}
	seq, ok := doc.Lookup(fieldSeq).AsInt64OK()
	if !ok || seq < 0 {
		return "", 0, time.Time{}, fmt.Errorf("stored sample %s of %s: seq is %s, want an integer of 0 or more", doc, dev, doc.Lookup(fieldSeq))
	}
	ts, ok := doc.Lookup(fieldTS).TimeOK()
	if !ok {
		return "", 0, time.Time{}, fmt.Errorf("stored sample %s of %s: ts is %s, want a date", doc, dev, doc.Lookup(fieldTS).Type)
	}
	return dev, uint64(seq), ts.UTC(), nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// gapScan compares one device's samples fed latest first (ts descending,
// then seq descending), each with the one fed before it, which is the
// next one in time. Walking backwards, the earliest findings come last:
// the lists keep the last MaxReportedRanges found.
type gapScan struct {
	device   string
	g        DeviceGaps
	prevSeq  uint64
	prevTime time.Time
	missing  lastN[SeqRange]
	dups     lastN[SeqRange]
	restarts lastN[SeqRestart]
	// inDups: since the last duplicate found, every sample continued the
	// seq, so a duplicate of the seq below extends the same range.
	inDups bool
}

// add feeds the sample before (in time) the one fed last.
func (s *gapScan) add(seq uint64, ts time.Time) {
	s.g.Seen++
	s.g.FirstSeq, s.g.FirstTime = seq, ts
	if s.g.Seen == 1 {
		s.g.LastSeq, s.g.LastTime = seq, ts
		s.prevSeq, s.prevTime = seq, ts
		return
	}
	next, nextTime := s.prevSeq, s.prevTime
	s.prevSeq, s.prevTime = seq, ts
	switch {
	case next == seq+1:
	case next == seq:
		s.g.DuplicateSamples++
		last := s.dups.last()
		switch {
		case s.inDups && last.First == seq: // a third copy
		case s.inDups && last.First == seq+1: // the seq after it was duplicated too
			last.First = seq
		default:
			s.dups.push(SeqRange{seq, seq})
			s.g.DuplicateRanges++
		}
		s.inDups = true
	case next > seq:
		s.missing.push(SeqRange{seq + 1, next - 1})
		s.g.MissingRanges++
		s.g.MissingSamples += next - seq - 1
		s.inDups = false
	default: // next < seq: the seq went down as time went on
		s.restarts.push(SeqRestart{From: seq, FromTime: ts, To: next, Time: nextTime})
		s.g.RestartCount++
		s.inDups = false
	}
}

// result returns the findings in time order.
func (s *gapScan) result() DeviceGaps {
	g := s.g
	g.Device = s.device
	g.Missing = s.missing.reversed()
	g.Duplicates = s.dups.reversed()
	g.Restarts = s.restarts.reversed()
	return g
}

// lastN keeps the last MaxReportedRanges values pushed.
type lastN[T any] struct {
	buf  []T
	next int // where the next push goes once buf is full
}

func (l *lastN[T]) push(v T) {
	if len(l.buf) < MaxReportedRanges {
		l.buf = append(l.buf, v)
		return
	}
	l.buf[l.next] = v
	l.next = (l.next + 1) % len(l.buf)
}

// last returns the value pushed last, or nil.
func (l *lastN[T]) last() *T {
	if len(l.buf) == 0 {
		return nil
	}
	i := len(l.buf) - 1
	if len(l.buf) == MaxReportedRanges {
		i = (l.next + len(l.buf) - 1) % len(l.buf)
	}
	return &l.buf[i]
}

// reversed returns the values kept, the last pushed first.
func (l *lastN[T]) reversed() []T {
	n := len(l.buf)
	if n == 0 {
		return nil
	}
	out := make([]T, 0, n)
	for i := range n {
		out = append(out, l.buf[(l.next+n-1-i)%n])
	}
	return out
}

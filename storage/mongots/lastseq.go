package mongots

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// SeqMark is where a device stands in a collection: the seq and ts of its
// newest stored sample (by ts).
type SeqMark struct {
	Seq  uint64
	Time time.Time // UTC, to the millisecond
}

// lastSeqsChunk bounds the devices of one LastSeqs aggregation.
const lastSeqsChunk = 1000

// LastSeqs returns, for each device of devs that has a sample in coll, the
// seq and ts of its newest one; devices without samples are absent. Per
// 1,000 devices it runs one "last point" aggregation,
//
//	[{$match: {meta.device: {$in: [d1, d2, …]}}},
//	 {$sort: {meta.device: 1, ts: -1}},
//	 {$group: {_id: "$meta.device", seq: {$first: "$seq"}, ts: {$first: "$ts"}}}]
//
// which the index {meta.device: 1, ts: -1} serves by reading one document
// per device, whatever the history (MongoDB's last-point pattern). A
// server without $first (the FerretDB stand-in answers NotImplemented) is
// asked instead, from then on, per 1,000 devices: find {meta.device: {$in:
// [d1, d2, …]}} projecting meta.device, seq and ts, the newest kept here
// (which reads every sample of those devices: for the stand-in only).
// Read concern majority (see Options.WriteConcern).
//
// The newest sample by ts has the device's highest seq as long as the
// device's clock never went back; a sink that skips samples whose seq is
// at or below it (a gateway re-delivering what it produced before a crash)
// relies on that.
func (s *Store) LastSeqs(ctx context.Context, coll string, devs []string) (map[string]SeqMark, error) {
	if err := checkCollection(coll); err != nil {
		return nil, err
	}
	devs = slices.Clone(devs)
	slices.Sort(devs)
	devs = slices.Compact(devs)
	out := make(map[string]SeqMark, len(devs))
	c := s.collection(coll)
	for len(devs) > 0 && !s.noFirst.Load() {
		n := min(len(devs), lastSeqsChunk)
		err := s.lastPoints(ctx, c, coll, devs[:n], out)
		if hasCode(err, codeNotImplemented) {
			s.noFirst.Store(true)
			s.log.Warn("mongots: the server has no $first (the FerretDB stand-in?): reading the devices' samples to find each one's newest",
				"collection", s.namespace(coll), "err", err)
			break
		}
		if err != nil {
			return nil, err
		}
		devs = devs[n:]
	}
	for len(devs) > 0 {
		n := min(len(devs), lastSeqsChunk)
		if err := s.newestByScan(ctx, c, coll, devs[:n], out); err != nil {
			return nil, err
		}
		devs = devs[n:]
	}
	return out, nil
}

// newestByScan is LastSeqs on a server without $first (the stand-in):
// one find {meta.device: {$in: devs}} projecting meta.device, seq and ts,
// keeping each device's newest (by ts; of two at one ts, the higher
// seq, so that the mark errs high). The stand-in answers it by reading
// the collection once, where a find per device read it once per device:
// at a sink's start, a scan per device of the first batches.
func (s *Store) newestByScan(ctx context.Context, c *mongo.Collection, coll string, devs []string, out map[string]SeqMark) error {
	what := fmt.Sprintf("newest samples of %d devices", len(devs))
	cur, err := c.Find(ctx, bson.D{{Key: fieldMeta + "." + metaDevice, Value: bson.D{{Key: "$in", Value: devs}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: int32(0)}, {Key: fieldMeta + "." + metaDevice, Value: int32(1)}, {Key: fieldSeq, Value: int32(1)}, {Key: fieldTS, Value: int32(1)}}))
	if err != nil {
		return s.commandError(coll, "find", what, err)
	}
	defer func() { _ = cur.Close(ctx) }()
	for cur.Next(ctx) {
		dev, ok := cur.Current.Lookup(fieldMeta, metaDevice).StringValueOK()
		m, err := seqMark(cur.Current)
		if !ok || err != nil {
			return fmt.Errorf("%w: %s: sample %s: want a device, seq and ts", ErrCorruptDoc, s.namespace(coll), cur.Current)
		}
		if old, seen := out[dev]; !seen || m.Time.After(old.Time) || (m.Time.Equal(old.Time) && m.Seq > old.Seq) {
			out[dev] = m
		}
	}
	if err := cur.Err(); err != nil {
		return s.commandError(coll, "find", what, err)
	}
	return nil
}

// lastPointPipeline is LastSeqs' aggregation for devs.
func lastPointPipeline(devs []string) mongo.Pipeline {
	return mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: fieldMeta + "." + metaDevice, Value: bson.D{{Key: "$in", Value: devs}}}}}},
		{{Key: "$sort", Value: bson.D{{Key: fieldMeta + "." + metaDevice, Value: int32(1)}, {Key: fieldTS, Value: int32(-1)}}}},
		{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: "$" + fieldMeta + "." + metaDevice},
			{Key: fieldSeq, Value: bson.D{{Key: "$first", Value: "$" + fieldSeq}}},
			{Key: fieldTS, Value: bson.D{{Key: "$first", Value: "$" + fieldTS}}},
		}}},
	}
}

// lastPoints runs one aggregation of LastSeqs and adds its answers to out.
func (s *Store) lastPoints(ctx context.Context, c *mongo.Collection, coll string, devs []string, out map[string]SeqMark) error {
	cur, err := c.Aggregate(ctx, lastPointPipeline(devs))
	if err != nil {
		if hasCode(err, codeNotImplemented) {
			return err
		}
		return s.commandError(coll, "aggregate", fmt.Sprintf("newest samples of %d devices", len(devs)), err)
	}
	defer func() { _ = cur.Close(ctx) }()
	for cur.Next(ctx) {
		dev, ok := cur.Current.Lookup("_id").StringValueOK()
		m, err := seqMark(cur.Current)
		if !ok || err != nil {
			return fmt.Errorf("%w: %s: newest sample %s: want a device, seq and ts", ErrCorruptDoc, s.namespace(coll), cur.Current)
		}
		out[dev] = m
	}
	if err := cur.Err(); err != nil {
		return s.commandError(coll, "aggregate", fmt.Sprintf("newest samples of %d devices", len(devs)), err)
	}
	return nil
}

func seqMark(raw bson.Raw) (SeqMark, error) {
	seq, ok := raw.Lookup(fieldSeq).AsInt64OK()
	if !ok || seq < 0 {
		return SeqMark{}, fmt.Errorf("seq is %s, want an integer of 0 or more", raw.Lookup(fieldSeq))
	}
	ts, ok := raw.Lookup(fieldTS).TimeOK()
	if !ok {
		return SeqMark{}, fmt.Errorf("ts is %s, want a date", raw.Lookup(fieldTS).Type)
	}
	return SeqMark{Seq: uint64(seq), Time: ts.UTC()}, nil
}

// unstoredOrClauses bounds the devices one query of UnstoredSamples asks
// about.
const unstoredOrClauses = 50

// UnstoredSamples returns the documents of docs whose sample coll does not
// hold yet, in their order: those for which no stored document has the
// same device, seq and ts. A sample delivered twice (a gateway producing
// again, at new offsets, what it produced before a crash) or a record
// replayed after a crash has the same three, whatever its offset.
//
// It runs find {$or: [{meta.device: d, ts: {$gte: earliest, $lte: latest}}, …]}
// projecting meta.device, seq and ts, one clause per device of docs (at
// most 50 per query), each served by the index {meta.device: 1, ts: -1}: it
// reads the devices' documents in the batch's time span, no more.
func (s *Store) UnstoredSamples(ctx context.Context, coll string, docs []Doc) ([]Doc, error) {
	if err := checkCollection(coll); err != nil {
		return nil, err
	}
	type span struct{ lo, hi time.Time }
	spans := map[string]span{}
	for _, d := range docs {
		t := d.Sample.Time
		sp, ok := spans[d.Sample.Device]
		if !ok {
			sp = span{t, t}
		}
		if t.Before(sp.lo) {
			sp.lo = t
		}
		if t.After(sp.hi) {
			sp.hi = t
		}
		spans[d.Sample.Device] = sp
	}
	devs := make([]string, 0, len(spans))
	for d := range spans {
		devs = append(devs, d)
	}
	slices.Sort(devs)

	type key struct {
		device string
		seq    uint64
		ms     int64
	}
	stored := map[key]bool{}
	c := s.collection(coll)
	opts := options.Find().SetProjection(bson.D{
		{Key: "_id", Value: int32(0)}, {Key: fieldMeta + "." + metaDevice, Value: int32(1)},
		{Key: fieldSeq, Value: int32(1)}, {Key: fieldTS, Value: int32(1)},
	})
	for len(devs) > 0 {
		n := min(len(devs), unstoredOrClauses)
		clauses := make(bson.A, 0, n)
		for _, d := range devs[:n] {
			sp := spans[d]
			clauses = append(clauses, bson.D{
				{Key: fieldMeta + "." + metaDevice, Value: d},
				{Key: fieldTS, Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(sp.lo)}, {Key: "$lte", Value: bson.NewDateTimeFromTime(sp.hi)}}},
			})
		}
		devs = devs[n:]
		cur, err := c.Find(ctx, bson.D{{Key: "$or", Value: clauses}}, opts)
		if err != nil {
			return nil, s.commandError(coll, "find", "stored samples", err)
		}
		for cur.Next(ctx) {
			dev, ok := cur.Current.Lookup(fieldMeta, metaDevice).StringValueOK()
			m, err := seqMark(cur.Current)
			if !ok || err != nil {
				_ = cur.Close(ctx)
				return nil, fmt.Errorf("%w: %s: stored sample %s: want meta.device, seq and ts", ErrCorruptDoc, s.namespace(coll), cur.Current)
			}
			stored[key{dev, m.Seq, m.Time.UnixMilli()}] = true
		}
		err = cur.Err()
		_ = cur.Close(ctx)
		if err != nil {
			return nil, s.commandError(coll, "find", "stored samples", err)
		}
	}
	out := make([]Doc, 0, len(docs))
	for _, d := range docs {
		if !stored[key{d.Sample.Device, d.Sample.Seq, d.Sample.Time.UnixMilli()}] {
			out = append(out, d)
		}
	}
	return out, nil
}

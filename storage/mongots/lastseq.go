package mongots

import (
	"context"
	"errors"
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

// LastSeqs returns, for each device of devs that has a sample in coll, the
// seq and ts of its newest one; devices without samples are absent. Per
// device it runs find {meta.device: d} sort {ts: -1} limit 1 projecting seq
// and ts, served by the index {meta.device: 1, ts: -1}.
//
// The newest sample by ts has the device's highest seq as long as the
// device's clock never went back; a sink that skips samples whose seq is
// at or below it (a gateway re-delivering what it produced before a crash)
// relies on that.
func (s *Store) LastSeqs(ctx context.Context, coll string, devs []string) (map[string]SeqMark, error) {
	if err := checkCollection(coll); err != nil {
		return nil, err
	}
	c := s.db.Collection(coll)
	out := make(map[string]SeqMark, len(devs))
	opts := options.FindOne().
		SetSort(bson.D{{Key: fieldTS, Value: int32(-1)}}).
		SetProjection(bson.D{{Key: "_id", Value: int32(0)}, {Key: fieldSeq, Value: int32(1)}, {Key: fieldTS, Value: int32(1)}})
	for _, d := range devs {
		if _, done := out[d]; done {
			continue
		}
		raw, err := c.FindOne(ctx, bson.D{{Key: fieldMeta + "." + metaDevice, Value: d}}, opts).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("newest sample of %s in %s: %w", d, s.namespace(coll), err)
		}
		m, err := seqMark(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: newest sample of %s: %v", ErrCorruptDoc, s.namespace(coll), d, err)
		}
		out[d] = m
	}
	return out, nil
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
	c := s.db.Collection(coll)
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
			return nil, fmt.Errorf("stored samples in %s: %w", s.namespace(coll), err)
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
			return nil, fmt.Errorf("stored samples in %s: %w", s.namespace(coll), err)
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

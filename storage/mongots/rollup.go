package mongots

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/factorywire/factorywire/devices"
)

// Period is the span of a rollup's bins.
type Period struct {
	Name string        // the collection suffix: "1m" or "1h"
	D    time.Duration // the bin's length
}

// The rollup periods.
var (
	PeriodMinute = Period{Name: "1m", D: time.Minute}
	PeriodHour   = Period{Name: "1h", D: time.Hour}
	Periods      = []Period{PeriodMinute, PeriodHour}
)

// RollupCollection returns the regular collection holding topic's
// rollups of period p: "<topic>_1m", "<topic>_1h". A topic has no '_', so
// it never collides with a topic's collection.
func RollupCollection(topic string, p Period) string { return topic + "_" + p.Name }

// Index names of a rollup collection.
const (
	IndexRollupDeviceTime = "meta.device_1_t_1"
	IndexRollupTTL        = "t_1"
)

// FieldStats aggregates one numeric field's values in one bin: the
// samples that had a value for it, their minimum, maximum and sum, and
// the first and last value by time. Integers are held as float64 (exact
// up to 2^53).
type FieldStats struct {
	Count       int64
	Min, Max    float64
	Sum         float64
	First, Last float64
}

// Mean is Sum / Count.
func (f FieldStats) Mean() float64 { return f.Sum / float64(f.Count) }

// RollupKey names a rollup document: a device and its bin's start.
type RollupKey struct {
	Device string
	Start  time.Time
}

// Rollup is one device's aggregates over one bin of one period:
//
//	{_id: "press-07@2026-12-06T10:05:00Z",
//	 meta: {factory: "plant-a", class: "press", device: "press-07"},
//	 t: ISODate("2026-12-06T10:05:00Z"),                   // the bin's start
//	 n: NumberLong(12),                                     // samples folded in
//	 first_ts: ISODate("…"), last_ts: ISODate("…"), last_seq: NumberLong(…),
//	 fields: {pressure: {n: NumberLong(12), min: 11.5, max: 12.9, sum: 147.1, first: 12.0, last: 12.2}, …},
//	 rev: NumberLong(3), updated_at: ISODate("…")}
//
// Only numeric values (integers and finite floats) enter fields; bools and
// strings do not.
type Rollup struct {
	Topic                  string
	Period                 Period
	Factory, Class, Device string
	Start                  time.Time
	Count                  int64
	FirstTS, LastTS        time.Time
	LastSeq                uint64
	Fields                 map[string]FieldStats
	// Rev counts the times the document was written; SaveRollups writes
	// only over the revision it read (0: no document yet).
	Rev int64
}

// Key returns r's device and bin start.
func (r *Rollup) Key() RollupKey { return RollupKey{r.Device, r.Start} }

func rollupID(device string, start time.Time) string {
	return device + "@" + start.UTC().Format(time.RFC3339)
}

// Clone returns a copy of r that Fold can change without changing r.
func (r *Rollup) Clone() *Rollup {
	c := *r
	c.Fields = maps.Clone(r.Fields)
	return &c
}

// NewRollup returns the empty rollup of s's bin of period p in topic.
func NewRollup(topic string, p Period, s *devices.Sample) *Rollup {
	return &Rollup{Topic: topic, Period: p, Factory: s.Factory, Class: s.Class, Device: s.Device,
		Start: s.Time.UTC().Truncate(p.D), Fields: map[string]FieldStats{}}
}

// Fold adds s to r and reports whether it did. It does not when s is not
// after the last sample folded in, by (ts, seq): a sample delivered or
// consumed again is folded once. A device whose seq started again (new,
// later timestamps) is folded. s must lie in r's bin.
func (r *Rollup) Fold(s *devices.Sample) bool {
	if s.Device != r.Device || !s.Time.UTC().Truncate(r.Period.D).Equal(r.Start) {
		return false
	}
	if r.Count > 0 && (s.Time.Before(r.LastTS) || s.Time.Equal(r.LastTS) && s.Seq <= r.LastSeq) {
		return false
	}
	if r.Count == 0 {
		r.FirstTS = s.Time
	}
	r.Count++
	r.LastTS, r.LastSeq = s.Time, s.Seq
	for name, v := range s.Fields {
		x, ok := numeric(v)
		if !ok {
			continue
		}
		f, seen := r.Fields[name]
		if !seen {
			f = FieldStats{Min: x, Max: x, First: x}
		}
		f.Count++
		f.Min, f.Max = min(f.Min, x), max(f.Max, x)
		f.Sum += x
		f.Last = x
		r.Fields[name] = f
	}
	return true
}

// numeric returns v as a float64 when it is a number Window would count.
func numeric(v devices.Value) (float64, bool) {
	switch v.Kind() {
	case devices.KindInt64:
		return float64(v.Int64()), true
	case devices.KindUint64:
		return float64(v.Uint64()), true
	case devices.KindFloat64:
		f := v.Float64()
		return f, !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

func (r *Rollup) document(rev int64, now time.Time) bson.D {
	names := slices.Sorted(maps.Keys(r.Fields))
	fields := make(bson.D, 0, len(names))
	for _, name := range names {
		f := r.Fields[name]
		fields = append(fields, bson.E{Key: name, Value: bson.D{
			{Key: "n", Value: f.Count}, {Key: "min", Value: f.Min}, {Key: "max", Value: f.Max},
			{Key: "sum", Value: f.Sum}, {Key: "first", Value: f.First}, {Key: "last", Value: f.Last},
		}})
	}
	return bson.D{
		{Key: "_id", Value: rollupID(r.Device, r.Start)},
		{Key: fieldMeta, Value: bson.D{{Key: metaFactory, Value: r.Factory}, {Key: metaClass, Value: r.Class}, {Key: metaDevice, Value: r.Device}}},
		{Key: "t", Value: bson.NewDateTimeFromTime(r.Start)},
		{Key: "n", Value: r.Count},
		{Key: "first_ts", Value: bson.NewDateTimeFromTime(r.FirstTS)},
		{Key: "last_ts", Value: bson.NewDateTimeFromTime(r.LastTS)},
		{Key: "last_seq", Value: int64(r.LastSeq)},
		{Key: fieldFields, Value: fields},
		{Key: "rev", Value: rev},
		{Key: "updated_at", Value: bson.NewDateTimeFromTime(now)},
	}
}

func decodeRollup(topic string, p Period, raw bson.Raw) (*Rollup, error) {
	r := &Rollup{Topic: topic, Period: p, Fields: map[string]FieldStats{}}
	var ok bool
	for _, m := range []struct {
		key string
		dst *string
	}{{metaFactory, &r.Factory}, {metaClass, &r.Class}, {metaDevice, &r.Device}} {
		if *m.dst, ok = raw.Lookup(fieldMeta, m.key).StringValueOK(); !ok {
			return nil, fmt.Errorf("rollup %s: meta.%s is not a string", raw.Lookup("_id"), m.key)
		}
	}
	times := []struct {
		key string
		dst *time.Time
	}{{"t", &r.Start}, {"first_ts", &r.FirstTS}, {"last_ts", &r.LastTS}}
	for _, m := range times {
		t, ok := raw.Lookup(m.key).TimeOK()
		if !ok {
			return nil, fmt.Errorf("rollup %s: %s is not a date", raw.Lookup("_id"), m.key)
		}
		*m.dst = t.UTC()
	}
	n, ok1 := raw.Lookup("n").AsInt64OK()
	seq, ok2 := raw.Lookup("last_seq").AsInt64OK()
	rev, ok3 := raw.Lookup("rev").AsInt64OK()
	if !ok1 || !ok2 || !ok3 || n < 0 || seq < 0 || rev < 1 {
		return nil, fmt.Errorf("rollup %s: n, last_seq and rev must be integers (rev 1 or more)", raw.Lookup("_id"))
	}
	r.Count, r.LastSeq, r.Rev = n, uint64(seq), rev
	if fv, err := raw.LookupErr(fieldFields); err == nil {
		elems, err := fv.Document().Elements()
		if err != nil {
			return nil, fmt.Errorf("rollup %s: fields: %v", raw.Lookup("_id"), err)
		}
		for _, e := range elems {
			d, ok := e.Value().DocumentOK()
			if !ok {
				return nil, fmt.Errorf("rollup %s: fields.%s is not a document", raw.Lookup("_id"), e.Key())
			}
			var f FieldStats
			var okc bool
			if f.Count, okc = d.Lookup("n").AsInt64OK(); !okc {
				return nil, fmt.Errorf("rollup %s: fields.%s.n is not an integer", raw.Lookup("_id"), e.Key())
			}
			for _, m := range []struct {
				key string
				dst *float64
			}{{"min", &f.Min}, {"max", &f.Max}, {"sum", &f.Sum}, {"first", &f.First}, {"last", &f.Last}} {
				if *m.dst, okc = d.Lookup(m.key).AsFloat64OK(); !okc {
					return nil, fmt.Errorf("rollup %s: fields.%s.%s is not a number", raw.Lookup("_id"), e.Key(), m.key)
				}
			}
			r.Fields[e.Key()] = f
		}
	}
	return r, nil
}

// EnsureRollups prepares the rollup collection of topic and period p:
// the index {meta.device: 1, t: 1} (meta.device_1_t_1), which serves
// RollupWindow, and, with a TTL, the TTL index {t: 1} with
// expireAfterSeconds (t_1): MongoDB deletes a bin once its start is older
// than expireAfter. A TTL index that exists with another expireAfter is
// changed with {collMod: coll, index: {name: "t_1", expireAfterSeconds}}
// (logged); a TTL of 0 drops it. In the stand-in mode no TTL index is
// made (FerretDB has none) and nothing expires. With Options.Shard the
// collection is sharded on {_id: "hashed"} (see the package documentation,
// Sharding).
func (s *Store) EnsureRollups(ctx context.Context, topic string, p Period, expireAfter time.Duration) error {
	coll := RollupCollection(topic, p)
	if err := checkCollection(topic); err != nil {
		return err
	}
	if expireAfter < 0 || expireAfter%time.Second != 0 {
		return fmt.Errorf("%w: rollups %s: expire after %v: want 0 or whole seconds", ErrInvalidSpec, coll, expireAfter)
	}
	iv := s.db.Collection(coll).Indexes()
	model := mongo.IndexModel{
		Keys:    bson.D{{Key: fieldMeta + "." + metaDevice, Value: int32(1)}, {Key: "t", Value: int32(1)}},
		Options: options.Index().SetName(IndexRollupDeviceTime),
	}
	if _, err := iv.CreateOne(ctx, model); err != nil {
		return s.commandError(coll, "createIndexes", "create the index "+IndexRollupDeviceTime, err)
	}
	if !s.opts.TimeSeries {
		return s.ensureShardedByID(ctx, coll)
	}
	specs, err := iv.ListSpecifications(ctx)
	if err != nil {
		return s.commandError(coll, "listIndexes", "list the indexes", err)
	}
	want := int32(expireAfter / time.Second)
	for _, sp := range specs {
		if sp.Name != IndexRollupTTL {
			continue
		}
		switch {
		case want == 0:
			if err := iv.DropOne(ctx, IndexRollupTTL); err != nil {
				return s.commandError(coll, "dropIndexes", "drop the TTL index "+IndexRollupTTL, err)
			}
			s.log.Info("mongots: rollups kept forever: dropped their TTL index", "collection", s.namespace(coll))
		case sp.ExpireAfterSeconds == nil || *sp.ExpireAfterSeconds != want:
			cmd := bson.D{{Key: "collMod", Value: coll}, {Key: "index", Value: bson.D{{Key: "name", Value: IndexRollupTTL}, {Key: "expireAfterSeconds", Value: int64(want)}}}}
			if err := s.db.RunCommand(ctx, cmd).Err(); err != nil {
				return s.commandError(coll, "collMod", "change the rollups' TTL", err)
			}
			s.log.Info("mongots: changed the rollups' TTL to the configured value", "collection", s.namespace(coll), "to", expireAfter)
		}
		return s.ensureShardedByID(ctx, coll)
	}
	if want > 0 {
		ttl := mongo.IndexModel{Keys: bson.D{{Key: "t", Value: int32(1)}}, Options: options.Index().SetName(IndexRollupTTL).SetExpireAfterSeconds(want)}
		if _, err := iv.CreateOne(ctx, ttl); err != nil {
			return s.commandError(coll, "createIndexes", "create the TTL index "+IndexRollupTTL, err)
		}
	}
	return s.ensureShardedByID(ctx, coll)
}

// LoadRollups returns the stored rollups of keys in topic's collection of
// period p; keys without a document are absent. Per 1,000 keys it runs
// find {_id: {$in: ["<device>@<start>", …]}}, served by the _id index.
// Read concern majority (see Options.WriteConcern).
func (s *Store) LoadRollups(ctx context.Context, topic string, p Period, keys []RollupKey) (map[RollupKey]*Rollup, error) {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = rollupID(k.Device, k.Start)
	}
	out := make(map[RollupKey]*Rollup, len(keys))
	err := s.findByID(ctx, RollupCollection(topic, p), "load rollups", ids, func(raw bson.Raw) error {
		r, err := decodeRollup(topic, p, raw)
		if err == nil {
			out[r.Key()] = r
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SaveRollups writes rs, all of topic and period p, each over the
// revision it was read at: one unordered bulk write of
//
//	{q: {_id: "<device>@<start>", rev: r.Rev}, u: <the document, rev: r.Rev+1>, upsert: true}
//
// (a replacement), or, for a rollup read as absent (Rev 0), an insert of
// the document with rev 1: the same answer when a document was written
// meanwhile (a duplicate key), and cheaper on the FerretDB stand-in,
// whose upserts look the document up first. A document whose revision changed since it was read
// (another writer: a sink evicted from the group still finishing its
// batch) does not match, the upsert's insert fails with a duplicate key,
// and its key is returned in conflicts, unwritten: reload it and fold
// again. The others are written and their Rev raised. In the stand-in
// mode the revisions are read first, one find by _id per rollup, and the
// replacements sent with the filter {_id} alone (see
// standInStatusUpdates for why, and what it costs). Write concern: Options.WriteConcern.
func (s *Store) SaveRollups(ctx context.Context, topic string, p Period, rs []*Rollup) (conflicts []RollupKey, err error) {
	coll := RollupCollection(topic, p)
	now := time.Now().UTC()
	var inserts, replaces []*Rollup
	for _, r := range rs {
		if r.Rev == 0 {
			inserts = append(inserts, r)
		} else {
			replaces = append(replaces, r)
		}
	}
	insert := func(r *Rollup) mongo.WriteModel {
		// A new document: an insert, which a document written meanwhile
		// refuses with the same duplicate key.
		return mongo.NewInsertOneModel().SetDocument(r.document(r.Rev+1, now))
	}
	replace := func(filter bson.D) func(r *Rollup) mongo.WriteModel {
		return func(r *Rollup) mongo.WriteModel {
			f := append(bson.D{{Key: "_id", Value: rollupID(r.Device, r.Start)}}, filter...)
			return mongo.NewReplaceOneModel().SetFilter(f).SetReplacement(r.document(r.Rev+1, now)).SetUpsert(true)
		}
	}
	type send struct {
		rs    []*Rollup
		model func(*Rollup) mongo.WriteModel
	}
	sends := []send{{inserts, insert}}
	switch {
	case s.opts.TimeSeries:
		sends = append(sends, send{replaces, func(r *Rollup) mongo.WriteModel { return replace(bson.D{{Key: "rev", Value: r.Rev}})(r) }})
	case len(replaces) > 0:
		// The stand-in reads its whole collection for any filter but
		// {_id}: the revisions are read first, one find by _id per
		// rollup (the collection grows with every period kept), and
		// the rollups still at theirs are replaced by _id alone. A
		// missing document is inserted, as the upsert would; one at
		// another revision is a conflict.
		ids := make([]string, len(replaces))
		for i, r := range replaces {
			ids[i] = rollupID(r.Device, r.Start)
		}
		stored, err := s.storedValuesByID(ctx, coll, "read rollup revisions", ids, "rev")
		if err != nil {
			return nil, err
		}
		var missing, current []*Rollup
		for i, r := range replaces {
			v, ok := stored[ids[i]]
			switch rev, isInt := v.AsInt64OK(); {
			case !ok:
				missing = append(missing, r)
			case isInt && rev == r.Rev:
				current = append(current, r)
			default:
				conflicts = append(conflicts, r.Key())
			}
		}
		sends = append(sends, send{missing, insert}, send{current, replace(nil)})
	}
	for _, sd := range sends {
		models := make([]mongo.WriteModel, len(sd.rs))
		for i, r := range sd.rs {
			models[i] = sd.model(r)
		}
		dups, err := s.bulkDuplicates(ctx, coll, models)
		if err != nil {
			return conflicts, s.commandError(coll, "update", "save rollups", err)
		}
		refused := map[int]bool{}
		for _, i := range dups {
			refused[i] = true
			conflicts = append(conflicts, sd.rs[i].Key())
		}
		for i, r := range sd.rs {
			if !refused[i] {
				r.Rev++
			}
		}
	}
	return conflicts, nil
}

// RollupWindow is Window over the rollups of period p instead of the
// samples: the minimum, average, maximum and count of field's numeric
// values for device, in bins of binSize units (second, minute, hour or
// day; the bin must be a whole multiple of p), aligned as Window aligns
// them (from 2000-01-01T00:00:00Z, UTC). from is rounded down and to up
// to whole periods, since a rollup holds whole periods. It runs
//
//	find {meta.device: device, t: {$gte: from, $lt: to}, fields.<field>: {$exists: true}}
//	     projection {_id: 0, t: 1, fields.<field>: 1} sort {meta.device: 1, t: 1}
//
// served by the index {meta.device: 1, t: 1}, and combines the periods
// into bins itself, so that it runs on the FerretDB stand-in too. It reads
// one document per period in the range.
func (s *Store) RollupWindow(ctx context.Context, topic string, p Period, device, field string, from, to time.Time, unit string, binSize int) ([]Bucket, error) {
	coll := RollupCollection(topic, p)
	if err := checkCollection(topic); err != nil {
		return nil, err
	}
	if err := checkFieldName(field); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	bin, err := binLength(unit, binSize)
	if err != nil {
		return nil, err
	}
	if bin%p.D != 0 {
		return nil, fmt.Errorf("%w: a bin of %d %s is not a whole multiple of the rollup period %s", ErrInvalidArgument, binSize, unit, p.D)
	}
	from, to = from.UTC().Truncate(p.D), to.UTC().Add(p.D-1).Truncate(p.D)
	if err := checkRange(device, from, to); err != nil {
		return nil, err
	}
	filter := bson.D{
		{Key: fieldMeta + "." + metaDevice, Value: device},
		{Key: "t", Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(from)}, {Key: "$lt", Value: bson.NewDateTimeFromTime(to)}}},
		{Key: fieldFields + "." + field, Value: bson.D{{Key: "$exists", Value: true}}},
	}
	opts := options.Find().
		SetProjection(bson.D{{Key: "_id", Value: int32(0)}, {Key: "t", Value: int32(1)}, {Key: fieldFields + "." + field, Value: int32(1)}}).
		SetSort(bson.D{{Key: fieldMeta + "." + metaDevice, Value: int32(1)}, {Key: "t", Value: int32(1)}})
	cur, err := s.db.Collection(coll).Find(ctx, filter, opts)
	if err != nil {
		return nil, s.commandError(coll, "find", fmt.Sprintf("window of %s.%s", device, field), err)
	}
	defer func() { _ = cur.Close(ctx) }()
	bins := binner{bin: bin}
	for cur.Next(ctx) {
		t, ok := cur.Current.Lookup("t").TimeOK()
		d, ok2 := cur.Current.Lookup(fieldFields, field).DocumentOK()
		if !ok || !ok2 {
			return nil, fmt.Errorf("%w: %s: rollup %s: want t and fields.%s", ErrCorruptDoc, s.namespace(coll), cur.Current, field)
		}
		n, _ := d.Lookup("n").AsInt64OK()
		lo, _ := d.Lookup("min").AsFloat64OK()
		hi, _ := d.Lookup("max").AsFloat64OK()
		sm, _ := d.Lookup("sum").AsFloat64OK()
		bins.add(t, n, lo, hi, sm)
	}
	if err := cur.Err(); err != nil {
		return nil, s.commandError(coll, "find", fmt.Sprintf("window of %s.%s", device, field), err)
	}
	return bins.buckets(), nil
}

// binner combines statistics given in time order (a period's rollup, or
// one value: n 1 and min = max = sum) into Window's buckets of length
// bin, aligned as $dateTrunc aligns them.
type binner struct {
	bin time.Duration
	out []Bucket
	sum float64 // of the last bucket's values
}

// add adds n values with minimum lo, maximum hi and sum sum at t; n 0 or
// less adds nothing.
func (b *binner) add(t time.Time, n int64, lo, hi, sum float64) {
	if n <= 0 {
		return
	}
	t = t.UTC()
	start := windowEpoch.Add(t.Sub(windowEpoch) / b.bin * b.bin)
	if t.Before(windowEpoch) {
		start = windowEpoch.Add(-((windowEpoch.Sub(t) + b.bin - 1) / b.bin * b.bin))
	}
	if len(b.out) == 0 || !b.out[len(b.out)-1].Start.Equal(start) {
		b.finishLast()
		b.out = append(b.out, Bucket{Start: start, Min: lo, Max: hi})
		b.sum = 0
	}
	last := &b.out[len(b.out)-1]
	last.Min, last.Max = min(last.Min, lo), max(last.Max, hi)
	last.Count += n
	b.sum += sum
}

func (b *binner) finishLast() {
	if len(b.out) > 0 {
		b.out[len(b.out)-1].Avg = b.sum / float64(b.out[len(b.out)-1].Count)
	}
}

// buckets returns the buckets, in time order.
func (b *binner) buckets() []Bucket {
	b.finishLast()
	return b.out
}

// windowEpoch is where $dateTrunc counts bins from.
var windowEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// binLength returns binSize units as a duration.
func binLength(unit string, binSize int) (time.Duration, error) {
	if binSize < 1 {
		return 0, fmt.Errorf("%w: bin size %d: want 1 or more", ErrInvalidArgument, binSize)
	}
	per := map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[unit]
	if per == 0 {
		return 0, fmt.Errorf("%w: unit %q: want %s", ErrInvalidArgument, unit, strings.Join(windowUnits, ", "))
	}
	return time.Duration(binSize) * per, nil
}

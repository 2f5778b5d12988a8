package mongots

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/factorywire/factorywire/devices"
)

// Latest returns the latest sample of each device in coll, sorted by
// device; devicesFilter, if not nil, limits it to those devices (an empty
// one returns nothing). It runs the aggregation
//
//	[{$match: {meta.device: {$in: devicesFilter}}}]   (only with a filter)
//	{$sort: {meta.device: 1, ts: -1}}
//	{$group: {_id: "$meta.device", doc: {$first: "$$ROOT"}}}
//	{$replaceRoot: {newRoot: "$doc"}}
//	{$sort: {meta.device: 1}}
//
// whose sort and $first are served by the index {meta.device: 1, ts: -1}
// (MongoDB's "last point" pattern for time-series collections).
func (s *Store) Latest(ctx context.Context, coll string, devicesFilter []string) ([]devices.Sample, error) {
	if err := checkCollection(coll); err != nil {
		return nil, err
	}
	if devicesFilter != nil && len(devicesFilter) == 0 {
		return nil, nil
	}
	cur, err := s.db.Collection(coll).Aggregate(ctx, latestPipeline(devicesFilter))
	if err != nil {
		return nil, fmt.Errorf("latest samples in %s: %w", s.namespace(coll), err)
	}
	out, err := decodeSamples(ctx, cur)
	if err != nil {
		return nil, fmt.Errorf("latest samples in %s: %w", s.namespace(coll), err)
	}
	return out, nil
}

func latestPipeline(devicesFilter []string) mongo.Pipeline {
	var p mongo.Pipeline
	if devicesFilter != nil {
		list := slices.Clone(devicesFilter)
		slices.Sort(list)
		list = slices.Compact(list)
		p = append(p, bson.D{{Key: "$match", Value: bson.D{{Key: "meta.device", Value: bson.D{{Key: "$in", Value: list}}}}}})
	}
	return append(p,
		bson.D{{Key: "$sort", Value: bson.D{{Key: "meta.device", Value: int32(1)}, {Key: fieldTS, Value: int32(-1)}}}},
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$meta.device"}, {Key: "doc", Value: bson.D{{Key: "$first", Value: "$$ROOT"}}}}}},
		bson.D{{Key: "$replaceRoot", Value: bson.D{{Key: "newRoot", Value: "$doc"}}}},
		bson.D{{Key: "$sort", Value: bson.D{{Key: "meta.device", Value: int32(1)}}}},
	)
}

// The units Window accepts, as $dateTrunc names them.
var windowUnits = []string{"second", "minute", "hour", "day"}

// Bucket is one time bucket of Window: the statistics of one field's
// numeric values with ts in [Start, Start + binSize units).
type Bucket struct {
	Start         time.Time // the bucket's start, UTC
	Min, Avg, Max float64
	Count         int64 // the numeric values in the bucket
}

// Window returns the minimum, average, maximum and count of the numeric
// values of field for device in coll with ts in [from, to), in buckets of
// binSize units (unit second, minute, hour or day), sorted by start; a
// bucket without values is absent. Buckets are aligned as $dateTrunc
// aligns them: in UTC, counted from 2000-01-01T00:00:00Z, so binSize 1 is
// plain truncation. Values that are not numbers (bools, strings) are
// ignored; integers count as numbers. It runs the aggregation
//
//	{$match: {meta.device: device, ts: {$gte: from, $lt: to}, fields.<field>: {$type: "number"}}}
//	{$group: {_id: {$dateTrunc: {date: "$ts", unit: unit, binSize: binSize}},
//	          min: {$min: "$fields.<field>"}, avg: {$avg: …}, max: {$max: …}, count: {$count: {}}}}
//	{$sort: {_id: 1}}
//
// whose $match is served by the index {meta.device: 1, ts: -1}.
func (s *Store) Window(ctx context.Context, coll, device, field string, from, to time.Time, unit string, binSize int) ([]Bucket, error) {
	if err := checkCollection(coll); err != nil {
		return nil, err
	}
	if err := checkFieldName(field); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	if !slices.Contains(windowUnits, unit) {
		return nil, fmt.Errorf("%w: unit %q: want %s", ErrInvalidArgument, unit, strings.Join(windowUnits, ", "))
	}
	if binSize < 1 {
		return nil, fmt.Errorf("%w: bin size %d: want 1 or more", ErrInvalidArgument, binSize)
	}
	if err := checkRange(device, from, to); err != nil {
		return nil, err
	}
	cur, err := s.db.Collection(coll).Aggregate(ctx, windowPipeline(device, field, from, to, unit, binSize))
	if err != nil {
		return nil, fmt.Errorf("window of %s.%s in %s: %w", device, field, s.namespace(coll), err)
	}
	defer func() { _ = cur.Close(ctx) }()
	var out []Bucket
	for cur.Next(ctx) {
		b, err := decodeBucket(cur.Current)
		if err != nil {
			return nil, fmt.Errorf("window of %s.%s in %s: %w", device, field, s.namespace(coll), err)
		}
		out = append(out, b)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("window of %s.%s in %s: %w", device, field, s.namespace(coll), err)
	}
	return out, nil
}

func windowPipeline(device, field string, from, to time.Time, unit string, binSize int) mongo.Pipeline {
	path := fieldFields + "." + field
	ref := "$" + path
	return mongo.Pipeline{
		bson.D{{Key: "$match", Value: bson.D{
			{Key: "meta.device", Value: device},
			{Key: fieldTS, Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(from)}, {Key: "$lt", Value: bson.NewDateTimeFromTime(to)}}},
			{Key: path, Value: bson.D{{Key: "$type", Value: "number"}}},
		}}},
		bson.D{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: bson.D{{Key: "$dateTrunc", Value: bson.D{
				{Key: "date", Value: "$" + fieldTS},
				{Key: "unit", Value: unit},
				{Key: "binSize", Value: int32(binSize)},
			}}}},
			{Key: "min", Value: bson.D{{Key: "$min", Value: ref}}},
			{Key: "avg", Value: bson.D{{Key: "$avg", Value: ref}}},
			{Key: "max", Value: bson.D{{Key: "$max", Value: ref}}},
			{Key: "count", Value: bson.D{{Key: "$count", Value: bson.D{}}}},
		}}},
		bson.D{{Key: "$sort", Value: bson.D{{Key: "_id", Value: int32(1)}}}},
	}
}

func decodeBucket(raw bson.Raw) (Bucket, error) {
	var b Bucket
	start, ok := raw.Lookup("_id").TimeOK()
	if !ok {
		return b, fmt.Errorf("%w: bucket _id is %s, want a date", ErrCorruptDoc, raw.Lookup("_id").Type)
	}
	b.Start = start.UTC()
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"min", &b.Min}, {"avg", &b.Avg}, {"max", &b.Max}} {
		v, ok := raw.Lookup(f.name).AsFloat64OK()
		if !ok {
			return b, fmt.Errorf("%w: bucket %s is %s, want a number", ErrCorruptDoc, f.name, raw.Lookup(f.name).Type)
		}
		*f.dst = v
	}
	if b.Count, ok = raw.Lookup("count").AsInt64OK(); !ok {
		return b, fmt.Errorf("%w: bucket count is %s, want an integer", ErrCorruptDoc, raw.Lookup("count").Type)
	}
	return b, nil
}

// Range returns device's samples in coll with ts in [from, to), ts
// ascending, at most limit of them (0: all). It runs
// find {meta.device: device, ts: {$gte: from, $lt: to}} sort {ts: 1},
// served by the index {meta.device: 1, ts: -1} walked backwards.
func (s *Store) Range(ctx context.Context, coll, device string, from, to time.Time, limit int) ([]devices.Sample, error) {
	if err := checkCollection(coll); err != nil {
		return nil, err
	}
	if err := checkRange(device, from, to); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("%w: limit %d: want 0 (all) or more", ErrInvalidArgument, limit)
	}
	filter := bson.D{
		{Key: "meta.device", Value: device},
		{Key: fieldTS, Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(from)}, {Key: "$lt", Value: bson.NewDateTimeFromTime(to)}}},
	}
	opts := options.Find().SetSort(bson.D{{Key: fieldTS, Value: int32(1)}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.db.Collection(coll).Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("samples of %s in %s: %w", device, s.namespace(coll), err)
	}
	out, err := decodeSamples(ctx, cur)
	if err != nil {
		return nil, fmt.Errorf("samples of %s in %s: %w", device, s.namespace(coll), err)
	}
	return out, nil
}

func checkRange(device string, from, to time.Time) error {
	if device == "" {
		return fmt.Errorf("%w: empty device", ErrInvalidArgument)
	}
	if !from.Before(to) {
		return fmt.Errorf("%w: time range [%s, %s) is empty: want from before to", ErrInvalidArgument,
			from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func decodeSamples(ctx context.Context, cur *mongo.Cursor) ([]devices.Sample, error) {
	defer func() { _ = cur.Close(ctx) }()
	var out []devices.Sample
	for cur.Next(ctx) {
		s, err := decodeSample(cur.Current)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, cur.Err()
}

// decodeSample reads a stored document back into a Sample. An int32
// becomes an int64, so documents inserted by other tools read too; an
// errors entry Write made for a uint64 beyond the int64 range reads back
// as that errors entry.
func decodeSample(raw bson.Raw) (devices.Sample, error) {
	var s devices.Sample
	id := raw.Lookup("_id").String()
	ts, ok := raw.Lookup(fieldTS).TimeOK()
	if !ok {
		return s, fmt.Errorf("%w: document %s: ts is %s, want a date", ErrCorruptDoc, id, raw.Lookup(fieldTS).Type)
	}
	s.Time = ts.UTC()
	for _, m := range []struct {
		key string
		dst *string
	}{{metaFactory, &s.Factory}, {metaClass, &s.Class}, {metaDevice, &s.Device}} {
		if *m.dst, ok = raw.Lookup(fieldMeta, m.key).StringValueOK(); !ok {
			return s, fmt.Errorf("%w: document %s: meta.%s is %s, want a string", ErrCorruptDoc, id, m.key, raw.Lookup(fieldMeta, m.key).Type)
		}
	}
	var err error
	if s.Tags, err = decodeStrings(raw, id, metaTags); err != nil {
		return s, err
	}
	if s.Units, err = decodeStrings(raw, id, metaUnits); err != nil {
		return s, err
	}
	seq, ok := raw.Lookup(fieldSeq).AsInt64OK()
	if !ok || seq < 0 {
		return s, fmt.Errorf("%w: document %s: seq is %s, want an integer of 0 or more", ErrCorruptDoc, id, raw.Lookup(fieldSeq))
	}
	s.Seq = uint64(seq)

	// Write leaves fields out when no field has a value.
	fields := bson.Raw(bsoncore.NewDocumentBuilder().Build())
	if fv, err := raw.LookupErr(fieldFields); err == nil {
		if fields, ok = fv.DocumentOK(); !ok {
			return s, fmt.Errorf("%w: document %s: fields is %s, want a document", ErrCorruptDoc, id, fv.Type)
		}
	}
	elems, err := fields.Elements()
	if err != nil {
		return s, fmt.Errorf("%w: document %s: fields: %v", ErrCorruptDoc, id, err)
	}
	s.Fields = make(map[string]devices.Value, len(elems))
	for _, e := range elems {
		v, err := decodeValue(e.Value())
		if err != nil {
			return s, fmt.Errorf("%w: document %s: fields.%s: %v", ErrCorruptDoc, id, e.Key(), err)
		}
		s.Fields[e.Key()] = v
	}

	ev, err := raw.LookupErr(fieldErrors)
	if err != nil {
		return s, nil
	}
	errs, ok := ev.DocumentOK()
	if !ok {
		return s, fmt.Errorf("%w: document %s: errors is %s, want a document", ErrCorruptDoc, id, ev.Type)
	}
	if elems, err = errs.Elements(); err != nil {
		return s, fmt.Errorf("%w: document %s: errors: %v", ErrCorruptDoc, id, err)
	}
	if len(elems) > 0 {
		s.Errors = make(map[string]string, len(elems))
	}
	for _, e := range elems {
		msg, ok := e.Value().StringValueOK()
		if !ok {
			return s, fmt.Errorf("%w: document %s: errors.%s is %s, want a string", ErrCorruptDoc, id, e.Key(), e.Value().Type)
		}
		s.Errors[e.Key()] = msg
	}
	return s, nil
}

// decodeStrings reads meta.<key> of a stored document, a document of
// strings (tags, units), or nil when it is absent or empty. id names the
// document in errors.
func decodeStrings(raw bson.Raw, id, key string) (map[string]string, error) {
	v, err := raw.LookupErr(fieldMeta, key)
	if err != nil {
		return nil, nil
	}
	doc, ok := v.DocumentOK()
	if !ok {
		return nil, fmt.Errorf("%w: document %s: meta.%s is %s, want a document", ErrCorruptDoc, id, key, v.Type)
	}
	elems, err := doc.Elements()
	if err != nil {
		return nil, fmt.Errorf("%w: document %s: meta.%s: %v", ErrCorruptDoc, id, key, err)
	}
	if len(elems) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(elems))
	for _, e := range elems {
		str, ok := e.Value().StringValueOK()
		if !ok {
			return nil, fmt.Errorf("%w: document %s: meta.%s.%s is %s, want a string", ErrCorruptDoc, id, key, e.Key(), e.Value().Type)
		}
		m[e.Key()] = str
	}
	return m, nil
}

func decodeValue(v bson.RawValue) (devices.Value, error) {
	switch v.Type {
	case bson.TypeBoolean:
		return devices.BoolValue(v.Boolean()), nil
	case bson.TypeInt32:
		return devices.Int64Value(int64(v.Int32())), nil
	case bson.TypeInt64:
		return devices.Int64Value(v.Int64()), nil
	case bson.TypeDouble:
		return devices.Float64Value(v.Double()), nil
	case bson.TypeString:
		return devices.StringValue(v.StringValue()), nil
	}
	return devices.Value{}, fmt.Errorf("BSON type %s, want a bool, integer, double or string", v.Type)
}

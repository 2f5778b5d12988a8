package mongots

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The granularities of a time-series collection, coarsest last.
const (
	GranularitySeconds = "seconds"
	GranularityMinutes = "minutes"
	GranularityHours   = "hours"
)

var granularityRank = map[string]int{GranularitySeconds: 1, GranularityMinutes: 2, GranularityHours: 3}

// maxBucketMaxSpan is MongoDB's upper bound for bucketMaxSpanSeconds.
const maxBucketMaxSpan = 31536000 * time.Second

// MongoDB error codes Ensure handles.
const (
	codeNamespaceExists   = 48
	codeNamespaceNotFound = 26
	codeNotImplemented    = 238
)

// CollectionSpec describes the time-series collection of one topic.
type CollectionSpec struct {
	// Name is the collection's name: the topic, such as "plant-a.press".
	Name string

	// Granularity is the bucketing of the time-series collection:
	// "seconds" (default), "minutes" or "hours", matched to the interval
	// between one device's samples. Exclusive with BucketMaxSpan.
	Granularity string

	// BucketMaxSpan, if not zero, is custom bucketing (MongoDB 6.3 or
	// later): bucketMaxSpanSeconds and bucketRoundingSeconds both set to
	// it. Whole seconds, 1s to 365 days. Exclusive with Granularity.
	BucketMaxSpan time.Duration

	// ExpireAfter is the TTL: documents older than it are deleted, a
	// bucket at a time (see the package documentation). Whole seconds;
	// 0 keeps documents forever.
	ExpireAfter time.Duration
}

// validate checks spec and returns the granularity to use ("" with a
// BucketMaxSpan).
func (spec CollectionSpec) validate() (string, error) {
	if spec.Name == "" {
		return "", fmt.Errorf("%w: empty collection name", ErrInvalidSpec)
	}
	if spec.ExpireAfter < 0 || spec.ExpireAfter%time.Second != 0 {
		return "", fmt.Errorf("%w: collection %s: expire after %v: want 0 (keep forever) or a positive whole number of seconds", ErrInvalidSpec, spec.Name, spec.ExpireAfter)
	}
	if spec.BucketMaxSpan != 0 {
		if spec.Granularity != "" {
			return "", fmt.Errorf("%w: collection %s: granularity %q and bucket max span %v are exclusive: set one", ErrInvalidSpec, spec.Name, spec.Granularity, spec.BucketMaxSpan)
		}
		if spec.BucketMaxSpan < time.Second || spec.BucketMaxSpan > maxBucketMaxSpan || spec.BucketMaxSpan%time.Second != 0 {
			return "", fmt.Errorf("%w: collection %s: bucket max span %v: want whole seconds from 1s to %v", ErrInvalidSpec, spec.Name, spec.BucketMaxSpan, maxBucketMaxSpan)
		}
		return "", nil
	}
	g := spec.Granularity
	if g == "" {
		g = GranularitySeconds
	}
	if granularityRank[g] == 0 {
		return "", fmt.Errorf("%w: collection %s: granularity %q: want seconds, minutes or hours", ErrInvalidSpec, spec.Name, spec.Granularity)
	}
	return g, nil
}

// collInfo is what listCollections says about an existing collection.
type collInfo struct {
	typ            string // "collection", "timeseries" or "view"
	timeField      string
	metaField      string
	granularity    string
	bucketMaxSpan  int64 // seconds, 0 when absent
	bucketRounding int64 // seconds, 0 when absent
	expireAfter    int64 // seconds, -1 when the collection has no TTL
}

// parseCollInfo reads a listCollections entry's type and options.
func parseCollInfo(typ string, opts bson.Raw) collInfo {
	info := collInfo{typ: typ, expireAfter: -1}
	if v, err := opts.LookupErr("expireAfterSeconds"); err == nil {
		if n, ok := v.AsInt64OK(); ok {
			info.expireAfter = n
		}
	}
	ts, err := opts.LookupErr("timeseries")
	if err != nil {
		return info
	}
	tsDoc, ok := ts.DocumentOK()
	if !ok {
		return info
	}
	info.timeField, _ = tsDoc.Lookup("timeField").StringValueOK()
	info.metaField, _ = tsDoc.Lookup("metaField").StringValueOK()
	info.granularity, _ = tsDoc.Lookup("granularity").StringValueOK()
	info.bucketMaxSpan, _ = tsDoc.Lookup("bucketMaxSpanSeconds").AsInt64OK()
	info.bucketRounding, _ = tsDoc.Lookup("bucketRoundingSeconds").AsInt64OK()
	return info
}

// reconcile compares an existing time-series collection with spec, whose
// granularity is g. It returns the expireAfterSeconds to set with collMod
// (-1: none, 0: turn TTL off) and whether one is needed, or a
// *CollectionError when the collection cannot be used as it is.
func reconcile(ns string, spec CollectionSpec, g string, info collInfo) (want int64, change bool, err error) {
	shape := func(format string, args ...any) error {
		return &CollectionError{Namespace: ns, Problem: fmt.Sprintf(format, args...), Err: ErrShape}
	}
	switch {
	case info.typ == "view":
		return 0, false, &CollectionError{Namespace: ns, Err: ErrNotTimeSeries,
			Problem: "is a view, not a time-series collection; drop it or configure another database"}
	case info.typ != "timeseries":
		return 0, false, &CollectionError{Namespace: ns, Err: ErrNotTimeSeries,
			Problem: fmt.Sprintf("is a %s, not a time-series collection (timeField %q, metaField %q); "+
				"factorywire never writes into another shape: rename or drop it, or configure another database", info.typ, fieldTS, fieldMeta)}
	case info.timeField != fieldTS:
		return 0, false, shape("is time-series with timeField %q, want %q; rename or drop it, or configure another database", info.timeField, fieldTS)
	case info.metaField != fieldMeta:
		return 0, false, shape("is time-series with metaField %q, want %q; rename or drop it, or configure another database", info.metaField, fieldMeta)
	}
	if spec.BucketMaxSpan != 0 {
		span := int64(spec.BucketMaxSpan / time.Second)
		if info.granularity != "" || info.bucketMaxSpan != span || info.bucketRounding != span {
			return 0, false, shape("has %s, configured custom bucketing of %ds (bucketMaxSpanSeconds = bucketRoundingSeconds); "+
				"MongoDB cannot change a collection's bucketing to that: configure the collection's bucketing, or migrate the data into a new collection",
				describeBucketing(info), span)
		}
	} else if info.granularity != g {
		if info.granularity == "" {
			return 0, false, shape("has %s, configured granularity %q; MongoDB cannot change custom bucketing into a granularity: "+
				"configure bucket max span %ds, or migrate the data into a new collection", describeBucketing(info), g, info.bucketMaxSpan)
		}
		fix := fmt.Sprintf("configure granularity %q, or migrate the data into a new collection", info.granularity)
		if granularityRank[g] > granularityRank[info.granularity] {
			fix = fmt.Sprintf("to coarsen it, run db.runCommand({collMod: %q, timeseries: {granularity: %q}}) once, or configure granularity %q", spec.Name, g, info.granularity)
		}
		return 0, false, shape("has granularity %q, configured %q; MongoDB can only increase a granularity (seconds, minutes, hours), never decrease it, so factorywire does not change it: %s",
			info.granularity, g, fix)
	}
	want = int64(spec.ExpireAfter / time.Second)
	if want == 0 && info.expireAfter <= 0 {
		return 0, false, nil
	}
	return want, want != info.expireAfter, nil
}

func describeBucketing(info collInfo) string {
	if info.granularity != "" {
		return fmt.Sprintf("granularity %q", info.granularity)
	}
	return fmt.Sprintf("custom bucketing (bucketMaxSpanSeconds %d, bucketRoundingSeconds %d)", info.bucketMaxSpan, info.bucketRounding)
}

// Ensure makes the collection spec.Name ready for Write and the queries,
// and is idempotent: safe on every start of every sink instance.
//
// In time-series mode, a missing collection is created as time-series
// (timeField "ts", metaField "meta", the granularity or custom bucketing,
// expireAfterSeconds when ExpireAfter is set). An existing one must be
// time-series with that timeField, metaField and bucketing; otherwise
// Ensure returns a *CollectionError naming database.collection and what
// differs, and changes nothing: factorywire never writes into a
// collection of another shape. A different TTL is changed with collMod
// (logged); a different granularity is an error, because MongoDB can only
// increase one. Then Ensure creates the indexes (see the package
// documentation).
//
// In the stand-in mode (Options.TimeSeries false) Ensure creates a plain
// collection, accepts an existing regular or time-series one, creates the
// same indexes, ignores ExpireAfter, and logs a warning.
//
// With Options.Shard, Ensure first checks with {hello: 1} that the server
// is a mongos (ErrNotMongos in a *CommandError otherwise, and nothing is
// created), and ends by sharding the collection on {meta.device:
// "hashed"} and, once per Store, device_status on {_id: "hashed"}
// (shardTopic).
func (s *Store) Ensure(ctx context.Context, spec CollectionSpec) error {
	g, err := spec.validate()
	if err != nil {
		return err
	}
	ns := s.namespace(spec.Name)
	if s.opts.Shard {
		if err := s.checkMongos(ctx, spec.Name); err != nil { // before anything is created
			return err
		}
	}
	if !s.opts.TimeSeries {
		s.log.Warn("mongots: stand-in mode: plain collection without time-series bucketing or TTL (nothing expires); for FerretDB in tests and the demo only",
			"collection", ns)
	}
	for attempt := 0; ; attempt++ {
		info, found, err := s.inspect(ctx, spec.Name)
		if err != nil {
			return err
		}
		if found {
			if err := s.adopt(ctx, ns, spec, g, info); err != nil {
				return err
			}
			break
		}
		err = s.create(ctx, spec, g)
		if err == nil {
			break
		}
		// Another sink instance created it since inspect: check its shape.
		if !hasCode(err, codeNamespaceExists) || attempt > 0 {
			return err
		}
	}
	if err := s.createIndexes(ctx, spec.Name); err != nil {
		return err
	}
	return s.shardTopic(ctx, spec.Name)
}

// inspect returns the collection's listCollections entry.
func (s *Store) inspect(ctx context.Context, name string) (collInfo, bool, error) {
	specs, err := s.db.ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: name}})
	if err != nil {
		return collInfo{}, false, s.commandError(name, "listCollections", "inspect the collection", err)
	}
	for _, cs := range specs {
		if cs.Name == name {
			return parseCollInfo(cs.Type, cs.Options), true, nil
		}
	}
	return collInfo{}, false, nil
}

// adopt checks an existing collection and brings its TTL to the spec's.
func (s *Store) adopt(ctx context.Context, ns string, spec CollectionSpec, g string, info collInfo) error {
	if !s.opts.TimeSeries {
		if info.typ == "view" {
			return &CollectionError{Namespace: ns, Err: ErrNotTimeSeries, Problem: "is a view, not a collection; drop it or configure another database"}
		}
		return nil
	}
	want, change, err := reconcile(ns, spec, g, info)
	if err != nil || !change {
		return err
	}
	if err := s.setExpireAfter(ctx, spec.Name, want); err != nil {
		return err
	}
	s.log.Info("mongots: changed the collection's TTL (expireAfterSeconds) to the configured value",
		"collection", ns, "from", ttlString(info.expireAfter), "to", ttlString(want))
	return nil
}

func ttlString(seconds int64) string {
	if seconds <= 0 {
		return "off"
	}
	return (time.Duration(seconds) * time.Second).String()
}

// createCommand returns the create command of the collection spec
// describes: time-series in time-series mode, plain in the stand-in mode.
func (s *Store) createCommand(spec CollectionSpec, g string) bson.D {
	cmd := bson.D{{Key: "create", Value: spec.Name}}
	if !s.opts.TimeSeries {
		return cmd
	}
	ts := bson.D{{Key: "timeField", Value: fieldTS}, {Key: "metaField", Value: fieldMeta}}
	if spec.BucketMaxSpan != 0 {
		span := int32(spec.BucketMaxSpan / time.Second)
		ts = append(ts, bson.E{Key: "bucketMaxSpanSeconds", Value: span}, bson.E{Key: "bucketRoundingSeconds", Value: span})
	} else {
		ts = append(ts, bson.E{Key: "granularity", Value: g})
	}
	cmd = append(cmd, bson.E{Key: "timeseries", Value: ts})
	if spec.ExpireAfter > 0 {
		cmd = append(cmd, bson.E{Key: "expireAfterSeconds", Value: int64(spec.ExpireAfter / time.Second)})
	}
	return cmd
}

func (s *Store) create(ctx context.Context, spec CollectionSpec, g string) error {
	err := s.db.RunCommand(ctx, s.createCommand(spec, g)).Err()
	switch {
	case err == nil:
		return nil
	case hasCode(err, codeNamespaceExists):
		return err // Ensure inspects it again
	case s.opts.TimeSeries:
		return s.commandError(spec.Name, "create", "create the time-series collection", err)
	}
	return s.commandError(spec.Name, "create", "create the collection (stand-in mode)", err)
}

// setExpireAfter sets the collection's TTL with collMod: seconds, or off
// when seconds is 0.
func (s *Store) setExpireAfter(ctx context.Context, coll string, seconds int64) error {
	var v any = seconds
	if seconds <= 0 {
		v = "off"
	}
	cmd := bson.D{{Key: "collMod", Value: coll}, {Key: "expireAfterSeconds", Value: v}}
	if err := s.db.RunCommand(ctx, cmd).Err(); err != nil {
		return s.commandError(coll, "collMod", fmt.Sprintf("set expireAfterSeconds to %v", v), err)
	}
	return nil
}

// Index names: MongoDB's default names for their keys, so that an index
// someone created by hand with the same keys counts as present.
const (
	IndexDeviceTime = "meta.device_1_ts_-1"
	// LegacyIndexSource is the index {src.p: 1, src.o: -1} that
	// factorywire created before it kept the highest written offset in the
	// checkpoint. No query uses it any more, and every insert paid for it:
	// Ensure drops it.
	LegacyIndexSource = "src.p_1_src.o_-1"
)

// createIndexes creates the index {meta.device: 1, ts: -1}, a no-op when
// it exists with the same keys and name, and drops the legacy index
// {src.p: 1, src.o: -1} where it exists (logged).
func (s *Store) createIndexes(ctx context.Context, coll string) error {
	// ESR: equality on the device, then time, serving Latest's sort and
	// $first, Range's and Window's time range, LastSeqs and
	// UnstoredSamples.
	model := mongo.IndexModel{
		Keys:    bson.D{{Key: fieldMeta + "." + metaDevice, Value: int32(1)}, {Key: fieldTS, Value: int32(-1)}},
		Options: options.Index().SetName(IndexDeviceTime),
	}
	if _, err := s.db.Collection(coll).Indexes().CreateOne(ctx, model); err != nil {
		return s.commandError(coll, "createIndexes", "create the index "+IndexDeviceTime+" {meta.device: 1, ts: -1}", err)
	}
	return s.dropLegacyIndex(ctx, coll)
}

// dropLegacyIndex sends {dropIndexes: coll, index: "src.p_1_src.o_-1"}:
// one command, whether or not the index exists (IndexNotFound is the
// answer when it does not). A user without the privilege to drop it gets
// a warning, and the sink goes on: the index costs inserts, not
// correctness.
func (s *Store) dropLegacyIndex(ctx context.Context, coll string) error {
	cmd := bson.D{{Key: "dropIndexes", Value: coll}, {Key: "index", Value: LegacyIndexSource}}
	err := s.db.RunCommand(ctx, cmd).Err()
	switch {
	case err == nil:
		s.log.Info("mongots: dropped the legacy index {src.p: 1, src.o: -1}: no query uses it since the checkpoint keeps the highest written offset",
			"collection", s.namespace(coll), "index", LegacyIndexSource)
		return nil
	case hasCode(err, codeIndexNotFound), hasCode(err, codeNamespaceNotFound):
		return nil
	case hasCode(err, codeUnauthorized):
		s.log.Warn("mongots: cannot drop the legacy index {src.p: 1, src.o: -1}, which only slows inserts down: "+RolesHint,
			"collection", s.namespace(coll), "index", LegacyIndexSource, "err", err)
		return nil
	}
	return s.commandError(coll, "dropIndexes", "drop the legacy index "+LegacyIndexSource, err)
}

// hasCode reports whether err carries the server error code.
func hasCode(err error, code int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}

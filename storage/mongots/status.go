package mongots

import (
	"context"
	"errors"
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

// StatusCollection is the regular collection holding each device's
// status: its newest stored sample and how long it has had errors. A topic
// has no '_', so it never collides with a topic's collection.
const StatusCollection = "device_status"

// statusChunk bounds the devices of one ReadStatus find.
const statusChunk = 1000

// codeDuplicateKey is the server's answer to an upsert whose filter does
// not match the document holding its _id.
const codeDuplicateKey = 11000

// DeviceStatus is one device's entry in the status collection.
type DeviceStatus struct {
	Topic string
	// Sample is the device's newest stored sample (by ts): factory, class,
	// device, tags, units, ts, seq, fields and errors.
	Sample devices.Sample
	// ErrorCount is the number of fields in error in Sample.
	ErrorCount int
	// ErrorsSince is the ts of the first sample of the device's current
	// run of samples with errors; zero when Sample has none.
	ErrorsSince time.Time
	// UpdatedAt is when the sink last wrote the entry.
	UpdatedAt time.Time
	// New tells UpdateStatus that the caller knows of no entry for the
	// device: it inserts one, and only if that finds an entry updates it.
	New bool
}

// statusID returns a device's _id in the status collection.
func statusID(topic, device string) string { return topic + "/" + device }

// UpdateStatus upserts the status of the devices of updates, each Sample
// being the device's newest stored sample of a batch. An entry only moves
// forward in time: each update is
//
//	{q: {_id: "<topic>/<device>", ts: {$lt: ts}},
//	 u: {$set: {topic, factory, class, device, tags, units, ts, seq, fields,
//	            error_count, errors, errors_since, updated_at}} // tags, units, errors, errors_since only when set
//	     $unset: {tags: "", units: "", errors: "", errors_since: ""}}, // those not set
//	 upsert: true}
//
// in one unordered bulk write. Where the entry holds a newer ts the filter
// does not match and the upsert's insert fails with a duplicate key
// (11000): that update is skipped, as it should be (a batch replayed after
// a newer one). Updates of the same device: the newest counts. Write
// concern: Options.WriteConcern.
func (s *Store) UpdateStatus(ctx context.Context, updates []DeviceStatus) error {
	if len(updates) == 0 {
		return nil
	}
	now := time.Now().UTC()
	guarded := make([]guardedStatus, 0, len(updates))
	// inserts are the entries marked New; fallback their guarded updates,
	// in the same order, sent for those the insert found.
	var inserts []mongo.WriteModel
	var fallback []guardedStatus
	for i := range updates {
		u := &updates[i]
		if err := checkCollection(u.Topic); err != nil {
			return err
		}
		smp := &u.Sample
		var buf [stackFields]sampleField
		fs, err := checkSample(smp, buf[:0])
		if err != nil {
			return fmt.Errorf("status of %s in %s: %w", smp.Device, u.Topic, err)
		}
		if smp.Time.IsZero() || strings.Contains(u.Topic, "/") {
			return fmt.Errorf("%w: status of %q in %q: want a ts and a topic without '/'", ErrInvalidArgument, smp.Device, u.Topic)
		}
		set := bsoncore.NewDocumentBuilder().
			AppendString("topic", u.Topic).
			AppendString(metaFactory, smp.Factory).
			AppendString(metaClass, smp.Class).
			AppendString(metaDevice, smp.Device).
			Build()
		set = set[:len(set)-1] // reopen the document: append the rest
		set = appendStrings(set, metaTags, smp.Tags)
		set = appendStrings(set, metaUnits, smp.Units)
		set = bsoncore.AppendDateTimeElement(set, fieldTS, smp.Time.UnixMilli())
		set = bsoncore.AppendInt64Element(set, fieldSeq, int64(smp.Seq))
		set, nErrors := appendValues(set, smp, fs)
		hasErrors := nErrors > 0
		if hasErrors {
			since := u.ErrorsSince
			if since.IsZero() {
				since = smp.Time
			}
			set = bsoncore.AppendDateTimeElement(set, "errors_since", since.UnixMilli())
		}
		set = bsoncore.AppendDateTimeElement(set, "updated_at", now.UnixMilli())
		set = append(set, 0)
		bsoncore.UpdateLength(set, 0, int32(len(set)))
		id := statusID(u.Topic, smp.Device)
		if u.New {
			doc := append(bsoncore.AppendStringElement(bsoncore.NewDocumentBuilder().Build()[:4], "_id", id), set[4:]...)
			bsoncore.UpdateLength(doc, 0, int32(len(doc)))
			inserts = append(inserts, mongo.NewInsertOneModel().SetDocument(bson.Raw(doc)))
		}
		update := bson.D{{Key: "$set", Value: bson.Raw(set)}}
		var unset bson.D
		if len(smp.Tags) == 0 {
			unset = append(unset, bson.E{Key: metaTags, Value: ""})
		}
		if len(smp.Units) == 0 {
			unset = append(unset, bson.E{Key: metaUnits, Value: ""})
		}
		if !hasErrors {
			unset = append(unset, bson.E{Key: fieldErrors, Value: ""}, bson.E{Key: "errors_since", Value: ""})
		}
		if len(unset) > 0 {
			update = append(update, bson.E{Key: "$unset", Value: unset})
		}
		g := guardedStatus{id: id, ts: smp.Time, update: update}
		if u.New {
			fallback = append(fallback, g)
			continue
		}
		guarded = append(guarded, g)
	}
	// New entries first, inserted; those that exist after all are updated
	// with the others.
	dups, err := s.bulkDuplicates(ctx, StatusCollection, inserts)
	if err != nil {
		return s.commandError(StatusCollection, "insert", "insert device status", err)
	}
	for _, i := range dups {
		guarded = append(guarded, fallback[i])
	}
	var models []mongo.WriteModel
	if s.opts.TimeSeries {
		models = make([]mongo.WriteModel, len(guarded))
		for i, g := range guarded {
			models[i] = mongo.NewUpdateOneModel().
				SetFilter(bson.D{{Key: "_id", Value: g.id}, {Key: fieldTS, Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(g.ts)}}}}).
				SetUpdate(g.update).
				SetUpsert(true)
		}
	} else if models, err = s.standInStatusUpdates(ctx, guarded); err != nil {
		return err
	}
	// A duplicate key here is an entry already newer: skipped.
	if _, err := s.bulkDuplicates(ctx, StatusCollection, models); err != nil {
		return s.commandError(StatusCollection, "update", "update device status", err)
	}
	return nil
}

// guardedStatus is a status entry's update, to apply only over an entry
// older than ts.
type guardedStatus struct {
	id     string
	ts     time.Time
	update bson.D
}

// standInStatusUpdates returns the updates of guarded for the stand-in
// mode: the entries' stored ts are read first (one find per 1,000 _ids),
// and each update not older than its entry is sent with the filter
// {_id} alone, which FerretDB serves from its _id index where it would
// answer {_id, ts: {$lt}} by reading the whole collection for each
// update. Of several updates of one entry, the newest is sent. The read
// and the write are not one atomic step; neither are they within
// FerretDB's own update.
func (s *Store) standInStatusUpdates(ctx context.Context, guarded []guardedStatus) ([]mongo.WriteModel, error) {
	newest := make(map[string]int, len(guarded))
	ids := make([]string, 0, len(guarded))
	for i, g := range guarded {
		j, ok := newest[g.id]
		if !ok {
			ids = append(ids, g.id)
		}
		if !ok || g.ts.After(guarded[j].ts) {
			newest[g.id] = i
		}
	}
	stored, err := s.storedValues(ctx, StatusCollection, "read device status", ids, fieldTS)
	if err != nil {
		return nil, err
	}
	models := make([]mongo.WriteModel, 0, len(ids))
	for _, id := range ids {
		g := guarded[newest[id]]
		if v, ok := stored[id]; ok {
			if dt, ok := v.DateTimeOK(); ok && dt >= g.ts.UnixMilli() {
				continue // the entry holds this sample or a newer one
			}
		}
		models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).SetUpdate(g.update).SetUpsert(true))
	}
	return models, nil
}

// storedValues returns, for each of ids that coll holds, the value of its
// document's field (absent where the document lacks it, or the document
// where it is absent), one find
// {_id: {$in: [...]}} per 1,000 ids with field alone projected. what
// names the read in errors. On the stand-in each find reads the whole
// collection: for a collection bounded by the fleet (the device status).
func (s *Store) storedValues(ctx context.Context, coll, what string, ids []string, field string) (map[string]bson.RawValue, error) {
	out := make(map[string]bson.RawValue, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), statusChunk)
		if err := s.collectValues(ctx, coll, what, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids[:n]}}}}, field, out); err != nil {
			return nil, err
		}
		ids = ids[n:]
	}
	return out, nil
}

// storedValuesByID is storedValues with one find {_id: <id>} per id,
// which the stand-in serves from its _id index: its cost follows the ids
// asked, not what the collection has accumulated (the rollups, kept for
// ever on the stand-in).
func (s *Store) storedValuesByID(ctx context.Context, coll, what string, ids []string, field string) (map[string]bson.RawValue, error) {
	out := make(map[string]bson.RawValue, len(ids))
	for _, id := range ids {
		if err := s.collectValues(ctx, coll, what, bson.D{{Key: "_id", Value: id}}, field, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// collectValues runs find filter on coll with field alone projected and
// adds each document's value of field to out by _id.
func (s *Store) collectValues(ctx context.Context, coll, what string, filter bson.D, field string, out map[string]bson.RawValue) error {
	cur, err := s.collection(coll).Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: field, Value: 1}}))
	if err != nil {
		return s.commandError(coll, "find", what, err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		id, ok := cur.Current.Lookup("_id").StringValueOK()
		if !ok {
			return fmt.Errorf("%w: %s: _id %s is not a string", ErrCorruptDoc, s.namespace(coll), cur.Current.Lookup("_id"))
		}
		if v, err := cur.Current.LookupErr(field); err == nil {
			out[id] = bson.RawValue{Type: v.Type, Value: slices.Clone(v.Value)} // Current is reused by Next
		}
	}
	if err := cur.Err(); err != nil {
		return s.commandError(coll, "find", what, err)
	}
	return nil
}

// bulkDuplicates sends models, all of one kind, in unordered bulk writes
// and returns the indexes of those refused with a duplicate key; any
// other failure is returned. FerretDB stops an unordered bulk write at
// its first error, where MongoDB goes on: the models after the last
// refused one are sent again, which changes nothing where they were
// applied already, except that a guarded write then finds its own change
// and is reported refused (a spurious conflict, which callers resolve by
// reading again).
//
// It sends at most 1,000 models per command, standInChunk in the
// stand-in mode, and calls the pause of ctx (WithPause) before each.
func (s *Store) bulkDuplicates(ctx context.Context, coll string, models []mongo.WriteModel) ([]int, error) {
	chunk := s.bulkChunk()
	var dups []int
	base := 0
	for len(models) > 0 {
		if err := pauseBefore(ctx); err != nil {
			return dups, err
		}
		n := min(len(models), chunk)
		_, err := s.collection(coll).BulkWrite(ctx, models[:n], options.BulkWrite().SetOrdered(false))
		if err == nil {
			models, base = models[n:], base+n
			continue
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
			return dups, err
		}
		last := -1
		for _, we := range bwe.WriteErrors {
			if we.Code != codeDuplicateKey || we.Index < 0 || we.Index >= len(models) {
				return dups, err
			}
			dups = append(dups, base+we.Index)
			last = max(last, we.Index)
		}
		models = models[last+1:]
		base += last + 1
	}
	return dups, nil
}

// standInChunk is the most update statements a bulk write sends in
// one command to the FerretDB stand-in. FerretDB 1.24 holds one of its
// 100 SQLite connections per update statement until the command ends, so
// an update command of 100 statements never ends (measured: 99 take 0.1
// s, 100 hang), and neither do concurrent commands that together hold
// 100: the sink sends two at a time (its batches, and its status and
// rollups beside them), and several sinks may share one stand-in.
const standInChunk = 24

// bulkChunk is the most write models one bulk write command carries:
// 1,000, or standInChunk in the stand-in mode.
func (s *Store) bulkChunk() int {
	if !s.opts.TimeSeries {
		return standInChunk
	}
	return 1000
}

// ReadStatus returns the status entries of devs in topic; devices without
// one are absent. Per 1,000 devices it runs find {_id: {$in: ["<topic>/<d>",
// …]}}, served by the _id index: one document per device, whatever the
// history. Read concern majority (see Options.WriteConcern).
func (s *Store) ReadStatus(ctx context.Context, topic string, devs []string) (map[string]DeviceStatus, error) {
	if err := checkCollection(topic); err != nil {
		return nil, err
	}
	devs = slices.Clone(devs)
	slices.Sort(devs)
	devs = slices.Compact(devs)
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = statusID(topic, d)
	}
	out := make(map[string]DeviceStatus, len(devs))
	err := s.findByID(ctx, StatusCollection, "read device status", ids, func(raw bson.Raw) error {
		st, err := decodeStatus(raw)
		if err == nil {
			out[st.Sample.Device] = st
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// findByID reads the documents of coll with the given _ids, one
// find {_id: {$in: [...]}} per 1,000 (statusChunk), served by the _id
// index, and passes each to each; an error of each is a document of an
// unexpected shape (ErrCorruptDoc). what names the read in errors.
func (s *Store) findByID(ctx context.Context, coll, what string, ids []string, each func(bson.Raw) error) error {
	for len(ids) > 0 {
		n := min(len(ids), statusChunk)
		cur, err := s.collection(coll).Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids[:n]}}}})
		if err != nil {
			return s.commandError(coll, "find", what, err)
		}
		ids = ids[n:]
		for cur.Next(ctx) {
			if err := each(cur.Current); err != nil {
				_ = cur.Close(ctx)
				return fmt.Errorf("%w: %s: %v", ErrCorruptDoc, s.namespace(coll), err)
			}
		}
		err = cur.Err()
		_ = cur.Close(ctx)
		if err != nil {
			return s.commandError(coll, "find", what, err)
		}
	}
	return nil
}

// Status returns the status of every device of topic, sorted by device;
// with errorsOnly, only the devices whose newest sample has errors. It runs
// find {_id: {$gte: "<topic>/", $lt: "<topic>0"}} (with errorsOnly also
// error_count: {$gt: 0}) sorted by _id: a range of the _id index holding
// the topic's devices, so it reads one document per device of the topic
// (on the FerretDB stand-in: the whole collection, one per device).
func (s *Store) Status(ctx context.Context, topic string, errorsOnly bool) ([]DeviceStatus, error) {
	if err := checkCollection(topic); err != nil {
		return nil, err
	}
	// '0' follows '/' in byte order: the range holds exactly the _ids
	// that start with "<topic>/".
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: topic + "/"}, {Key: "$lt", Value: topic + "0"}}}}
	if errorsOnly {
		filter = append(filter, bson.E{Key: fieldNErrors, Value: bson.D{{Key: "$gt", Value: int32(0)}}})
	}
	var out []DeviceStatus
	err := s.findStatus(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: int32(1)}}), func(st DeviceStatus) {
		out = append(out, st)
	})
	return out, err
}

func (s *Store) findStatus(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder, each func(DeviceStatus)) error {
	var o []options.Lister[options.FindOptions]
	if opts != nil {
		o = append(o, opts)
	}
	cur, err := s.collection(StatusCollection).Find(ctx, filter, o...)
	if err != nil {
		return s.commandError(StatusCollection, "find", "read device status", err)
	}
	defer func() { _ = cur.Close(ctx) }()
	for cur.Next(ctx) {
		st, err := decodeStatus(cur.Current)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorruptDoc, s.namespace(StatusCollection), err)
		}
		each(st)
	}
	if err := cur.Err(); err != nil {
		return s.commandError(StatusCollection, "find", "read device status", err)
	}
	return nil
}

// decodeStatus reads a status entry: the sample's shape is a stored
// sample's, with identity at the top level instead of under meta.
func decodeStatus(raw bson.Raw) (DeviceStatus, error) {
	var st DeviceStatus
	topic, ok := raw.Lookup("topic").StringValueOK()
	if !ok {
		return st, fmt.Errorf("entry %s: topic is %s, want a string", raw.Lookup("_id"), raw.Lookup("topic").Type)
	}
	st.Topic = topic
	// Present the entry as a stored sample to reuse decodeSample.
	meta := bsoncore.NewDocumentBuilder()
	for _, k := range []string{metaFactory, metaClass, metaDevice} {
		v, ok := raw.Lookup(k).StringValueOK()
		if !ok {
			return st, fmt.Errorf("entry %s: %s is %s, want a string", raw.Lookup("_id"), k, raw.Lookup(k).Type)
		}
		meta.AppendString(k, v)
	}
	for _, k := range []string{metaTags, metaUnits} {
		if v, err := raw.LookupErr(k); err == nil {
			meta.AppendValue(k, bsoncore.Value{Type: bsoncore.Type(v.Type), Data: v.Value})
		}
	}
	doc := bsoncore.NewDocumentBuilder().
		AppendString("_id", raw.Lookup("_id").StringValue()).
		AppendDocument(fieldMeta, meta.Build())
	for _, k := range []string{fieldTS, fieldSeq, fieldFields, fieldErrors} {
		if v, err := raw.LookupErr(k); err == nil {
			doc.AppendValue(k, bsoncore.Value{Type: bsoncore.Type(v.Type), Data: v.Value})
		}
	}
	smp, err := decodeSample(bson.Raw(doc.Build()))
	if err != nil {
		return st, err
	}
	st.Sample = smp
	if n, ok := raw.Lookup(fieldNErrors).AsInt64OK(); ok {
		st.ErrorCount = int(n)
	}
	if t, ok := raw.Lookup("errors_since").TimeOK(); ok {
		st.ErrorsSince = t.UTC()
	}
	if t, ok := raw.Lookup("updated_at").TimeOK(); ok {
		st.UpdatedAt = t.UTC()
	}
	return st, nil
}

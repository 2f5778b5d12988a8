// Package mongots stores factorywire samples in MongoDB time-series
// collections: collection and index management (Ensure), the bulk writer
// (Write), replay detection (UnstoredSamples, LastSeqs), the sink's
// offsets checkpoint (LoadCheckpoints, MarkAttempted, SaveOffsets, and
// their several-topic forms MarkTopicsAttempted, SaveTopicOffsets), the
// device status (UpdateStatus, ReadStatus, Status), the rollups
// (EnsureRollups, LoadRollups, SaveRollups, RollupWindow), the analytics
// queries (Latest, Window, Range) and the loss check (Gaps). It needs
// MongoDB 6.0 or later; 8.0 is recommended.
//
//	client, err := mongo.Connect(options.Client().ApplyURI(uri))
//	...
//	s := mongots.New(client, mongots.DefaultOptions())
//	err = s.Ensure(ctx, mongots.CollectionSpec{Name: "plant-a.press", ExpireAfter: 90 * 24 * time.Hour})
//	res, err := s.Write(ctx, "plant-a.press", docs) // docs: samples with their partition and offset
//	for _, f := range res.Failed {
//		... // f.Doc to the dead-letter topic, unless f.Transient
//	}
//	err = s.SaveOffsets(ctx, "sink", "plant-a.press", next)
//
// A Store is safe for concurrent use. It does not own the client.
//
// # Collections
//
// Each topic <factory>.<class> has one time-series collection of the same
// name (plant-a.press) in one database, "factorywire" by default. Ensure
// creates it with
//
//	{create: "plant-a.press",
//	 timeseries: {timeField: "ts", metaField: "meta", granularity: "seconds"},
//	 expireAfterSeconds: NumberLong(7776000)}
//
// granularity is "seconds" (default), "minutes" or "hours", matched to how
// often one device is polled. Instead of a granularity, custom bucketing
// (MongoDB 6.3 or later) sets bucketMaxSpanSeconds and
// bucketRoundingSeconds to one value (CollectionSpec.BucketMaxSpan).
// expireAfterSeconds is present only with a TTL.
//
// Ensure is idempotent. A collection that exists must be time-series with
// timeField "ts", metaField "meta" and the configured bucketing: a regular
// collection, a view, other fields or other bucketing are a
// *CollectionError naming database.collection and what differs, and
// nothing is written into it. A different TTL is set with
// {collMod: "plant-a.press", expireAfterSeconds: NumberLong(n)} (or "off"
// for none) and logged. A different granularity is an error: MongoDB can
// only increase one (seconds → minutes → hours, by collMod), never
// decrease it or switch bucketing, so changing it is left to an operator,
// and the error says how.
//
// # Documents
//
// One sample is one document:
//
//	{_id: ObjectId("…"),                       // the driver's; not unique in a time-series collection
//	 ts: ISODate("2026-12-01T01:02:03.456Z"),  // timeField: the sample's time, milliseconds
//	 meta: {factory: "plant-a", class: "press", device: "press-07",   // metaField: identity,
//	        tags: {asset_id: "P-1107", line: "line-3"},               //   static tags and
//	        units: {pressure: "bar", setpoint: "bar"}},               //   units only
//	 seq: NumberLong(42),                      // the device's sequence number
//	 src: {p: 3, o: NumberLong(18734)},        // Kafka partition (int32) and offset (int64)
//	 fields: {cycle_count: NumberLong(1234567), model: "PX-200",
//	          pressure: 12.5, running: true, setpoint: 20.0},
//	 error_count: 1,                           // NumberInt: the entries of errors
//	 errors: {temperature: "modbus exception 2 (illegal data address)"}}
//
// Keys are written in this order, the keys of tags, units, fields and
// errors sorted. tags and units are the sample's (schema version 2: the
// device's static tags from the gateway config, and the class's units from
// its register map), each omitted when empty, as in a sample of version 1.
// Query by tag with {"meta.tags.line": "line-3"}; a filter on meta is
// answered per bucket. error_count is
// always present, 0 without errors, so that "samples with errors" is the
// filter {error_count: {$gt: 0}}, which MongoDB answers by skipping every
// bucket whose control.max.error_count is 0, index or not. fields is
// omitted when no field has a value (every read of the poll failed), as
// errors is when none failed. meta holds only what
// identifies the series, never what changes per sample: MongoDB groups
// documents into buckets by meta, so a changing value there would give
// each sample a bucket of its own. src is a measurement for the same
// reason. Tags and units are static per device and class, so they belong
// in meta: a device's documents still share buckets, and MongoDB stores
// them once per bucket instead of once per document. Changing a device's
// tags (or a class's units) starts new buckets for it from then on, as a
// new series; the shard key and the index use meta.device alone, so
// queries by device see both. Values: a bool is a BSON boolean, an int64 a BSON int64, a
// uint64 up to 2^63-1 a BSON int64, a float64 a BSON double, a string a
// BSON string. A value with no faithful BSON form is not refused with its
// whole sample; Write moves it under errors, with why, as the devices
// package does with a NaN read from a device:
//
//   - a uint64 above 2^63-1 has no BSON integer. A Decimal128 would hold
//     it, but every reader of the field would then meet two types, and
//     FerretDB has no Decimal128; in practice such a value is a register
//     map with the wrong type or byte order. The message is OverflowPrefix
//     followed by the exact digits.
//   - a NaN or infinite float64, which DecodeSample never produces
//     (JSON has none): "devices: value is not a finite number: NaN", as
//     devices.ErrNotFinite says it. MongoDB would store it, but it would
//     poison $avg, and FerretDB refuses it (infinities) or drops the
//     connection (NaN).
//
// seq above 2^63-1 is refused (ErrInvalidDoc): no device polls that
// often. So are tags devices.ValidateTag refuses (or more than
// devices.MaxTags) and a units key that cannot be a field name, which
// DecodeSample never produces. A document over 4 MB (MaxDocBytes, the most the manual allows a
// time-series measurement) is refused before it is sent (ErrTooLarge), and
// so is one the server refuses with BSONObjectTooLarge (10334: its bucket
// would pass 16 MB).
//
// Documents have no deterministic _id. A time-series collection does not
// enforce _id uniqueness, so a deterministic _id would not prevent
// duplicates; it would only make the FerretDB stand-in, which does enforce
// it, behave unlike MongoDB. Replays are detected by src instead.
//
// # Writing
//
// Write sorts a batch by device and time, which fills buckets best, and
// sends unordered insert commands of at most 1000 documents and 8 MiB
// (Options.MaxBatchDocs, MaxBatchBytes): the bytes stay far below
// MongoDB's 48 MB message, so the driver never splits a command, and a
// failed command costs at most one chunk to resend. A document refused by
// the server (a write error) or by Write (an invalid sample,
// ErrInvalidDoc) is reported in WriteResult.Failed and does not stop the
// others. A network error, a write concern error or a command error is
// returned: the batch's fate is then partly unknown. A command refused
// for a cause that retrying cannot remove is a *CommandError naming the
// namespace, the command and the fix (Unauthorized, AuthenticationFailed,
// BadValue, FailedToParse, InvalidOptions, an unknown field (40415),
// IndexOptionsConflict, IndexKeySpecsConflict, CannotCreateIndex,
// NotImplemented, CommandNotFound, UnknownReplWriteConcern,
// UnsatisfiableWriteConcern, …); every method returns one for those.
// IsTransient tells the errors worth retrying: network errors, timeouts, no selectable
// server, the labels RetryableWriteError, TransientTransactionError and
// NetworkError, and the codes of a primary stepping down or shutting down
// (NotWritablePrimary, PrimarySteppedDown, InterruptedDueToReplStateChange,
// ShutdownInProgress, …), WriteConflict and WriteConcernFailed.
//
// # Replay detection
//
// A sink that stops between Write and SaveOffsets, or retries a batch
// after Write returned an error, writes records a second time, and a
// time-series collection stores them twice. Before writing such a batch,
// UnstoredSamples drops the documents whose sample (device, seq, ts) is
// already stored, whatever offset it came from (see its documentation for
// the query); it is exact even after a partial write, and also catches a
// sample a gateway delivered twice. Which records may have been written is
// not read from the collection: the sink records, before each write, how
// far it may write (MarkAttempted), and a record produced after the sink
// took its partition cannot have been written by anyone. LastSeqs returns
// each device's newest sample with one "last point" aggregation per 1,000
// devices.
//
// Neither reads more of the collection when the history grows: MongoDB
// serves a sort on a time-series collection with an index only on the
// metaField and the timeField, so a query sorted on a measurement (as
// src.o) would read every bucket of the retention.
//
// # Write and read concerns
//
// Every write uses Options.WriteConcern, majority unless configured
// otherwise. A write acknowledged by the primary alone is rolled back
// when that primary fails before a majority copied it; the sink, told the
// samples were stored, would never write them again. The reads that
// decide what is stored (UnstoredSamples, LastSeqs, LoadCheckpoints) use
// read concern majority: on the primary after a majority-acknowledged
// write, such a read sees it, and it never sees a write that a failover
// may still undo. With a weaker write concern they use read concern local,
// because a majority read could miss an acknowledged write that is not
// yet replicated.
//
// # Indexes
//
// Ensure creates one index with createIndexes, named as MongoDB names it
// by default so that one made by hand counts:
//
//	meta.device_1_ts_-1  {meta.device: 1, ts: -1}
//	    Equality on the device, then time (ESR: equality, sort, range).
//	    Serves Latest and LastSeqs ($sort {meta.device: 1, ts: -1} then
//	    $group $first: the "last point" pattern, a DISTINCT_SCAN that
//	    needs the time key descending; the {meta: 1, ts: 1} index MongoDB
//	    6.3 and later create by themselves does not serve it), Range and
//	    Window ({meta.device: d, ts: range}, the descending key walked
//	    either way), and UnstoredSamples.
//
// Ensure then drops the index src.p_1_src.o_-1 ({src.p: 1, src.o: -1}),
// which factorywire created before the checkpoint recorded how far a write
// may have gone: {dropIndexes: coll, index: "src.p_1_src.o_-1"}, logged
// when it existed (IndexNotFound, 27, otherwise). A user without the
// privilege gets a warning: the index costs inserts, not correctness.
//
// No other index is created, because no query needs one: sink_offsets is
// read by group and topic and holds a few documents per partition.
//
// # TTL
//
// expireAfterSeconds on a time-series collection deletes whole buckets,
// once every document in a bucket has expired, so a document lives at
// least the TTL and at most the TTL plus the bucket's span (granularity
// seconds: one hour; minutes: a day; hours: 30 days; or
// bucketMaxSpanSeconds). A document with a far-future ts keeps its bucket,
// and any sample sharing that bucket, until that future time plus the TTL,
// which is why the sink refuses samples from the future. A document whose
// ts is already older than the TTL goes at the next pass. Deletion runs in
// the background about once a minute, not at the expiry instant.
//
// # Offsets checkpoint
//
// The regular collection sink_offsets holds, per consumer group, topic and
// partition, the next offset to read and how far a write may have gone:
//
//	{_id: "sink/plant-a.press/3", group: "sink", topic: "plant-a.press",
//	 partition: 3, offset: NumberLong(18735), attempted: NumberLong(23734),
//	 updated_at: ISODate("…")}
//
// SaveOffsets sets offset after a batch is stored; MarkAttempted raises
// attempted ($max) before a write that may store records past it. Both are
// one unordered bulk write of updateOne with upsert, filter {_id}.
// LoadCheckpoints reads them with find {group, topic}: a few documents
// per partition, whatever the history. A topic has no '/' and no '_', so
// the _id is unambiguous and sink_offsets is never a topic's collection.
//
// # Device status
//
// The regular collection device_status holds one entry per device, the
// newest sample the sink stored and how long the device has had errors:
//
//	{_id: "plant-a.press/press-07", topic: "plant-a.press", factory: "plant-a",
//	 class: "press", device: "press-07", tags: {…}, units: {…}, ts: ISODate("…"),
//	 seq: NumberLong(42), fields: {…}, error_count: 1, errors: {…},
//	 errors_since: ISODate("…"), updated_at: ISODate("…")}
//
// (tags and units as under meta in the samples, absent when empty.)
//
// UpdateStatus writes entries, only forward in time (see its
// documentation; the sink does every summary_interval); ReadStatus reads entries by _id, Status a topic's by _id
// range. It answers "the latest value of each device" and "which devices
// have errors now, since when" in time proportional to the devices, and
// gives the sink each device's last seq at start-up without reading the
// samples.
//
// # Rollups
//
// The regular collections <topic>_1m and <topic>_1h hold per device and
// minute or hour the count, minimum, maximum, sum, first and last of every
// numeric field (Rollup documents the shape). Rollup.Fold adds a sample
// only if it comes after the last one folded, by (ts, seq), and
// SaveRollups replaces a document only over the revision it was read at,
// so a writer that folds every sample it consumes, in per-device order,
// counts each exactly once across replays and crashes without
// transactions. Each has the index {meta.device: 1, t: 1} and, with a TTL,
// a TTL index on t. RollupWindow answers Window's question from them.
//
// # Queries
//
// Latest, Window and Range are documented with the exact pipeline or
// filter they send. Window's $match keeps values of BSON number types
// ($type: "number"), so its count is that of the field's numeric values,
// and bools and strings do not enter $min and $max.
//
// # Stand-in mode
//
// FerretDB, which tests and the demo embed instead of MongoDB, has no
// time-series collections, TTL or collMod, no $first, $avg, $min, $max,
// $dateTrunc or $replaceRoot, and enforces unique _ids. With
// Options.TimeSeries false (the zero Options; DefaultOptions sets it
// true), Ensure creates plain collections ({create: name}) with the same
// index, accepts an existing plain or time-series collection, ignores
// ExpireAfter (nothing ever expires) and the bucketing, sends no collMod,
// and logs a warning each time. Documents, Write, replay detection, the
// checkpoint and Range behave the same; LastSeqs, refused $first, asks one
// device at a time; Latest and Window fail on FerretDB whatever the mode.
// FerretDB 1.24 (SQLite) answers every filter except _id equality by
// reading the whole collection, so on the stand-in a query costs what the
// collection holds, whatever the indexes: bounded work there means finds
// and updates by _id alone, which the _id index serves (with the change
// factorywire carries in third_party/ferretdb: the release read the whole
// table for those too). So in the stand-in mode the guarded writes (a
// status entry only forward in time, a rollup over the revision it was
// read at) read the stored ts or revisions first and then write by _id
// alone: about 7× cheaper there than a guard in each update's filter,
// which FerretDB answers by reading the collection per update. The
// status entries' ts are read with one find {_id: {$in}} per 1,000 (the
// status collection holds a document per device), the rollups' revisions
// with one find by _id each (a rollup collection gains a document per
// device and period, and nothing expires on the stand-in).
// The read and the write are not one atomic step, as FerretDB's own
// update is not. Update commands carry at most 24 statements: FerretDB
// holds a connection of its pool of 100 per statement until the command
// ends, so commands that together hold 100 never end (the sink sends two
// at a time). Never use the stand-in mode against a production
// MongoDB: it would create collections that MongoDB cannot later turn into
// time-series ones.
//
// # Loss check
//
// Gaps reads the seq and ts of each device's samples in a time range (one
// find, sorted by the index {meta.device: 1, ts: -1}, which the stand-in
// runs too) and reports the seqs missing, the duplicates and the restarts
// of a gateway whose spool was wiped; its documentation gives the exact
// command. sink query gaps prints it.
package mongots

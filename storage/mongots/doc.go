// Package mongots stores factorywire samples in MongoDB time-series
// collections: collection and index management (Ensure), the bulk writer
// (Write), replay detection (MaxStoredOffsets, UnstoredSamples), the sink's
// offsets checkpoint (LoadOffsets, SaveOffsets) and the analytics queries
// (Latest, Window, Range). It needs MongoDB 6.0 or later; 8.0 is
// recommended.
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
//	 meta: {factory: "plant-a", class: "press", device: "press-07"},  // metaField: identity only
//	 seq: NumberLong(42),                      // the device's sequence number
//	 src: {p: 3, o: NumberLong(18734)},        // Kafka partition (int32) and offset (int64)
//	 fields: {cycle_count: NumberLong(1234567), model: "PX-200",
//	          pressure: 12.5, running: true, setpoint: 20.0},
//	 errors: {temperature: "modbus exception 2 (illegal data address)"}}
//
// Keys are written in this order, field names sorted. meta holds only what
// identifies the series, never what changes per sample: MongoDB groups
// documents into buckets by meta, so a changing value there would give
// each sample a bucket of its own. src is a measurement for the same
// reason. Values: a bool is a BSON boolean, an int64 a BSON int64, a
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
// errors is omitted when empty. seq above 2^63-1 is refused
// (ErrInvalidDoc): no device polls that often.
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
// returned: the batch's fate is then partly unknown. IsTransient tells
// the errors worth retrying: network errors, timeouts, no selectable
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
// sample a gateway delivered twice. MaxStoredOffsets returns the highest
// stored offset per partition,
//
//	find {src.p: p} sort {src.o: -1} limit 1
//
// which proves the batch holding it was written, but not every lower
// offset: Write orders by device and time and inserts unordered, so a
// failed batch may have stored a high offset of a partition and not a
// lower one. Skipping everything up to it is safe only after a Write that
// returned no error.
//
// # Indexes
//
// Ensure creates two indexes, one createIndexes command each (FerretDB
// 1.24 crashes a connection that recreates two existing indexes in one),
// named as MongoDB names them by default so that one made by hand counts:
//
//	meta.device_1_ts_-1  {meta.device: 1, ts: -1}
//	    Equality on the device, then time (ESR: equality, sort, range).
//	    Serves Latest ($sort {meta.device: 1, ts: -1} then $group $first:
//	    the "last point" pattern), Range and Window ({meta.device: d, ts:
//	    range}, the descending key walked either way), and LastSeqs and
//	    UnstoredSamples.
//	src.p_1_src.o_-1     {src.p: 1, src.o: -1}
//	    Serves MaxStoredOffsets (the highest stored offset of a
//	    partition). On a time-series collection
//	    MongoDB keeps an index on measurements per bucket (the bucket's
//	    minimum and maximum), so it narrows the buckets read.
//
// No other index is created, because no query needs one: sink_offsets is
// read by group and topic and holds a few documents per partition. MongoDB
// 6.3 and later also create {meta: 1, ts: 1} on every new time-series
// collection by themselves.
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
// The regular collection sink_offsets holds the next offset to read per
// consumer group, topic and partition:
//
//	{_id: "sink/plant-a.press/3", group: "sink", topic: "plant-a.press",
//	 partition: 3, offset: NumberLong(18735), updated_at: ISODate("…")}
//
// SaveOffsets upserts one document per partition with write concern
// majority; LoadOffsets reads them with find {group, topic}. A topic has
// no '/' and no '_', so the _id is unambiguous and sink_offsets is never
// a topic's collection.
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
// two indexes, accepts an existing plain or time-series collection, ignores
// ExpireAfter (nothing ever expires) and the bucketing, sends no collMod,
// and logs a warning each time. Documents, Write, replay detection, the
// checkpoint and Range behave the same; Latest and Window fail on FerretDB
// whatever the mode. Never use the stand-in mode against a production
// MongoDB: it would create collections that MongoDB cannot later turn into
// time-series ones.
package mongots

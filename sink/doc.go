// Package sink is the engine behind cmd/sink: a member of a Kafka consumer
// group that reads the samples gateways produce and writes them to
// MongoDB time-series collections (storage/mongots), effectively once.
//
// # Data path
//
//	<factory>.<class> ──poll──▶ batch ──decode, check──▶ dedupe ──▶ Write ──▶ SaveOffsets ──▶ commit
//	                                      │ poison                     │ rejected
//	                                      ▼                            ▼
//	                                <topic>.dlq (acks=all)       <topic>.dlq
//
// The sink consumes every topic [<prefix>.]<factory>.<class> of the
// configured factories (kgo.ConsumeRegex, never a .dlq topic), or the
// topics of an explicit pattern, with franz-go's cooperative-sticky
// balancing. One topic is one collection of the same name, created on
// first sight (mongots.Store.Ensure) with the class's granularity or
// bucket span and TTL from the config.
//
// A batch is what the consumer has fetched when the previous batch is
// done, up to batch.max_records records (default 5000): a write starts as
// soon as there are records and no batch is in progress, and the records
// that come meanwhile make the next batch, so batches grow with the load,
// not with a timer. (The broker answers a fetch as soon as records come,
// so nothing waits for the fetch's max wait either.) batch.max_wait, 0 by
// default, makes a batch wait that long after its first record for more,
// up to max_records: fewer, larger writes at low rates, each sample
// waiting up to that much longer; before issue 16 it was 500 ms, and a
// config that sets it keeps the wait. For each batch, in this order:
//
//  1. every record is decoded (by the pipeline's devices.Decoder, as
//     devices.DecodeSample decodes) and checked; a poison record is
//     produced to <topic>.dlq and waited for;
//  2. samples already stored are dropped (below);
//  3. each partition whose records in the batch pass its attempted mark
//     in the checkpoint gets the mark raised to the batch's last offset
//     plus max_records (mongots.Store.MarkTopicsAttempted, every topic in
//     one command), before anything is written: at a steady rate one
//     batch in many writes it; then the samples are written, one Write
//     per collection; documents MongoDB refuses for good go to <topic>.dlq; then the
//     samples are folded into the device status and the rollups (below),
//     written beside the pipeline every summary_interval;
//  4. each partition's next offset, or its hold while status or rollups
//     folded from it are not written, is saved in MongoDB
//     (SaveTopicOffsets, every topic in one command: the checkpoint that
//     decides where a partition starts), then committed to the broker
//     so lag tools see it (a failed commit is only logged); an offset
//     equal to the one saved last (while a hold keeps it back) is neither
//     saved nor committed again;
//  5. the group may rebalance.
//
// Autocommit is off and rebalances wait for the batch in progress
// (kgo.BlockRebalanceOnPoll, AllowRebalance after step 4), so no record of
// a partition is written after the partition was revoked. SIGTERM ends the
// batch in progress (for up to shutdown_timeout), commits it and leaves
// the group.
//
// # Effectively once
//
// MongoDB holds one document per sample: per device, each seq once, with
// the record's partition and offset as source coordinates. Kafka delivers
// at least once and so do gateways (after a crash a gateway produces again,
// at new offsets, samples it had produced), so the sink drops what it has
// stored already:
//
//   - Where a partition starts. When a partition is assigned it starts at
//     the higher of MongoDB's saved next offset and the broker's committed
//     offset (kgo.AdjustFetchOffsetsFn). Not past what a write may have
//     stored: Write inserts unordered, sorted by device, so a batch cut
//     short by a crash may have stored a high offset and not a lower one;
//     records from the checkpoint on are consumed again and checked. A
//     group reset at the broker to earlier offsets therefore does not
//     replay anything: delete the group's entries of the sink_offsets
//     collection too (a replay stores nothing twice). A reset to later
//     offsets takes effect.
//   - Replayed records. Each partition has a floor, the highest offset
//     that may have been written: when it is assigned, the lower of the
//     checkpoint's attempted mark (raised before every write that may pass
//     it, max_records ahead: after a stop the next owner checks up to that
//     many records of a partition that no write reached) and the
//     partition's end offset minus one (a record produced after the
//     assignment was never consumed, so never written), raised by every
//     batch attempted since. A record at or below the floor may be stored:
//     it is written only if no document has its sample
//     (mongots.Store.UnstoredSamples: same device, seq and ts, whatever
//     the offset). Counted as
//     factorywire_sink_duplicates_skipped_total{rule="offset"}.
//   - Re-delivered samples. Per device the sink keeps one more than the
//     highest seq that may be stored, read lazily the first time the
//     device shows up in a partition this member owns (the devices of a
//     batch together: one "last point" aggregation per 1,000 devices,
//     mongots.Store.LastSeqs), and raised by every batch. A sample whose
//     seq is below it is checked the same way and dropped when stored, or
//     when the same sample came earlier in the batch. Counted as
//     {rule="seq"}. A device whose seq started again (its gateway's spool
//     was wiped) is not lost: its samples carry new timestamps, so they
//     are not found and are written, at the cost of one query per batch
//     until its seq passes the old one.
//   - A failed write. After a write failed, part of it may be stored, and
//     when the command may have reached MongoDB (anything but "no server
//     could be selected") the server may still apply it until its
//     deadline, which the driver sends as maxTimeMS. The sink retries it
//     only after that deadline and a second more, dropping first the
//     documents already stored the same way. A batch given up (for a
//     rebalance, or at the end of shutdown_timeout) waits out the deadline
//     as well, so that the write cannot land while the next owner checks.
//
// All marks may overestimate what MongoDB holds, which only costs a query,
// never underestimate it. This relies on per-device order within a
// partition (records keyed by device id, one partition per device, so a
// sample never arrives after a later one of its device except as a
// re-delivery) and on each device's clock not going back: the newest
// document by ts must carry the device's highest seq. It also relies on
// one writer per partition: a member evicted from the group (frozen
// longer than kafka.session_timeout, or blocking a rebalance longer than
// kafka.rebalance_timeout) may finish the batch it holds while the
// partition's next owner starts, and the next owner checks only what it
// reads below the floor it read at assignment. While a rebalance waits
// for a batch whose write keeps failing, the sink gives the batch up (its
// partitions' fetch positions go back to its first records) instead of
// retrying, so the rebalance completes and no evicted member writes late.
//
// # Device status and rollups
//
// Each batch's samples are also folded, in memory, into each device's
// entry in device_status (its newest sample, error count and the start of
// its current run of samples with errors: sink query latest, sink query
// status) and into its minute and hour rollups (<topic>_1m, <topic>_1h:
// sink query window). Both are written every summary_interval (default
// 5s) and when the sink stops, rather than at every batch: each costs an
// update per device (per device and period for the rollups). They are
// written beside the pipeline, not in its way: when they are due, a
// write of copies of the entries and rollups folded since the last one
// starts on a goroutine of its own (one at a time), the next batches are
// written meanwhile and fold into the pipeline's own, and its outcome is
// applied between two batches. Before each of its commands it waits for
// the batch whose samples are being written, if any, to end (at most 1 s
// in all per write, so that batches back to back cannot hold it off): on
// the stand-in, whose SQLite takes one writer at a time, a batch's insert
// otherwise waited behind the updates. Until they are written, the checkpoint
// and the commit stay at the partition's hold, the first sample folded
// into something not yet written (the lower of the write's and the
// batches' since), so a crash, a lost partition or a refused write loses
// nothing from them: the records from the hold are consumed again (all
// at or below the floor, so checked against the samples stored) and
// folded again into what MongoDB holds. A write that fails is retried,
// and one given up (for a rebalance, or at the end of shutdown_timeout)
// leaves its entries and rollups to the next. A rebalance callback waits
// for the write in progress (a failing one gives up) before the
// partitions go: nothing of a partition is written after it was revoked.
//
// Exactly once without transactions: a rollup records the (ts, seq) of
// the last sample folded in and folds only later ones (mongots.Rollup.Fold,
// per-device order making every sample of a device arrive after those
// before it), and it is replaced whole over the revision the sink read
// (mongots.Store.SaveRollups): a rollup another writer changed meanwhile
// conflicts, and its partition is consumed again from the hold (the
// write beside the pipeline finds the conflict; when it lands, the
// batch then polled is consumed again too). A rollup the sink does not
// hold is read before samples are folded into it, but for a device's bin
// later than the one held, of a record past the floor: no sink wrote
// that one, every earlier sample of the device having come through this
// sink. Records at or below the floor (a killed sink may have written
// their rollups past its checkpoint, in several bins of a device), and
// after a conflict those consumed again, read every bin: otherwise the
// sink would take a stored bin for new, conflict on inserting it, consume
// the partition again, and do the same again for ever. Status
// entries only move forward in time. Rollups are configured per class
// (collections.*.rollups: enabled, minute_expire_after,
// hour_expire_after); set enabled: false for a class nobody queries over
// long windows. TestCrashLoop checks that every sample is counted once in
// the rollups through 12 SIGKILLs.
//
// # Start-up cost
//
// What the sink reads from MongoDB between taking a partition and its
// first write does not grow with the history stored: the checkpoint (a
// few documents per partition), the partition's end offset from the
// broker, and the newest sample of each device the first batch holds (one
// indexed aggregation per 1,000 devices, a document per device). It never
// sorts the collection on a measurement, which MongoDB could only answer
// by reading every bucket of the retention. TestStartupReadsBounded
// counts these commands and documents with 1× and 100× the history.
//
// # Failover
//
// Every write (samples, checkpoint) has write concern majority
// (mongodb.write_concern), and the reads that decide what is stored have
// read concern majority. This prevents the following loss: a primary
// acknowledges an insert that only it holds; it fails before a secondary
// copies the insert; a secondary becomes primary without the documents;
// the old primary rejoins and rolls the insert back. With w: 1 the sink
// was told the samples were stored, saved its offsets past them and never
// writes them again: they are lost without a trace. With majority, an
// acknowledged insert survives any failover the replica set survives, and
// an insert cut off by one (a network error, PrimarySteppedDown) is
// retried, after dropping what the new primary holds of it. A weaker write
// concern needs mongodb.allow_weak_write_concern: true; the sink then
// warns at start and its checks read with read concern local.
//
// # Dead letters
//
// A record that is not a sample this sink can store goes to <topic>.dlq,
// produced with acks=all: the original key, value, timestamp and headers,
// plus
//
//	dlq.original.topic      the topic
//	dlq.original.partition  the partition, decimal
//	dlq.original.offset     the offset, decimal
//	dlq.error.class         decode, schema-version, timestamp, too-old,
//	                        topic-mismatch, key-mismatch, too-large or
//	                        write-rejected (the Class… constants)
//	dlq.error.message       what is wrong
//
// Classes: not one JSON sample of schema version 1 or 2 with every
// required key (decode, or schema-version for another version: upgrade the
// sink, then replay the dead-letter topic, as docs/OPERATIONS.md shows); a ts before 1970-01-01, after
// 2038-01-19T03:14:07Z, or more than max_future_skew (default 1h) ahead of
// the broker's LogAppendTime, or of the sink's clock when the topic keeps
// the producer's time (MongoDB never expires a bucket holding such a date,
// so one bad clock would keep a whole bucket of good samples forever); a
// ts older than the collection's expire_after, or than max_past_skew
// when set, by the sink's clock (too-old: MongoDB would delete it at the
// TTL monitor's next pass, and nobody would know it existed); a sample
// whose factory or class is not its topic's (topic-mismatch); a
// record key that is not the sample's device (key-mismatch: the device's
// order across partitions is lost); a document over the 4 MB MongoDB
// allows a time-series measurement (too-large); a document MongoDB refuses
// for good (write-rejected). The sink goes on after each.
//
// The sink does not create dead-letter topics: creating them is the
// administrator's job (`broker topics create --factory F --classes …`
// creates each topic's .dlq unless given --no-dlq). While a dead letter
// cannot be produced (the topic is missing, the broker down) the sink
// retries it with backoff and commits nothing past the batch. Dead letters are delivered at least once: a
// batch consumed again after a crash produces its dead letters again.
//
// # Failures
//
// A failed MongoDB operation or a dead letter not acknowledged is retried:
// each attempt bounded by retry.attempt_timeout (20 s), waits doubling from
// retry.min_backoff (100 ms) to retry.max_backoff (10 s) with jitter,
// forever, each retry logged (a warning for a transient error: network,
// no primary, timeout; an error for one the sink does not know) and
// counted (factorywire_sink_transient_retries_total{op}). The sink does not
// poll meanwhile, so it holds one batch (plus what franz-go has fetched
// ahead), commits nothing and skips nothing. Errors that need a person
// stop the sink, with nothing of the batch committed and one error naming
// the collection, the command and the fix: MongoDB refusing the
// credentials or a command for a cause retrying cannot remove
// (mongots.CommandError: Unauthorized, a missing role, named in
// docs/OPERATIONS.md; AuthenticationFailed; BadValue, InvalidOptions or an
// unknown field such as bucketRoundingSeconds on MongoDB 6.0;
// IndexOptionsConflict, IndexKeySpecsConflict, CannotCreateIndex; an
// unknown write concern; time_series: true against the FerretDB stand-in,
// whose error names mongodb.time_series), a collection of the wrong shape
// (mongots.CollectionError), a stored document of an unexpected shape
// (mongots.ErrCorruptDoc); and a broker
// refusing the connection for a cause retrying cannot fix (a wrong
// password or user, a certificate of an unknown authority or for another
// name: kafkaclient.ConnError), after which the sink stops as at SIGTERM
// and Run returns the ConnError (sink run exits 1 with it).
//
// Residual risk: a sink killed (SIGKILL, power) while a write is in flight
// cannot wait out its deadline; if MongoDB applies that write only after
// the next owner of the partition checked what is stored (a server slower
// than a restart), those samples are stored twice.
//
// # HTTP
//
// HTTPListen serves /metrics (factorywire_sink_: records_consumed_total,
// samples_stored_total, batches_total, batches_abandoned_total,
// batch_records, write_seconds, dead_letters_total{topic,class},
// duplicates_skipped_total{topic,rule}, transient_retries_total{op},
// consumer_lag_records{topic,partition} from the fetches' high
// watermarks; Go runtime and process), /healthz (200
// while the process runs) and /readyz (200 once Run has started, no broker
// refuses the connection, and both the broker and MongoDB answer within
// 2 s).
package sink

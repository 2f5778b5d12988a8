// Package broker is factorywire's single-node, Kafka-wire-compatible broker:
// the embedded default that gateways produce to and sinks consume from, so a
// fresh machine runs the whole pipeline. Clients are unmodified Kafka
// clients (franz-go, librdkafka, sarama, kafka-go, kafkajs).
//
// # Structure
//
// New opens the data directory (locking it), recovers every partition log
// (storage/commitlog) and starts serving on Config.Listen. Each connection
// has one reader goroutine, which decodes requests with kmsg and runs their
// handlers in order, and one writer goroutine, which finishes them (waiting
// for an fsync, or for data in a long poll) and writes the responses in
// correlation-id order. A request that cannot be decoded closes only its
// connection. Each API key has its own file, NN_name.go, which opens with the
// versions it implements and its deviations from Kafka, and registers that
// range for ApiVersions; versions advertised are exactly those implemented.
//
// # Durability
//
// A partition is a commitlog.Log. Produce first decodes every record of the
// batch, decompressed (records.go), and refuses a malformed batch with
// INVALID_RECORD (CORRUPT_MESSAGE when its CRC does not match), so that
// nothing a consumer cannot parse is stored. With
// flush "always", it appends the batch (in the reader goroutine, so
// per-connection order is the append order) and the writer acknowledges it
// after commitlog.Log.Sync covers it; concurrent produces share fsyncs.
// The high watermark is the durable offset, so consumers never see a record
// a crash could take back.
// Idempotent producers are checked per partition against a window of their
// last five batches, rebuilt from the log's active segment on start, so a
// retry across a restart is still recognised.
//
// # Faults
//
// A storage fault stays in the partition it happened in. A failed write,
// fsync or segment roll (a full disk, too many open files, an I/O error)
// makes that partition answer produces with a retriable KAFKA_STORAGE_ERROR
// whose message names the partition and the cause; the next produce after
// the cause is gone heals the log (commitlog.Log.Heal) and is accepted, with
// no restart. Healing after a failed fsync removes what was written since
// the last good fsync (none of it was acknowledged), rebuilds the
// idempotent-producer state from the log, and a produce whose batch it
// removed is not acknowledged, so the producer's retry lands again. Each
// partition logs one error line when it starts failing and one when it
// heals, and counts every failure
// (factorywire_broker_partition_errors_total{topic,partition,cause}).
//
// A partition whose log cannot be opened at start-up (recovery found a
// corrupt segment: a damaged batch that is not a torn write) is offline:
// Metadata reports it LEADER_NOT_AVAILABLE with its replica offline, and
// produce, fetch and list offsets answer KAFKA_STORAGE_ERROR, while every
// other partition serves. The log line names the file, the byte and the
// repair command. The committed offsets' log is the broker's own partition:
// if it is corrupt, consumer groups are offline (FindCoordinator and
// ListGroups answer COORDINATOR_NOT_AVAILABLE, other group requests close
// their connection) while every partition serves produce and fetch. A fetch that meets corruption in a closed segment is
// answered KAFKA_STORAGE_ERROR (the consumer stops there instead of
// skipping data), and the corruption is logged and counted once per segment.
//
// # Consumer groups
//
// The broker is the coordinator of every group (coordinator.go, group.go):
// the classic protocol, one goroutine per group owning its state.
// Membership lives in memory; after a restart members rejoin. Committed
// offsets are durable: each commit is appended to an internal commit log
// and fsynced before it is acknowledged (offsets.go).
//
// Groups expire as in Kafka (offsets.retention.minutes, KIP-211): every
// OffsetsRetentionCheckInterval (default 10m) the coordinator deletes the
// offsets that expired under OffsetsRetention (default 7 days). An Empty
// group's offsets expire that long after it became Empty (or after their
// commit, if later); a group that never had members (standalone consumers,
// tools) loses each offset that long after its commit; a consumer group
// with members keeps the offsets of the topics its members subscribe to and
// loses the others that long after their commit. An Empty group left
// without offsets is deleted: ListGroups no longer lists it, DescribeGroups
// reports it Dead, OffsetFetch answers -1. Expiry writes tombstones, so it
// survives a restart; after a restart a group that only has offsets is
// Empty since its latest commit. Each expiry is logged at info and counted
// (factorywire_broker_expired_offsets_total,
// factorywire_broker_deleted_groups_total).
//
// # Data directory
//
//	DATA_DIR/
//	  .lock                 flock(2) held while a broker runs
//	  topics.json           catalog: cluster id, topics (name, id, partitions, config overrides)
//	  producer-ids          next unreserved producer id (reserved in blocks of 1000)
//	  TOPIC-PARTITION/      one commitlog directory per partition, as Kafka names them,
//	                        with producer-state.json (idempotent producers' windows)
//	  __consumer_offsets/   commitlog of committed offsets, compacted by rewrite
//	  acls.json             ACLs, read only with authorization enabled (aclstore.go)
//
// topics.json and producer-ids are replaced atomically (write, fsync,
// rename, fsync the directory). Deleting a topic removes it from the catalog
// first, then renames its partition directories to NAME.ID-delete and
// removes them; directories left so by a crash are removed at the next
// start.
//
// Open files: each partition keeps its active segment's three files open.
// Closed segments' files are opened when read, through one
// commitlog.FileCache shared by every log, which keeps at most
// max_open_closed_segments of them open (3 files each; segments being read
// stay open until the read returns) and closes those not read for
// closed_segment_idle; each one closed early to make room counts a
// max_open_closed_segments limit hit. The broker needs about 3 × partitions
// + 3 × max_open_closed_segments + connections file handles.
//
// # Authorization
//
// With Config.Authorization enabled, every handler checks the connection's
// principal and address against the ACLs with the operation Apache Kafka's
// KafkaApis checks for that API, and answers Kafka's codes (authz.go, and
// each NN_name.go's doc comment); decisions follow Kafka's
// StandardAuthorizer (acl.go) and read an immutable index that CreateAcls
// and DeleteAcls replace after the store is written. Disabled, nothing is
// checked and the ACL APIs answer SECURITY_DISABLED.
//
// # Limits
//
// One node (id 0) leads every partition: replication factor 1, leader epoch
// 0. Not implemented: transactions, log compaction, fetch sessions, the
// KIP-848 consumer protocol (groups use the classic JoinGroup protocol),
// SASL and TLS, so the broker must sit on a network whose clients are
// trusted (any client may create and delete topics).
//
// Malformed requests close their connection; sizes are bounded
// (MaxRequestBytes, MaxControlRequestBytes, FetchMaxBytes) and array counts
// cannot exceed the bytes that carry them. A tagged-field section cannot
// declare more tags than its bytes hold: the request header's is skipped by
// our own bounded code, the body's by kmsg (v1.15.1 stops at the end of the
// input; v1.15.0 looped once per declared tag, up to 2^32 times).
//
// Connections and memory are bounded by limits named as Kafka names them,
// each logged (once a minute per limit) and counted
// (factorywire_broker_limit_hits_total) when hit. A connection past
// max_connections or max_connections_per_ip is closed right after accept;
// one with no request in flight (a long-poll fetch is in flight) for
// connections_max_idle is closed. request_read_timeout and
// response_write_timeout are no-progress timeouts: a request gets
// request_read_timeout from its first byte and each write of responses
// response_write_timeout, extended by as much each time it passes with at
// least 64 KiB more transferred since it was set, or the connection is
// closed; a client must send and read at no less than 64 KiB per timeout,
// so one that trickles or stops reading is cut off and a slow but steady
// one is served. A request's
// announced size is reserved from queued_max_request_bytes before its body
// is read (the connection is not read while it waits, and beyond 1 MiB the
// body buffer grows only as bytes arrive) and given back once nothing
// references the body. Requests wait in arrival order, except that a
// request other than Produce (at most max_control_request_bytes) takes free
// bytes past those waiting as long as the first of them would not fit even
// without such small requests: a large request waiting for bytes that
// others hold does not stop every client's Metadata, Heartbeat and Fetch,
// and small requests cannot starve it. A fetch response's record bytes are reserved from
// queued_max_response_bytes when it is built and given back once it is
// written or dropped; a fetch that finds that budget short waits up to its
// max wait, then returns what fits (a batch larger than the whole budget is
// served alone). Only a fetch waits for one budget (response bytes) while
// it holds the other (its own request's bytes), and never beyond its max
// wait, so the two cannot deadlock. The gauges
// factorywire_broker_connections, _queued_request_bytes and
// _queued_response_bytes show what is in use.
//
// # Monitoring
//
// Registry holds the broker's Prometheus metrics (factorywire_broker_*;
// metrics.go, metrics_traffic.go): requests and the error codes of their
// responses by API, counted once per request by the connection's writer;
// bytes and records produced and fetched by topic; log size per partition;
// fsync latency (commitlog's Options.OnSync); connections, budgets, limits
// hit and storage faults. With Config.HTTPListen set, New also serves them
// on /metrics beside the Go runtime's and the process's, with /healthz and
// /readyz (http.go; docs/OPERATIONS.md lists every metric).
//
// Usage:
//
//	b, err := broker.New(broker.Config{...}) // from broker.DefaultConfig()
//	defer b.Close()
//	fmt.Println(b.Addr())
package broker

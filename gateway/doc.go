// Package gateway is the engine behind cmd/gateway: it polls Modbus devices
// (devices/modbus), stores every sample in a durable local spool, and
// forwards the spool to a Kafka-protocol broker.
//
// # Data path
//
//	Poller ──emit──▶ Spool.AppendEach (fsync) ──▶ forwarder ──produce──▶ <factory>.<class>
//
// The poller hands over the samples of a connection's scan together
// (modbus.EmitFunc: before it waits for that connection's next due time, and
// at least every 100 ms of a long scan); they are written to the spool in
// one append before the poller goes on, and the forwarder reads only what
// is fsynced. A process killed in the middle of a scan loses those polls
// only: their samples were never written, so their seqs are used again.
// With spool.sync "always" (the default since issue 16) every round of
// appends (a scan, or several connections' scans together: group commit)
// is fsynced, one fsync per topic, before the poller goes on, and the
// forwarder sends it as soon as the fsync returns: a sample waits for no
// timer, and nothing the broker got can be lost by the spool. With
// "interval" the spool fsyncs every spool.sync_interval (200 ms) and then
// wakes the forwarder, so a sample waits up to that long: a crashed or
// killed process loses nothing written (the data is in the page cache), a
// power cut or kernel crash loses at most the last 200 ms of polls, which
// were never forwarded, and seq then continues from the last durable sample
// as if those polls had not happened. cmd/gatewaybench -spool-sync always
// measured 3 to 10 % more CPU per sample than "interval" at 1,000 devices
// on 5 connections; docs/BENCHMARKS.md ("Issue 16: end to end") has the
// cost in the demo. The forwarder produces it with key = device id
// (Kafka's murmur2 partitioning, so one device stays on one partition and
// keeps its order), acks=all, idempotent, compressed with zstd (its
// fastest level) by default, record timestamp = sample time and header
// content-type: application/json.
//
// # The spool
//
// DataDir/spool/<topic>/ is a storage/commitlog log per topic: each record
// one sample in the JSON of devices/doc.go. Appends from every connection
// share their writes (and with sync "always" their fsyncs): while one round
// is being written, the samples that arrive meanwhile queue for the next. Beside
// the segments,
// forwarded.json is the forwarder's checkpoint:
//
//	{"offset": 4711, "seqs": {"press-01": 1234, "press-02": 1230}}
//
// offset: every record below it has been acknowledged by the broker; seqs:
// each device's last seq below it, in no particular order. The checkpoint is written at most once a
// second while the forwarder advances, at once when it catches up, when a
// segment is dropped for room and on a clean stop, through a temporary
// file, fsync and rename; then segments wholly below it are deleted. At start-up each device's next seq is the largest seq in the
// checkpoint or in the records above it, plus one, so seq stays continuous
// across restarts and crashes.
//
// Opening the spool verifies every batch of every topic log
// (commitlog.Repair, which reads the whole spool once) and moves a damaged
// range aside instead of refusing to start: its bytes go to
// SEGMENT.log.quarantine-BYTE beside the segment, an empty placeholder
// batch keeps the offsets contiguous, the range is logged at error level
// with the segment file, the byte position, the offsets and the quarantine
// file, and counted in
// factorywire_gateway_spool_quarantined_samples_total{topic,file,byte}.
// Its samples are lost (their seqs are a gap downstream); every other
// sample is forwarded, and polling goes on. A segment damaged while the
// gateway runs is found when the forwarder reads the damaged batch (every
// read checks each batch's CRC): the forwarder logs it with file and byte,
// and repairs that topic's log the same way at once (its appends wait for
// the repair, other topics go on), then forwards the rest. If that repair
// fails, the topic's forwarding waits and retries (counted in
// produce_errors_total) while polling goes on into the spool.
//
// Delivery from the spool to the broker is at least once: the forwarder
// produces up to 1 MiB of the spool at a time and moves the checkpoint
// after every record of it is acknowledged. After a crash (SIGKILL, power)
// the records acknowledged since the last checkpoint written (at most about
// a second of them) are produced again;
// they are the same samples, with the same (device, seq). A clean stop
// (SIGTERM) waits up to 5 s for the forwarder to deliver the spool and
// leaves the rest there for the next start.
//
// When the broker cannot be reached the forwarder retries from its
// checkpoint with a backoff from 100 ms to 10 s, and the spool grows. One
// forwarding attempt (up to 1 MiB of the spool) is bounded by
// kafka.delivery_timeout (default 2m), counted from its start: past it
// the producer gives its records up as soon as that is safe for an
// idempotent producer, the attempt fails (logged with the topic and
// offset, counted in factorywire_gateway_produce_errors_total), the
// samples stay in the spool, and the next attempt starts again from the
// checkpoint, so forwarding resumes once the cause goes away. When
// the spool reaches spool.max_bytes, spool.when_full decides:
//
//   - drop_oldest (default): the oldest unforwarded segment of the largest
//     topic is dropped (about an eighth of max_bytes), counted in
//     factorywire_gateway_spool_dropped_samples_total and logged; the seqs
//     of the dropped samples stay used, so the gap is visible downstream;
//   - pause_polling: Append blocks until the forwarder frees room; the
//     devices of the blocked connection are not polled meanwhile (their due
//     times are skipped), counted in factorywire_gateway_spool_full_waits_total.
//     Nothing is dropped, and no sample is taken that could not be stored.
//
// A full disk (or any failed write or fsync of a spool log) gets the same
// policy instead of stopping the gateway: the log refuses appends until
// commitlog.Log.Heal brings it back (tried again at each append, paced by
// its own backoff). With drop_oldest the first failure drops the oldest
// unforwarded segment to free space, and the samples that still cannot be
// stored are dropped, counted in spool_dropped_samples_total and logged
// (at warn once, then at debug until an append succeeds); polling goes on.
// With pause_polling the connection's polling waits until the disk takes
// the samples again, counted in spool_full_waits_total; nothing is lost.
// Samples written but not fsynced when an fsync failed are removed by the
// heal and counted as dropped.
//
// When a broker refuses the connection for a cause retrying cannot fix (a
// wrong password or user, a certificate of an unknown authority or for
// another name, a refused client certificate: kafkaclient.ConnError),
// polling goes on into the spool as in an outage; the cause is logged once
// (again only if it changes or after the broker was reached),
// every refused attempt is counted in
// factorywire_gateway_kafka_connection_errors_total{cause}, and /readyz
// answers 503 with the broker, the mechanism, the cause and the fix. A
// gateway restarted with the right kafka block forwards the spool in order.
//
// # Connections
//
// A connections entry is a modbus.ConnConfig (devices/modbus documents the
// rules behind each key); its devices name it in their connection key:
//
//	key                     default      meaning
//	name                    address      unique; devices[].connection refers to it
//	transport               tcp          tcp: Modbus TCP (MBAP), to a device or a TCP-to-RTU gateway
//	                                     rtu: Modbus RTU on a serial port of this machine
//	                                     ascii: Modbus ASCII on a serial port of this machine
//	                                     rtu_over_tcp, ascii_over_tcp: RTU or ASCII framing over TCP, to a
//	                                     serial device server in raw/transparent mode (Moxa NPort "TCP server")
//	address                 -            host:port for tcp, rtu_over_tcp, ascii_over_tcp (no default port:
//	                                     Modbus TCP's is 502, a device server's its own, 4001 on a Moxa's
//	                                     first port); the device path for rtu and ascii (/dev/ttyUSB0)
//	baud_rate               19200        rtu and ascii only, bit/s
//	data_bits               8 (rtu),     rtu and ascii only, 7 or 8
//	                        7 (ascii)
//	parity                  E            rtu and ascii only, N, E or O (with N the specification asks for stop_bits 2)
//	stop_bits               1            rtu and ascii only, 1 or 2
//	timeout                 1s           per request, connect included (1ms..1m)
//	busy_tries              3            sends of a read while the device answers exception 6 (1..10)
//	busy_backoff            50ms         wait before the first busy retry, doubling
//	reconnect_min           100ms        wait after a failed connect, doubling, jittered
//	reconnect_max           10s          cap of that wait
//	pause_between_requests  0s           quirk: least time from one reply to the next request (0..10s)
//	pause_after_connect     0s           quirk: least time from a connect to the first request (0..10s)
//	close_after_scan        false        quirk: close the connection after each scan
//
// The serial keys on a TCP transport are an error naming the connection
// and the key (set them on the device server). On every transport but tcp
// a device's unit must be 1..247 (0 is a serial-line broadcast, which no
// device answers: the poller refuses it).
//
// # Report by exception
//
// Off by default: every successful poll is a sample. A class entry of
// report_by_exception, or a device's own (which overrides its class's
// deadbands field by field, and its max_silence), makes the poller ask the
// device's filter (modbus.Device.Report) about each polled sample. The
// sample is sent when it is the device's first since the start, when
// max_silence (default 1m; 0s: never forced) has passed since the last
// sample sent (poll times), when a field appeared, went, changed kind or
// its error changed, or when a field moved from its value in the last
// sample sent by more than its deadband: absolute (|v - last| > absolute)
// or percent (|v - last| > percent/100 × |last|); a field without a
// deadband, a bool or a string counts any change. Measuring from the last
// sample sent, not the last polled, keeps a slow drift from going unsent.
// A suppressed sample takes no seq (the next sample sent has the seq it
// would have had), so seq still counts samples sent without a gap; it is
// counted in factorywire_gateway_device_suppressed_samples_total.
//
// # Tags and units
//
// A device's tags are static key → value pairs from the config (line,
// location, asset id), carried by each of its samples (schema version 2,
// devices/doc.go) and stored by the sink in MongoDB under meta.tags:
//
//	tags: {site: plant-a-north}          # every device (Telegraf's global_tags)
//	devices:
//	  - {id: press-01, class: press, connection: press-line-1, interval: 500ms,
//	     tags: {line: line-3, asset_id: P-1107}}   # wins over the top-level tag of the same key
//
// A key is 1 to 64 of [a-z0-9_] starting with a letter, as a field name
// (it becomes a MongoDB field name); a value is 1 to 256 bytes of UTF-8
// (a number or bool in YAML is read as its text: asset_id: 1107 is
// "1107"); a device has at most 32 tags, its own and the top-level ones
// together. Validate reports every bad tag, naming the device and the key:
//
//	devices[3] (press-01).tags.Line: invalid tag key "Line": use 1 to 64 lower-case letters, digits and '_', starting with a letter
//
// Each sample also carries its class's units (devices.Class.Units, from
// the register map's unit keys). The gateway builds one tags map per
// device and the class keeps one units map, shared by all their samples.
// A sample keeps the tags it was polled with: samples in the spool are
// forwarded as they were written.
//
// # HTTP
//
// HTTPListen serves /metrics (Prometheus: Modbus requests, errors by kind
// and exception code, round trips, connects; per-device polls, samples,
// suppressed samples, failures, last success; spool samples, bytes and oldest age; produced
// samples and produce errors; refused Kafka connections by cause;
// configuration reloads; Go runtime and process), /healthz (200 while the process runs), /readyz
// (200 once Run has started, no broker refuses the connection, the broker
// answers within 2 s, and no topic's samples have waited for an
// acknowledgement, or kept failing, for longer than kafka.stall_timeout;
// else 503 and why) and /devices (each device's health as JSON, below).
// The spool gauges are read from the spool when scraped, not updated by
// the forwarder, so they keep growing while the broker is unreachable or
// produce is stalled.
//
// /devices answers a JSON array, one object per device sorted by id, in
// the shape HTTP inputs such as Telegraf's or Neuron's expect: snake_case
// keys, every key always present, durations as seconds (a number, with a
// _seconds suffix), times as RFC 3339 strings in UTC, null for a time that
// has not come yet:
//
//	key                      type            meaning
//	id                       string          device id (the record key)
//	factory                  string          the gateway's factory
//	class                    string          device class (register map)
//	connection               string          connections[].name it is polled through
//	unit                     number          Modbus unit id
//	schedule                 string          "every 1.5s" or "cron 0 */15 * * * *"
//	interval_seconds         number or null  poll interval; null for a cron schedule
//	cron                     string or null  cron spec; null for an interval schedule
//	last_attempt             time or null    start of the last poll
//	last_success             time or null    start of the last poll that produced a sample
//	consecutive_failures     number          polls without a sample since the last one with
//	last_error               string          first error of the last poll that had one; "" if none yet
//	last_round_trip_seconds  number          the last poll's reads, first request to last reply
//	next_due                 time or null    when the next poll is due
//	slowed_down              bool            polled less often after poller.failure_threshold failures
//	next_seq                 number          seq of the device's next sample
//	polls                    number          polls attempted since start
//	samples                  number          samples emitted since start
//	failures                 number          polls without a sample since start
//	overruns                 number          polls after which a due time had passed unpolled
//
// For example:
//
//	[
//	  {
//	    "id": "press-01", "factory": "plant-a", "class": "press", "connection": "line-1",
//	    "unit": 1, "schedule": "every 1.5s", "interval_seconds": 1.5, "cron": null,
//	    "last_attempt": "2026-03-02T08:15:04.5Z", "last_success": "2026-03-02T08:15:04.5Z",
//	    "consecutive_failures": 0, "last_error": "", "last_round_trip_seconds": 0.0042,
//	    "next_due": "2026-03-02T08:15:06Z", "slowed_down": false, "next_seq": 18231,
//	    "polls": 18231, "samples": 18231, "failures": 0, "overruns": 0
//	  }
//	]
//
// A stalled produce is what a cluster that has lost the in-sync replicas a
// topic requires looks like from here (Apache Kafka refuses acks=all
// produce with NOT_ENOUGH_REPLICAS, which the producer retries): polling
// goes on into the spool, and everything is forwarded in order once the
// replicas return.
//
// # Coming from Telegraf
//
// Package gateway/telegraf (`gateway import-telegraf`) turns the
// [[inputs.modbus]] sections of a Telegraf config into a Config and
// register maps: each Telegraf series (slave, measurement, tag set) a
// device, each measurement a class, inputs on one controller one
// connection, tags per device. It reports, with the Telegraf file and
// line, every setting it did not carry over or carried over with a
// difference (bits are bools here, a scaled value keeps its fraction,
// overlapping fields are refused); its package documentation is the
// mapping.
//
// # Reload
//
// Gateway.Reload applies a new configuration while the gateway runs;
// `gateway run` calls it on SIGHUP, reading the config file (with the
// --brokers and --data-dir overrides of the start) and the register maps
// in classes_dir again, as Telegraf's --watch-config and SIGHUP do. The new
// configuration goes through the checks of a start (gateway check); one
// that fails, or a register map that does not parse, is logged at error
// level with the error (file, line and key), counted, and changes nothing:
// the running configuration keeps polling. Otherwise the change is made in
// place, and the spool and the forwarder are not touched (what is spooled
// is forwarded in order throughout, the producer keeps its connections):
//
//	what changed                                           what happens
//	a connection's settings (defaults applied)             closed and opened again; its devices restart
//	a connection added / removed                           opened at its first poll / closed
//	a device's entry, any key (class, connection, unit,    the device restarts
//	  interval or cron, max_registers_per_read,
//	  report_by_exception, tags...), or the top-level
//	  tags it inherits
//	its class's register map (fields, max_gap)             the class's devices restart
//	its class's report_by_exception entry                  the class's devices restart
//	a device added                                         it starts, seq recovered from the spool as at a start
//	a device removed                                       it stops; its spooled samples are still forwarded
//	anything else of a connection or device                nothing: same socket, same schedule, no missed poll
//	factory, topic_prefix, data_dir, http_listen, kafka,   logged at warn level, one line per key ("kafka.linger"),
//	  spool, poller (every key but classes_dir,              and kept at its running value until a restart
//	  connections, devices, report_by_exception, tags)
//
// A restarted device stops between two polls of its connection, its
// samples taken so far are spooled, and it polls again as configured; its
// seq goes on from where it was (never repeated, no gap, even when it
// moves to another connection or class), its report by exception starts
// anew (its first sample is sent), and its counters in /devices and
// /metrics start again from 0 (rate() takes a counter reset in its
// stride). Keys that need a restart keep
// their values so that a reload never half-applies a new spool, producer
// or listener; a factory or topic_prefix kept means the samples keep going
// to the running topics. One info line sums up each reload:
//
//	level=INFO msg="config reloaded" config=/etc/factorywire/gateway.yaml devices_added=press-09
//	  devices_removed=press-04 devices_restarted="press-02 (unit, interval), oven-1 (register map temperature-controller)"
//	  connections_restarted=line-2 register_maps_changed=temperature-controller needs_restart=kafka.linger
//
// Reloads are serialised (a SIGHUP during a reload makes one more after
// it), and a stop during a reload ends it cleanly. /devices shows the new
// device set as soon as Reload returns. The metrics follow Prometheus's
// own: factorywire_gateway_config_reloads_total{result="success"|"failure"},
// factorywire_gateway_config_last_reload_successful (1 or 0; 1 before any
// reload) and factorywire_gateway_config_last_reload_success_timestamp_seconds
// (the start, then each successful reload).
package gateway

// Package modbus is factorywire's hardened Modbus client: connections
// (Conn) built on github.com/goburrow/modbus v0.1.0, and a Poller that
// reads devices on schedules and emits one devices.Sample per poll.
//
// # Connections
//
// A Conn is one physical connection: a Modbus TCP endpoint (a device, or a
// TCP-to-RS485 gateway with units behind it), a serial line (Modbus RTU or
// ASCII), or a serial device server in raw mode passing RTU or ASCII frames
// over TCP (see Transports).
// The transport belongs to one request at a time: a Read takes the
// Conn's turn (a one-slot semaphore; callers wait for it, or for their ctx
// or Close), sets the unit id and executes the request on its own
// goroutine, so every request, from every caller and unit, is serial. (An
// owner goroutine receiving requests over a channel did the same with two
// goroutine hand-offs per request, which cmd/gatewaybench measured at about
// a third of the poller's CPU at 1 Hz.) The connection opens at the first
// Read and after an error at the next one. Conn.Read returns the reply's
// data bytes, checked against the request. Close waits for the request in
// progress, then closes the connection; it is idempotent.
//
// Modbus TCP requests and replies are framed by Conn itself (MBAP header,
// with goburrow's checks: transaction, protocol and unit id, a length of
// 2..254), in buffers reused for every request, and a reply is read in as
// few reads as it arrives in: goburrow's TCP handler reads the header and
// the rest apart and allocates per request, which cmd/gatewaybench
// measured as part of what the poller cost beyond the loopback floor.
// The serial-line framings keep goburrow's packagers (see Transports).
//
// It fixes the four goburrow/modbus v0.1.0 defects DESIGN.md lists; each
// has a test that shows the defect with bare goburrow against the
// simulator and Conn recovering:
//
//	(a) one late reply desynchronises every later request:  the connection is closed after a timeout or
//	    transaction id mismatch, so a late reply dies with it (TestDefectLateReplyDesync; on RTU,
//	    where goburrow returns the wrong registers without error, TestDefectLateReplyRTU)
//	(b) short replies are accepted:                          byte count and data length must equal
//	    2×quantity or (quantity+7)/8 (TestDefectShortReply, TestPeerJsmodbusShortReply)
//	(c) no reconnect after the server drops the connection:  reconnect at the next Read (TestDefectNoReconnect)
//	(d) the unit id is unsynchronised handler state:         set per request by the turn's holder (TestDefectUnitRace)
//
// # What each error does
//
//	error (KindOf)              Conn                                 Poller
//
//	*ExceptionError 6 (busy)    resent after BusyBackoff, doubling,  as the other exceptions once
//	                            up to BusyTries sends in all         BusyTries are spent
//	*ExceptionError 2, 3        returned; connection kept            that read's fields get the error;
//	                                                                 the poll goes on with the next read
//	*ExceptionError 0x0A, 0x0B  returned; connection kept (the unit  as 2 and 3 (UnitDown() is true)
//	(gateway path, target)      is down, not the connection)
//	other *ExceptionError       returned; connection kept            as 2 and 3
//	*LengthError                connection closed, reopened at       as 2 and 3
//	                            the next Read
//	ErrTimeout, ErrFraming      connection closed, reopened at       the poll stops: this read's and
//	(transaction or unit id     the next Read                        every later read's fields get the
//	mismatch, bad CRC or MBAP                                        error ("not read: ..." for the
//	length, other function)                                          later ones)
//	ErrTransport (EOF, reset)   connection closed, reopened at the   the poll stops, as above
//	                            next Read; if it broke before its
//	                            first reply, as ErrConnect
//	ErrConnect (dial, open)     the reconnect wait starts            the poll stops, as above
//	ErrBackoff                  failed at once during the wait       the poll stops, as above
//	ErrInvalidRead              returned; nothing sent               NewPoller rejects such plans
//	ErrClosed                   returned; a request not yet on       the poll stops, as above
//	                            the wire is not sent
//	context error               returned, as ErrClosed               the poll is abandoned: no sample,
//	                                                                 no failure
//
// The reconnect wait after a failed connect (or a connection that broke
// before its first reply, as from a server that accepts and closes at
// once) is ReconnectMin (100 ms), doubling per further failure up to
// ReconnectMax (10 s), each jittered to 50-100% of its value; any
// well-formed reply ends it. A timeout does not start the wait: a dead
// unit behind a live gateway must not make the gateway's other units wait.
// Timeout (1 s by default) bounds each request including its connect
// (over tcp it may end up to a 64th sooner: a scan's requests share the
// connection's deadline); a caller's earlier context deadline shortens it.
//
// # Transports
//
// ConnConfig.Transport is a framing over a connection:
//
//	transport        framing                                    connection           address
//	tcp (default)    MBAP header, PDU                           TCP                  host:port (Modbus TCP: 502)
//	rtu              unit, PDU, CRC-16                          serial port here     /dev/ttyUSB0
//	rtu_over_tcp     unit, PDU, CRC-16 (no MBAP header)         TCP to a device      host:port (the server's own:
//	                                                            server in raw mode   4001 on a Moxa NPort's port 1)
//	ascii            ':', unit, PDU, LRC in hexadecimal, CR LF  serial port here     /dev/ttyUSB0
//	ascii_over_tcp   as ascii                                   TCP, as rtu_over_tcp host:port
//
// No transport has a default port. baud_rate, data_bits, parity and
// stop_bits are for rtu and ascii only (defaults 19200 bit/s, 8 data bits
// for rtu and 7 for ascii, even parity, 1 stop bit: the Modbus serial line
// specification's); Validate rejects them on the TCP transports, whose
// serial settings belong to the device server. On every transport but tcp
// unit 0 is a broadcast no device answers, so a read must address 1..247.
// All transports share the reconnect, timeout and quirk rules of this
// documentation.
//
// With serial-line framing (rtu, ascii and both over TCP) Conn keeps
// goburrow's RTU or ASCII packager (unit id, CRC or LRC: Encode, Verify,
// Decode) but reads replies itself, over a serial port (goburrow/serial)
// or a TCP socket alike: goburrow's RTU transporter sizes a reply from the
// request (a short reply becomes a timeout and its bytes stay on the
// line), mis-frames exception replies, and neither it nor the ASCII one
// discards stale input. An RTU reply is framed from its header (function
// and byte count, or exception code), keeping the 3.5-character gap between
// frames on a serial port; an ASCII reply from ':' to CR LF, at most 513
// characters, each character checked as it arrives: anything else (a
// first byte other than ':', a non-hexadecimal character, a ':' inside the
// frame, CR without LF, bytes after the CR LF, an odd number of digits, a
// wrong LRC) is ErrFraming naming what was wrong, and the connection is
// out of step: it is closed and the rest of the garbled reply discarded.
//
// A serial-line reply has no transaction id, so after a timeout Conn
// waits until the line has been quiet for one more Timeout before the next
// request; a reply even later than that could still be taken for the
// answer to the next request of the same unit and function (no serial-line
// master can tell). After other errors, and after every connect (a device
// server may hold serial input from while no client was connected), it
// waits for 10 ms of quiet. Over TCP the same holds: a device server in
// raw mode passes a late reply to whichever connection is open.
//
// # Device quirks
//
// Three ConnConfig settings, off by default, serve devices that need
// gentler handling than Modbus promises (Telegraf's modbus input has the
// same three):
//
//   - PauseBetweenRequests (pause_between_requests, 0..10s): the Conn sends
//     no request sooner than this after the end of the one before on the
//     connection (its reply, or its failure), whatever the caller and
//     unit, busy retries included; the holder of the turn waits it out
//     (ctx and Close end the wait) before its Timeout starts. For serial
//     devices and gateways that drop requests sent too soon after a reply.
//   - PauseAfterConnect (pause_after_connect, 0..10s): no request sooner
//     than this after a connect (dial or port open), for devices that
//     need a warm-up before they answer.
//   - CloseAfterScan (close_after_scan): the Poller closes the connection
//     (or serial port) when a scan of its devices ends, that is when its
//     scheduling goroutine is about to wait for the next due time, before
//     it emits the scan's samples, and when Run ends mid-scan; the next
//     scan connects again. For devices that accept only one or two TCP
//     clients. ConnStats.ScanCloses counts these closes; they are not
//     Disconnects (which follow errors) and start no reconnect wait.
//
// The pauses lengthen every scan: a scan of n requests takes at least
// (n-1)×PauseBetweenRequests, plus PauseAfterConnect per connect; a scan
// longer than its interval skips due times (DeviceHealth.Overruns).
//
// Conn.Stats counts requests, replies, errors by kind, exceptions by code,
// busy retries, connects, reconnects and round-trip time; an Observer
// (WithObserver) sees every request and connect attempt, for metrics.
// This package does not depend on Prometheus.
//
// # Schedules
//
// A device is polled every Schedule.Interval (at least 100 ms) or at the
// times of Schedule.Cron. Interval due times are the grid
// phase + k×Interval since the Unix epoch. Phase spreading is per
// connection, the unit that can have a request in flight:
//
//   - The devices of one connection with the same interval share its
//     phase and are read as one scan, back to back in id order, as a
//     Modbus master scans a line. Their requests are serial on the
//     connection whatever their due times, so spreading them would not
//     keep them from firing together; it would only make every request
//     start from an idle process, which costs several times the CPU per
//     poll (docs/BENCHMARKS.md).
//   - The connections with devices of an interval are ordered by FNV-1a of
//     their names and taken ScanGroup (8) at a time; group g of n starts
//     its scans at g×Interval/n (ScanPhases). A gateway with thousands of
//     devices behind hundreds of connections (or one device per
//     connection, as Ethernet devices are) therefore never has more than
//     8 scans starting in the same millisecond, while the scans of a few
//     connections run side by side, which keeps the gateway and the
//     devices busy together instead of waking each other for every
//     request.
//
// A connection keeps its phase across restarts as long as the set of
// connections with that interval is the same, and a device keeps its place
// in the scan while its connection's device list is. A device's first
// poll is its first grid point after NewPoller; a sample's time is the
// start of its own poll, not of the scan.
//
// Cron specs use robfig/cron v3 syntax with an optional leading seconds
// field: 5 fields "min hour dom month dow" (second 0) or 6 fields
// "sec min hour dom month dow", the descriptors @yearly, @monthly, @weekly,
// @daily, @hourly and "@every <duration>", and an optional CRON_TZ=<zone>
// prefix (local time otherwise). Cron schedules are not phase-spread.
//
// Each Conn has one scheduling goroutine holding its devices in a heap by
// due time: it waits for the earliest, polls it and reschedules it, and
// polls the next at once if that one is due too (the rest of the scan).
// The samples of a scan go to Emit together, before the goroutine sleeps
// again; a longer scan emits every EmitBatch (256) samples, or when its
// oldest waiting sample is EmitDelay (100 ms) old. A dead device therefore delays only devices on the same
// connection, whose requests are serial anyway; devices on other
// connections are not delayed. Due times that pass while a poll (or an
// Emit) runs are skipped, not caught up in a burst (DeviceHealth.Overruns
// counts such polls).
//
// After PollerConfig.FailureThreshold (3) consecutive polls without a
// sample, a device waits its schedule's period × 2, then × 4, × 8 ... up
// to PollerConfig.MaxBackoff (60 s), rounded up to its schedule, until a
// poll produces a sample; then it is back on its schedule at once.
//
// # Samples
//
// A poll runs the device's read plan in order and builds one
// devices.Sample: Time = the poll's start on the Poller's clock
// (WithClock), Seq = the device's next seq. The rule:
//
//   - a poll in which at least one read succeeded emits a sample; fields
//     of failed reads are in Sample.Errors (error strings as above), or,
//     with WithValues, the fields and errors are in Sample.Values (except
//     for a device with Device.Report, whose samples keep the maps);
//   - a poll in which no read succeeded emits nothing and is a failed poll
//     (DeviceHealth.ConsecutiveFailures, backoff): a dead device does not
//     flood the pipeline with error-only samples every interval;
//   - a sample that Device.Report refuses (report by exception: the gateway
//     compares it with the last one sent) is not emitted, is counted in
//     DeviceHealth.Suppressed, and takes no seq: the device's next sample
//     has the seq it would have had. The poll still counts as a success.
//
// Seq starts at Device.Seq, which the caller recovers from its durable
// spool, and grows by one per sample Emit accepts, so it stays continuous
// across failures and restarts. Emit is called from the connection's
// scheduling goroutine: while it blocks, that connection's devices are not
// polled (backpressure). An Emit error stops the Poller: Run returns it,
// and the seqs of the samples it was given stay unused. When Run's context
// ends, samples not yet emitted are dropped, as a poll cut short is: their
// seqs were never stored, so the next run uses them.
//
// # Changing devices while polling
//
// Poller.Change removes and adds devices while Run runs (a device in both
// lists restarts). Each connection's scheduling goroutine applies its part
// between two polls, so the devices not named keep their due times, their
// state and their connection; a connection left without device has its
// goroutine return (its Conn is the caller's to close), a new one gets a
// goroutine. A removed device's samples not yet emitted are emitted
// before Change returns, and a device added back under the same id, on
// whatever connection, continues its seq: seqs never repeat nor leave a
// gap across a restart. Changes are serialised and checked whole first: a
// refused change changes nothing.
//
// # Health
//
// Poller.Health returns, for every device, its last attempt and success,
// consecutive failures, last error, last poll's round trip, next due time,
// whether it is slowed down, its next seq and counters. It is a snapshot,
// safe to call while Run runs.
//
// # Usage
//
//	conn, err := modbus.NewConn(modbus.ConnConfig{Name: "line-1", Address: "10.1.2.3:502"}, modbus.WithLogger(log))
//	if err != nil { ... }
//	defer conn.Close() // after Run has returned
//	p, err := modbus.NewPoller(modbus.PollerConfig{}, []modbus.Device{{
//		ID: "press-07", Factory: "plant-a", Class: class, Conn: conn, Unit: 7,
//		Schedule: modbus.Schedule{Interval: time.Second}, Seq: spool.NextSeq("press-07"),
//	}}, func(ctx context.Context, s devices.Sample) error {
//		return spool.Append(ctx, s)
//	}, modbus.WithLogger(log))
//	if err != nil { ... }
//	err = p.Run(ctx) // until ctx ends (nil) or Emit fails
//
// Conn and Poller take a *slog.Logger (nil discards). Connection state
// changes are logged at Info/Warn once per change, per-request failures at
// Debug.
package modbus

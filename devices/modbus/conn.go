package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/goburrow/serial"

	"github.com/factorywire/factorywire/devices"
)

// Observer receives a Conn's request outcomes and connect attempts, for
// metrics. Its methods are called from the Conn's goroutine, one at a time
// per Conn (concurrently across Conns), and must not block.
type Observer interface {
	// ObserveRequest is called once per request the Conn processes, busy
	// retries included, also for requests that failed without reaching
	// the wire (KindBackoff, KindConnect). rtt is the round trip from the
	// write to the end of the reply (0 if nothing was sent). Classify err
	// with KindOf; an *ExceptionError carries the exception code.
	ObserveRequest(conn string, unit, function uint8, rtt time.Duration, err error)
	// ObserveConnect is called after every connect attempt (the TCP dial
	// or the serial port open); err is nil on success.
	ObserveConnect(conn string, err error)
}

// Option configures NewConn and NewPoller.
type Option func(*options)

type options struct {
	log    *slog.Logger
	obs    Observer
	now    func() time.Time
	values bool
}

func buildOptions(opts []Option) options {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// WithLogger sets the logger. Nil (the default) discards logs.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithObserver sets the Observer of a Conn. Nil (the default) observes
// nothing; Conn.Stats counts anyway.
func WithObserver(obs Observer) Option { return func(o *options) { o.obs = obs } }

// WithValues makes the Poller put each sample's fields in Sample.Values,
// an array in the class's field order, instead of the Fields and Errors
// maps, except for devices with a Report function (which compare maps):
// for an EmitFunc that only encodes samples (Sample.AppendJSON), as the
// gateway's spool does, filling a map per poll is most of a poll's own
// work. The Poller reuses a sample's Values for a later poll once Emit
// has returned: an EmitFunc must not keep them (Values.Maps copies them).
// Allocating and collecting them was a third of a poll's own work
// polling back to back; a connection that waits 100 ms or more for its
// next poll lets its spares go. A Conn ignores it.
func WithValues() Option { return func(o *options) { o.values = true } }

// WithClock sets the Poller's clock, used for sample times, schedules and
// health. Its timers wait the difference between due times and now() in
// real time, so the clock must advance at real speed (a test may shift it).
// Default time.Now. A Conn ignores it.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// ConnStats are a Conn's counters since NewConn. Maps hold non-zero counts.
type ConnStats struct {
	Requests        uint64                       // requests processed, busy retries included
	Replies         uint64                       // well-formed replies (exception replies included)
	Errors          map[ErrorKind]uint64         // failed requests by kind
	Exceptions      map[devices.Exception]uint64 // exception replies by code (busy retries included)
	BusyRetries     uint64                       // requests repeated after exception 6
	Connects        uint64                       // successful connects
	Reconnects      uint64                       // successful connects after the first
	ConnectFailures uint64                       // failed connect attempts
	Disconnects     uint64                       // connections closed after an error
	ScanCloses      uint64                       // connections closed at the end of a scan (CloseAfterScan)
	RoundTripTotal  time.Duration                // sum of the round trips of Replies
}

// Conn is one physical Modbus connection (a TCP endpoint or a serial line)
// shared by all units behind it. One goroutine owns the goburrow/modbus
// handler and executes every request in arrival order, setting the unit id
// per request, so concurrent reads of different units never mix (as behind
// a TCP-to-RS485 gateway, requests are serial anyway). The connection is
// opened at the first Read, closed after any transport or framing error
// and reopened at the next Read (see the package documentation for the
// rules). All methods are safe for concurrent use.
type Conn struct {
	cfg ConnConfig
	log *slog.Logger
	obs Observer

	turn      chan struct{} // a one-slot semaphore: who holds it owns the connection
	quit      chan struct{} // closed by Close
	closeOnce sync.Once

	statsMu sync.Mutex
	stats   ConnStats

	// Owned by the holder of turn.
	tr            transport
	pdu           [5]byte // the request PDU being sent
	connected     bool
	everConnected bool
	replied       bool // the current connection delivered a well-formed reply
	failures      int  // consecutive connect failures, see failConnect
	retryAt       time.Time
	lastConnErr   error
	notBefore     time.Time // no request is sent before it (PauseBetweenRequests, PauseAfterConnect)
	// The holder's ctx deadline, looked up once per turn (acquire):
	// Deadline walks the context's parents, and a poll's reads all ask.
	ctxDeadline    time.Time
	ctxHasDeadline bool
	// lastReply is when the turn's last reply arrived (mono), zero at
	// the start of a turn and after a connect or a wait: the start of the
	// next request, whose round trip then also holds the decoding of that
	// reply (well under a microsecond). One clock reading per request
	// instead of two, a tenth of a poll's own work.
	lastReply time.Duration
	// The turn's plain replies (no error, no exception), counted into
	// stats at release: a poll's requests take statsMu once, not once
	// each.
	turnReplies   uint64
	turnRoundTrip time.Duration
}

// NewConn validates cfg (after WithDefaults). It does not connect: the
// first Read does. Close the Conn to close the connection.
func NewConn(cfg ConnConfig, opts ...Option) (*Conn, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	c := &Conn{
		cfg:   cfg,
		log:   o.log.With("conn", cfg.Name),
		obs:   o.obs,
		turn:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		stats: ConnStats{Errors: map[ErrorKind]uint64{}, Exceptions: map[devices.Exception]uint64{}},
		tr:    newTransport(cfg),
	}
	return c, nil
}

// Name returns ConnConfig.Name.
func (c *Conn) Name() string { return c.cfg.Name }

// Config returns the Conn's configuration, defaults applied.
func (c *Conn) Config() ConnConfig { return c.cfg }

// Read reads quantity items (registers or bits) of table from address on
// unit and returns the reply's data bytes: 2 per register, big-endian as on
// the wire, or (quantity+7)/8 bytes of bits, least significant bit first.
//
// Requests on one Conn are serial: Read waits for its turn (the Conn
// belongs to one request at a time, which also sets the unit id), then
// executes the request on the caller's goroutine. It returns when the
// request is done, ctx ends while waiting for the turn or between busy
// retries (the error wraps ctx.Err(); a ctx deadline also shortens the
// request's timeout, a cancellation without deadline waits for the request
// on the wire, at most Timeout), or the Conn is closed (ErrClosed). A
// request whose ctx has ended before its turn is not sent. Errors are
// described in the package documentation: *ExceptionError, *LengthError,
// *ConnError.
func (c *Conn) Read(ctx context.Context, unit uint8, table devices.Table, address, quantity uint16) ([]byte, error) {
	return c.read(ctx, readRequest{unit: unit, table: table, address: address, quantity: quantity}, nil)
}

// read is Read, appending the reply's data to dst: the Poller passes a
// buffer of its own, which saves an allocation per request.
func (c *Conn) read(ctx context.Context, req readRequest, dst []byte) ([]byte, error) {
	if err := c.check(req); err != nil {
		return nil, err
	}
	if err := c.acquire(ctx, req); err != nil {
		return nil, err
	}
	defer c.release()
	return c.serve(ctx, req, dst)
}

// check checks req for the Conn's transport.
func (c *Conn) check(req readRequest) error {
	if err := req.check(c.cfg.Transport.Bus()); err != nil {
		return fmt.Errorf("modbus: %s: unit %d: %w", c.cfg.Name, req.unit, err)
	}
	return nil
}

// acquire waits for the Conn's turn, until ctx ends or the Conn is
// closed; req is the request the error names. The holder calls serve for
// each of its requests (serve sees a Close), then release.
func (c *Conn) acquire(ctx context.Context, req readRequest) error {
	select {
	case c.turn <- struct{}{}: // free: the usual case, without a full select
	default:
		select {
		case c.turn <- struct{}{}:
		case <-ctx.Done():
			return c.ctxError(req, ctx.Err())
		case <-c.quit:
			return c.connError(req, KindClosed, nil)
		}
	}
	c.ctxDeadline, c.ctxHasDeadline = ctx.Deadline()
	c.lastReply = 0
	return nil
}

// release counts the turn's plain replies and gives the turn back.
func (c *Conn) release() {
	if c.turnReplies > 0 {
		c.statsMu.Lock()
		c.stats.Requests += c.turnReplies
		c.stats.Replies += c.turnReplies
		c.stats.RoundTripTotal += c.turnRoundTrip
		c.statsMu.Unlock()
		c.turnReplies, c.turnRoundTrip = 0, 0
	}
	<-c.turn
}

// Stats returns a snapshot of the Conn's counters. A request that got a
// plain reply is counted when its Read or poll ends; one that failed, at
// once.
func (c *Conn) Stats() ConnStats {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	s := c.stats
	s.Errors = make(map[ErrorKind]uint64, len(c.stats.Errors))
	for k, v := range c.stats.Errors {
		s.Errors[k] = v
	}
	s.Exceptions = make(map[devices.Exception]uint64, len(c.stats.Exceptions))
	for k, v := range c.stats.Exceptions {
		s.Exceptions[k] = v
	}
	return s
}

// Close stops the Conn: waiting and later Reads fail with ErrClosed, a
// request on the wire finishes first (within Timeout), then the connection
// is closed. Close is idempotent and always returns nil.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.quit)
		c.turn <- struct{}{} // wait for the request in progress
		if c.connected {
			c.tr.Close()
			c.connected = false
		}
	})
	return nil
}

// serve executes one call, retrying while the device is busy, and appends
// the reply's data to dst.
func (c *Conn) serve(ctx context.Context, req readRequest, dst []byte) ([]byte, error) {
	wait := c.cfg.BusyBackoff
	for try := 1; ; try++ {
		if err := ctx.Err(); err != nil {
			return nil, c.ctxError(req, err)
		}
		select {
		case <-c.quit:
			return nil, c.connError(req, KindClosed, nil)
		default:
		}
		data, rtt, kind, err := c.roundTrip(ctx, req, dst)
		c.record(req, rtt, kind, err)
		if kind != KindException || !isBusy(err) || try >= c.cfg.BusyTries {
			return data, err
		}
		c.count(func(s *ConnStats) { s.BusyRetries++ })
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			c.lastReply = 0
		case <-ctx.Done():
			t.Stop()
			return nil, c.ctxError(req, ctx.Err())
		case <-c.quit:
			t.Stop()
			return nil, c.connError(req, KindClosed, nil)
		}
		wait *= 2
	}
}

// isBusy reports whether err is exception 6, server device busy.
func isBusy(err error) bool {
	var ee *ExceptionError
	return errors.As(err, &ee) && ee.Code == devices.ExceptionServerDeviceBusy
}

// roundTrip sends one request and checks its reply, whose data it appends
// to dst. It connects first if needed, keeps the quirk pauses, and drops
// the connection after a transport or framing error.
func (c *Conn) roundTrip(ctx context.Context, req readRequest, dst []byte) (data []byte, rtt time.Duration, kind ErrorKind, err error) {
	if !c.connected {
		if err := c.setTimeout(req); err != nil {
			return nil, 0, KindCanceled, err
		}
		if kind, err := c.connect(req); err != nil {
			return nil, 0, kind, err
		}
		c.lastReply = 0
	}
	if kind, err := c.pause(ctx, req); err != nil {
		return nil, 0, kind, err
	}
	// After the pause: the request's own Timeout starts now.
	if err := c.setTimeout(req); err != nil {
		return nil, 0, KindCanceled, err
	}
	adu, err := c.tr.encode(req.unit, req.appendPDU(c.pdu[:0]))
	if err != nil {
		return nil, 0, KindInvalid, fmt.Errorf("modbus: %s: unit %d: %w: %v", c.cfg.Name, req.unit, ErrInvalidRead, err)
	}
	start := c.lastReply
	if start == 0 {
		start = mono()
	}
	resp, err := c.tr.send(adu, start)
	c.lastReply = mono()
	rtt = c.lastReply - start
	if c.cfg.PauseBetweenRequests > 0 {
		c.notBefore = monoTime(start + rtt + c.cfg.PauseBetweenRequests)
	}
	if err != nil {
		kind := classify(err)
		c.drop(kind, err)
		return nil, rtt, kind, c.connError(req, kind, err)
	}
	// Verify before Decode: Verify checks the minimum length Decode needs.
	if err := c.tr.verify(adu, resp); err != nil {
		c.drop(KindFraming, err)
		return nil, rtt, KindFraming, c.connError(req, KindFraming, err)
	}
	fc, pdu, err := c.tr.decode(resp)
	if err != nil {
		c.drop(KindFraming, err)
		return nil, rtt, KindFraming, c.connError(req, KindFraming, err)
	}
	data, kind, err = req.checkReply(fc, pdu)
	switch kind {
	case KindNone, KindException:
		c.replied = true
		c.failures = 0
		if data != nil {
			data = append(dst, data...) // resp is the transport's until its next request
		}
		return data, rtt, kind, err
	case KindLength:
		c.drop(kind, err)
		return nil, rtt, kind, err
	default:
		c.drop(kind, err)
		return nil, rtt, kind, c.connError(req, kind, err)
	}
}

// setTimeout sets the transport's timeout for the next connect or request:
// Timeout, or less if the turn holder's ctx ends sooner.
func (c *Conn) setTimeout(req readRequest) error {
	timeout := c.cfg.Timeout
	if c.ctxHasDeadline {
		if left := time.Until(c.ctxDeadline); left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 {
		return c.ctxError(req, context.DeadlineExceeded)
	}
	c.tr.setTimeout(timeout)
	return nil
}

// pause waits until notBefore, the end of PauseBetweenRequests or
// PauseAfterConnect, or until ctx ends or the Conn is closed.
func (c *Conn) pause(ctx context.Context, req readRequest) (ErrorKind, error) {
	if c.notBefore.IsZero() {
		return KindNone, nil // no pause configured: no clock read
	}
	c.lastReply = 0 // the pause is no part of the next round trip
	wait := time.Until(c.notBefore)
	if wait <= 0 {
		return KindNone, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return KindNone, nil
	case <-ctx.Done():
		return KindCanceled, c.ctxError(req, ctx.Err())
	case <-c.quit:
		return KindClosed, c.connError(req, KindClosed, nil)
	}
}

// endScan closes the connection if CloseAfterScan is set; the next Read
// connects again. The Poller calls it when a scan of the Conn's devices is
// done. It waits for the request in progress, if any.
func (c *Conn) endScan() {
	if !c.cfg.CloseAfterScan {
		return
	}
	select {
	case c.turn <- struct{}{}:
	case <-c.quit:
		return
	}
	defer func() { <-c.turn }()
	select {
	case <-c.quit:
		return
	default:
	}
	if !c.connected {
		return
	}
	c.tr.Close()
	c.connected = false
	c.count(func(s *ConnStats) { s.ScanCloses++ })
	c.log.Debug("modbus: connection closed after its scan (close_after_scan)")
}

// connect opens the connection unless a reconnect wait is running.
func (c *Conn) connect(req readRequest) (ErrorKind, error) {
	now := time.Now()
	if c.failures > 0 && now.Before(c.retryAt) {
		return KindBackoff, c.connError(req, KindBackoff, fmt.Errorf("next attempt in %v: %w", c.retryAt.Sub(now).Round(time.Millisecond), c.lastConnErr))
	}
	err := c.tr.Connect()
	if c.obs != nil {
		c.obs.ObserveConnect(c.cfg.Name, err)
	}
	if err != nil {
		c.count(func(s *ConnStats) { s.ConnectFailures++ })
		c.failConnect("cannot connect", err)
		return KindConnect, c.connError(req, KindConnect, err)
	}
	c.connected, c.replied = true, false
	if c.cfg.PauseAfterConnect > 0 {
		c.notBefore = maxTime(c.notBefore, time.Now().Add(c.cfg.PauseAfterConnect))
	}
	reconnect := c.everConnected
	c.everConnected = true
	c.count(func(s *ConnStats) {
		s.Connects++
		if reconnect {
			s.Reconnects++
		}
	})
	c.log.Debug("modbus: connected", "address", c.cfg.Address, "reconnect", reconnect)
	return KindNone, nil
}

// failConnect starts the reconnect wait after a failed connect, or after a
// connection that broke before it delivered any reply (a server that
// accepts and closes at once must not be redialled in a tight loop).
func (c *Conn) failConnect(what string, err error) {
	c.failures++
	d := c.cfg.ReconnectMax
	if shift := c.failures - 1; shift < 30 {
		d = min(c.cfg.ReconnectMin<<shift, c.cfg.ReconnectMax)
	}
	d = d/2 + rand.N(d/2+1) // jitter to 50..100%
	c.retryAt = time.Now().Add(d)
	c.lastConnErr = err
	if c.failures == 1 {
		c.log.Warn("modbus: "+what+"; reconnecting with backoff", "address", c.cfg.Address, "err", err, "wait", d)
	} else {
		c.log.Debug("modbus: "+what+" again", "address", c.cfg.Address, "err", err, "failures", c.failures, "wait", d)
	}
}

// drop closes the connection after an error of the given kind.
func (c *Conn) drop(kind ErrorKind, cause error) {
	c.tr.Close()
	c.connected = false
	c.count(func(s *ConnStats) { s.Disconnects++ })
	c.log.Debug("modbus: connection closed after error", "kind", kind.String(), "err", cause)
	if kind == KindTransport && !c.replied {
		c.failConnect("connection broke before its first reply", cause)
	}
}

// record counts a request outcome (a plain reply at the turn's release)
// and tells the Observer.
func (c *Conn) record(req readRequest, rtt time.Duration, kind ErrorKind, err error) {
	switch kind {
	case KindCanceled:
		return
	case KindNone:
		c.turnReplies++ // counted at release
		c.turnRoundTrip += rtt
	default:
		c.count(func(s *ConnStats) {
			s.Requests++
			if kind == KindException {
				s.Replies++
				s.RoundTripTotal += rtt
				var ee *ExceptionError
				if errors.As(err, &ee) {
					s.Exceptions[ee.Code]++
				}
			}
			s.Errors[kind]++
		})
	}
	if c.obs != nil {
		c.obs.ObserveRequest(c.cfg.Name, req.unit, req.function(), rtt, err)
	}
}

func (c *Conn) count(f func(*ConnStats)) {
	c.statsMu.Lock()
	f(&c.stats)
	c.statsMu.Unlock()
}

// monoBase is the origin of mono: one reading of both clocks.
var monoBase = time.Now()

// mono reads the monotonic clock alone, as the time since monoBase: a
// request's start and round trip need no wall clock, and time.Now reads
// both (a wall clock read was a third of a poll's clock time).
func mono() time.Duration { return time.Since(monoBase) }

// monoTime is the time.Time of a mono reading, for deadlines and
// timers (which use its monotonic reading).
func monoTime(d time.Duration) time.Time { return monoBase.Add(d) }

func (c *Conn) connError(req readRequest, kind ErrorKind, err error) *ConnError {
	return &ConnError{Conn: c.cfg.Name, Unit: req.unit, Function: req.function(), Kind: kind, Err: err}
}

func (c *Conn) ctxError(req readRequest, err error) error {
	return fmt.Errorf("modbus: %s: unit %d, function %d: %w", c.cfg.Name, req.unit, req.function(), err)
}

// classify sorts an error of a transport's Send: timeouts, broken
// connections, and the rest (goburrow's MBAP header checks, this package's
// RTU and ASCII framing checks) as framing.
func classify(err error) ErrorKind {
	var ne net.Error
	var errno syscall.Errno
	var pe *fs.PathError
	var oe *net.OpError
	switch {
	case errors.Is(err, errReplyTimeout), errors.Is(err, serial.ErrTimeout), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.As(err, &oe), errors.As(err, &errno), errors.As(err, &pe):
		return KindTransport
	}
	return KindFraming
}

// transport is one framing over one connection (tcpTransport, or
// streamTransport for the serial-line framings), owned by the holder of the
// Conn's turn. The frames encode and send return are valid until their
// next call.
type transport interface {
	Connect() error
	Close() error
	setTimeout(time.Duration)
	// encode returns the request frame of pdu (function code and data)
	// to unit.
	encode(unit uint8, pdu []byte) ([]byte, error)
	// send writes a request frame and reads its reply frame; start is
	// when the request began (mono), from which a transport without a
	// wait of its own before the write counts the timeout.
	send(adu []byte, start time.Duration) ([]byte, error)
	// verify checks that the reply frame answers the request frame
	// (transaction and unit id, CRC or LRC); decode returns its PDU.
	verify(req, resp []byte) error
	decode(resp []byte) (fc uint8, data []byte, err error)
}

func newTransport(cfg ConnConfig) transport {
	if cfg.Transport.Bus() {
		return newStreamTransport(cfg)
	}
	return newTCPTransport(cfg)
}

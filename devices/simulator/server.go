package simulator

import (
	"context"
	"errors"
	"fmt"
	"github.com/factorywire/factorywire/devices"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MissingUnitPolicy is how a server answers a request for a unit id it
// does not serve.
type MissingUnitPolicy uint8

// The missing-unit policies. The default answers like a TCP-to-RTU gateway
// whose serial device did not respond.
const (
	// MissingUnitTargetNoReply answers exception 0x0B, gateway target
	// device failed to respond (the default).
	MissingUnitTargetNoReply MissingUnitPolicy = iota
	// MissingUnitPathUnavailable answers exception 0x0A, gateway path
	// unavailable, as a gateway with no route configured for the unit.
	MissingUnitPathUnavailable
	// MissingUnitSilent sends nothing, as a native Modbus TCP device that
	// ignores other unit ids: the client times out. The connection stays
	// open and later requests are answered.
	MissingUnitSilent
)

// String returns the policy's name as in this package's constants, without
// the MissingUnit prefix.
func (p MissingUnitPolicy) String() string {
	switch p {
	case MissingUnitTargetNoReply:
		return "TargetNoReply"
	case MissingUnitPathUnavailable:
		return "PathUnavailable"
	case MissingUnitSilent:
		return "Silent"
	}
	return fmt.Sprintf("MissingUnitPolicy(%d)", uint8(p))
}

// Config configures a Server. The zero value is ready to use.
type Config struct {
	// Listen is the TCP address to listen on. Default "127.0.0.1:0": a
	// free loopback port, read it back with Server.Addr.
	Listen string

	// Framing is how requests and replies are framed on the TCP
	// connections: FramingMBAP (Modbus TCP, the default), FramingRTU (RTU
	// over TCP) or FramingASCII (ASCII over TCP), as a serial device
	// server in raw mode passes a serial line's frames.
	Framing Framing

	// NoTCP serves no TCP listener: the units are served only on serial
	// lines (ServeSerial, ServeRTU), and Addr returns nil. Listen is then
	// ignored.
	NoTCP bool

	// Logger receives connection events: malformed frames (Warn, with the
	// remote address and what was wrong), injected drops (Info), opened
	// and closed connections (Debug). Nil discards them.
	Logger *slog.Logger

	// MissingUnit is how requests for a unit id without a unit are
	// answered. Default MissingUnitTargetNoReply (exception 0x0B).
	MissingUnit MissingUnitPolicy

	// FrameTimeout is how long the rest of a frame may take to arrive
	// once its first byte has: a client that stops mid-frame has its
	// connection closed as truncated. An idle connection between frames
	// is never closed. Default 1s.
	FrameTimeout time.Duration

	// TickPeriod is the period of the value generators of device units
	// (see AddDevice): a generated value changes once per tick. Default
	// 100ms.
	TickPeriod time.Duration

	// Clock returns the current time for the value generators; tests set
	// it to control the tick. Default time.Now. Fault delays always use
	// real time.
	Clock func() time.Time

	// OnRequest, if set, is called with every well-framed request as it
	// is received, before it is answered, from its connection's
	// goroutine (concurrently across connections). It must not block:
	// the connection waits for it. Tests use it to see on which
	// connection and when requests arrive.
	OnRequest func(Request)
}

// Request is a well-framed request a Server received, as Config.OnRequest
// sees it.
type Request struct {
	// Conn numbers the connection it came on: 1 for the first the server
	// accepted, 2 for the second, as Stats.Connections counts them.
	Conn     uint64
	Unit     uint8
	Function uint8
	// Received is when the whole frame had arrived, in real time
	// (time.Now, with its monotonic reading), not Config.Clock.
	Received time.Time
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.FrameTimeout == 0 {
		c.FrameTimeout = time.Second
	}
	if c.TickPeriod == 0 {
		c.TickPeriod = 100 * time.Millisecond
	}
	if c.Framing == "" {
		c.Framing = FramingMBAP
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.MissingUnit > MissingUnitSilent:
		return fmt.Errorf("MissingUnit %d: unknown policy (use a MissingUnit constant): %w", uint8(c.MissingUnit), ErrConfig)
	case c.FrameTimeout < 0:
		return fmt.Errorf("FrameTimeout %v: must not be negative: %w", c.FrameTimeout, ErrConfig)
	case c.TickPeriod < 0:
		return fmt.Errorf("TickPeriod %v: must not be negative: %w", c.TickPeriod, ErrConfig)
	case c.Framing != "" && c.Framing != FramingMBAP && c.Framing != FramingRTU && c.Framing != FramingASCII:
		return fmt.Errorf("Framing %q: want %q, %q or %q: %w", c.Framing, FramingMBAP, FramingRTU, FramingASCII, ErrConfig)
	}
	return nil
}

// Server is a Modbus TCP server simulating units (devices) with fault
// injection. New starts it; Close stops it. All methods are safe for
// concurrent use, also while requests are being served.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	ctx    context.Context // cancelled by Close: ends fault delays
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop and connections

	units  [256]atomic.Pointer[Unit]
	faults faultSet
	stats  counters

	connsMu   sync.Mutex
	conns     map[net.Conn]struct{}
	closing   bool // under connsMu
	closeOnce sync.Once
}

// New validates cfg, starts listening on cfg.Listen and serves until Close.
// The server starts without units: add them with AddUnit or AddDevice.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("simulator config: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		conns: map[net.Conn]struct{}{},
	}
	if !cfg.NoTCP {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("simulator: listen on %s: %w", cfg.Listen, err)
		}
		s.ln = ln
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.ln != nil {
		s.wg.Add(1)
		go s.acceptLoop()
	}
	return s, nil
}

// Addr returns the address the server listens on, nil with Config.NoTCP.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Unit returns the unit with the given id, or nil if there is none.
func (s *Server) Unit(id uint8) *Unit { return s.units[id].Load() }

// AddUnit adds a unit with tables of the given sizes, all zero. The unit
// serves requests as soon as AddUnit returns. Ids 1 to 247 are units
// behind a simulated TCP-to-RTU gateway; 255 (or 0) is the id a client
// uses for a native Modbus TCP device. Ids 248 to 254 are reserved
// (ErrUnitID); an id already served is ErrUnitExists.
func (s *Server) AddUnit(id uint8, sizes Sizes) (*Unit, error) {
	if err := sizes.validate(); err != nil {
		return nil, fmt.Errorf("add unit %d: %w", id, err)
	}
	return s.add(newUnit(id, sizes))
}

func (s *Server) add(u *Unit) (*Unit, error) {
	if u.id >= 248 && u.id <= 254 {
		return nil, fmt.Errorf("add unit %d: %w", u.id, ErrUnitID)
	}
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("add unit %d: %w", u.id, ErrClosed)
	}
	if !s.units[u.id].CompareAndSwap(nil, u) {
		return nil, fmt.Errorf("add unit %d: %w (remove it first with RemoveUnit)", u.id, ErrUnitExists)
	}
	return u, nil
}

// RemoveUnit removes the unit with the given id, so that requests for it
// are answered by the MissingUnit policy (a device going off line behind a
// gateway). It reports whether there was such a unit.
func (s *Server) RemoveUnit(id uint8) bool { return s.units[id].Swap(nil) != nil }

// SetFaults replaces the server's faults. They apply to every request
// whatever its unit id (also ids without a unit), and are consulted before
// the unit's own faults; the first fault that fires decides the reply.
// With no arguments it clears them. On a validation error the previous
// faults stay in force.
func (s *Server) SetFaults(faults ...Fault) error {
	if err := s.faults.set(faults); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// ClearFaults removes the server's faults.
func (s *Server) ClearFaults() { s.faults.set(nil) }

// Close stops the server: it closes the listener, so no connection is
// accepted any more, then every client connection (clients see the
// connection closed, replies held by a FaultDelay are not sent), then waits
// for all the server's goroutines to return. The order matters: closing
// connections first would let the accept loop add new ones. Close is
// idempotent; it returns the listener's close error, if any.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.cancel()
		if s.ln != nil { // nil with NoTCP; ServeRTU sees s.ctx end
			if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
				err = fmt.Errorf("simulator: close listener %s: %w", s.ln.Addr(), cerr)
			}
		}
		s.connsMu.Lock()
		s.closing = true
		for nc := range s.conns {
			nc.Close()
		}
		s.connsMu.Unlock()
		s.wg.Wait()
	})
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (too many open files, aborted
			// handshakes) must not stop the server: back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("simulator: accept failed; retrying", "addr", s.ln.Addr().String(), "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		backoff = 0
		s.connsMu.Lock()
		if s.closing {
			s.connsMu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.connsMu.Unlock()
		id := s.stats.connections.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(nc, id)
			s.connsMu.Lock()
			delete(s.conns, nc)
			s.connsMu.Unlock()
		}()
	}
}

// serveConn serves one TCP connection in the server's framing and closes
// it.
func (s *Server) serveConn(nc net.Conn, id uint64) {
	if s.cfg.Framing == FramingMBAP {
		newConn(s, nc, id).serve()
		return
	}
	defer nc.Close()
	log := s.log.With("transport", string(s.cfg.Framing)+"_over_tcp", "remote", nc.RemoteAddr().String(), "local", nc.LocalAddr().String())
	log.Debug("simulator: connection opened")
	l := s.newLine(s.ctx, pollingConn{nc}, id, log, true)
	var err error
	if s.cfg.Framing == FramingRTU {
		err = l.serveRTU()
	} else {
		err = l.serveASCII()
	}
	log.Debug("simulator: connection closed", "err", err)
}

// Stats counts what a server has done since New. Maps hold only non-zero
// counts.
type Stats struct {
	Connections uint64 // connections accepted
	BadFrames   uint64 // connections closed for a malformed frame
	Replies     uint64 // frames sent, exceptions and faulty replies included

	Requests   map[uint8]uint64             // well-framed requests received, by function code
	Exceptions map[devices.Exception]uint64 // exception replies sent, by code, injected ones included
	Faults     map[FaultKind]uint64         // faults fired, by kind
}

// counters are the live counts behind Stats.
type counters struct {
	connections atomic.Uint64
	badFrames   atomic.Uint64
	replies     atomic.Uint64
	requests    [256]atomic.Uint64
	exceptions  [256]atomic.Uint64
	faults      [FaultNoReply + 1]atomic.Uint64
}

// Stats returns a snapshot of the server's counters. The counters are
// updated independently, so a snapshot taken while requests are in flight
// may be mid-request; once the clients are idle it is exact.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections: s.stats.connections.Load(),
		BadFrames:   s.stats.badFrames.Load(),
		Replies:     s.stats.replies.Load(),
		Requests:    map[uint8]uint64{},
		Exceptions:  map[devices.Exception]uint64{},
		Faults:      map[FaultKind]uint64{},
	}
	for i := range s.stats.requests {
		if n := s.stats.requests[i].Load(); n > 0 {
			st.Requests[uint8(i)] = n
		}
		if n := s.stats.exceptions[i].Load(); n > 0 {
			st.Exceptions[devices.Exception(i)] = n
		}
	}
	for k := range s.stats.faults {
		if n := s.stats.faults[k].Load(); n > 0 {
			st.Faults[FaultKind(k)] = n
		}
	}
	return st
}

package broker

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxInFlight bounds the requests one connection may have read but not yet
// answered; beyond it the reader stops reading, which pushes back on the
// client through TCP.
const maxInFlight = 64

// progressBytes is the progress that extends a request's read deadline or
// a response's write deadline when it passes: a client must send its
// request and read its responses at no less than progressBytes per
// RequestReadTimeout (ResponseWriteTimeout), about 2 KiB/s at the default
// 30s.
const progressBytes = 64 << 10

// maxKeptResponseBuffer is the largest encoding buffer a connection keeps
// between responses. A consumer's fetches are typically a few MiB, and
// allocating (and zeroing) that much per fetch is most of a fetch's CPU.
const maxKeptResponseBuffer = 16 << 20

// conn serves one client connection: a reader goroutine decodes requests and
// runs their handlers in order, a writer goroutine finishes them and writes
// the responses in the same (correlation-id) order.
//
// Connection limits: a connection with no request in flight for
// ConnectionsMaxIdle is closed. RequestReadTimeout and ResponseWriteTimeout
// are no-progress timeouts: a request (from its first byte) and each write
// of responses get that long, extended by as much each time it passes with
// at least progressBytes more transferred since it was last set, so a slow
// but steady client is served and one that trickles is cut off. Request
// bodies are read only once their announced size is granted from the
// broker's request budget.
type conn struct {
	b       *Broker
	lis     *listener // the listener that accepted the connection
	nc      net.Conn  // a *tls.Conn on a TLS listener
	ip      string    // remote IP, for the per-IP connection count
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	pending chan inflight
	wg      sync.WaitGroup

	clientID string // of the request being handled (reader goroutine only)

	// principal is who the client is, in Kafka's form "User:<name>": the
	// SASL user once authenticated, the client certificate's name on a
	// listener with mutual TLS, else User:ANONYMOUS. ACLs are checked
	// against it and the remote IP. Set by the reader goroutine before
	// any request other than ApiVersions and SASL is handled.
	principal string
	// auth is the SASL exchange's state on a SASL listener (reader
	// goroutine only).
	auth saslSession
	// closeAfter, once set by a handler, closes the connection after that
	// request's reply is queued (reader goroutine only).
	closeAfter error

	// held is the response budget the response being finished holds,
	// released once it is written or dropped (writer goroutine only).
	held grant

	// mu guards inFlight and awaiting, and orders the two goroutines'
	// changes of the read deadline: the reader sets it, the writer only
	// while the reader awaits a request.
	mu sync.Mutex
	// inFlight counts the requests whose first byte has arrived and whose
	// response is not yet written (or dropped).
	inFlight int
	// awaiting is set while the reader waits for a request's first byte.
	awaiting bool
}

type inflight struct {
	corr int32
	key  int16
	r    reply
	// body is the request budget still held for the request's bytes,
	// because r.finish may still reference them; released after it ran.
	body grant
}

// requestError names the request a connection was closed for.
type requestError struct {
	key, version int16
	corr         int32
	err          error
}

func (e *requestError) Error() string {
	return fmt.Sprintf("request key %d (%s) version %d correlation %d: %v", e.key, kmsg.NameForKey(e.key), e.version, e.corr, e.err)
}

func (e *requestError) Unwrap() error { return e.err }

// anonymousPrincipal is the principal of a client that has not
// authenticated, as Kafka's KafkaPrincipal.ANONYMOUS.
const anonymousPrincipal = "User:ANONYMOUS"

var (
	errRequestSize = errors.New("request size out of bounds")
	errUnknownKey  = errors.New("unsupported API key")
	errVersion     = errors.New("unsupported API version")
	// errGroupsOffline closes a connection that sends a group request
	// while the committed offsets' log is offline.
	errGroupsOffline = errors.New("consumer groups are offline")
	// errLimit closes a connection for a resource limit, which was
	// already logged and counted by Broker.limits.
	errLimit = errors.New("closed by a resource limit")
	// errAcksZeroRefused closes a connection after an acks=0 produce
	// with a refused partition (already logged).
	errAcksZeroRefused = errors.New("acks=0 produce refused")
)

func newConn(b *Broker, lis *listener, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(b.ctx)
	if lis.tls != nil {
		nc = tls.Server(nc, lis.tls.serverConfig)
	}
	return &conn{
		b:         b,
		lis:       lis,
		nc:        nc,
		ip:        remoteIP(nc),
		principal: anonymousPrincipal,
		log:       b.log.With("client", nc.RemoteAddr().String()),
		ctx:       ctx,
		cancel:    cancel,
		pending:   make(chan inflight, maxInFlight),
	}
}

// serve runs the connection until the client leaves, a request cannot be
// understood, or the broker shuts down. It returns after both goroutines
// have stopped and the socket is closed.
func (c *conn) serve() {
	if err := c.handshakeTLS(); err != nil {
		c.cancel()
		c.nc.Close()
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.write()
	}()
	err := c.read()
	shutdown := c.ctx.Err() != nil
	// The client is gone or broke the protocol: nobody will read a long
	// poll's answer, so end waits now. Produce finishes still make their
	// records durable (they ignore the context), then the writer stops.
	c.cancel()
	close(c.pending)
	c.wg.Wait()
	c.nc.Close()
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, errLimit),
		errors.Is(err, context.Canceled), errors.Is(err, errAuthFailed), errors.Is(err, errAcksZeroRefused), shutdown:
		c.log.Debug("connection closed")
	default:
		c.log.Warn("closing connection", "err", err)
	}
}

func (c *conn) read() error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		if err := c.awaitRequest(br); err != nil {
			return err
		}
		if c.auth.raw && !c.auth.done {
			if err := c.readRawToken(br); err != nil {
				return err
			}
			continue
		}
		key, version, corr, body, g, err := c.readRequest(br)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.b.limits.hit(limitRequestReadTimeout, "request not received within its timeout; connection closed",
					"client", c.nc.RemoteAddr().String(), "request_read_timeout", c.b.cfg.RequestReadTimeout)
				return fmt.Errorf("%w: request_read_timeout: %w", errLimit, err)
			}
			return err
		}
		r, err := c.handle(key, version, corr, body)
		if r.finish == nil || key == int16(kmsg.Produce) {
			// Nothing references the body any more: Produce has
			// copied its records into the log, and its finish holds
			// only the response. Other finishes may hold slices of
			// the body (kmsg keeps bytes and unknown tags in place),
			// so their bytes stay granted until finish has run.
			g.release()
		}
		if err != nil {
			g.release()
			return &requestError{key, version, corr, err}
		}
		// Queue the reply even if the connection is ending: the writer
		// drains pending until read returns, and a produce's finish
		// must run to make its records durable.
		c.pending <- inflight{corr: corr, key: key, r: r, body: g}
		if c.auth.failed {
			// Its answer (delayed) is written, then the connection
			// closes.
			return errAuthFailed
		}
		if c.closeAfter != nil {
			return c.closeAfter
		}
	}
}

// awaitRequest waits for the first byte of the next request. While no
// request is in flight it waits at most ConnectionsMaxIdle; once the byte
// has arrived, the request is in flight and must be read within
// RequestReadTimeout.
func (c *conn) awaitRequest(br *bufio.Reader) error {
	c.mu.Lock()
	c.awaiting = true
	var idle time.Time
	if c.inFlight == 0 {
		idle = time.Now().Add(c.b.cfg.ConnectionsMaxIdle)
	}
	c.nc.SetReadDeadline(idle)
	c.mu.Unlock()
	_, err := br.Peek(1)
	c.mu.Lock()
	c.awaiting = false
	if err == nil {
		c.inFlight++
		c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.RequestReadTimeout))
	}
	c.mu.Unlock()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.b.limits.hit(limitConnectionsMaxIdle, "connection idle too long; closed",
			"client", c.nc.RemoteAddr().String(), "connections_max_idle", c.b.cfg.ConnectionsMaxIdle)
		return fmt.Errorf("%w: connections_max_idle: %w", errLimit, err)
	}
	return err
}

// requestDone ends a request's time in flight once its response is written
// or dropped; the last one starts the idle time if the reader awaits the
// next request.
func (c *conn) requestDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight--
	if c.inFlight == 0 && c.awaiting {
		c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.ConnectionsMaxIdle))
	}
}

// readRequest reads one request after its first byte has arrived: the size,
// the fixed header, and the body once the request budget has granted the
// announced size. The connection stops reading while it waits for that
// grant (as Kafka mutes the channel), and its read deadline restarts
// afterwards: the wait is not the client's. The body grows as bytes
// arrive, so a client announcing a large request and sending little holds
// little memory. The returned grant holds the size; on error nothing is
// held.
func (c *conn) readRequest(br *bufio.Reader) (key, version int16, corr int32, body []byte, g grant, err error) {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
		return 0, 0, 0, nil, grant{}, err
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	if c.lis.sasl() && !c.auth.done && (size < 8 || size > saslMaxReceive) {
		return 0, 0, 0, nil, grant{}, fmt.Errorf("%w: %d bytes before SASL authentication (limit %d)", errRequestSize, size, saslMaxReceive)
	}
	if size < 8 || size > c.b.cfg.MaxRequestBytes {
		if size > c.b.cfg.MaxRequestBytes {
			c.b.limits.hit(limitMaxRequestBytes, "request larger than max_request_bytes; connection closed",
				"client", c.nc.RemoteAddr().String(), "bytes", size, "max_request_bytes", c.b.cfg.MaxRequestBytes)
		}
		return 0, 0, 0, nil, grant{}, fmt.Errorf("%w: %d bytes (limit %d)", errRequestSize, size, c.b.cfg.MaxRequestBytes)
	}
	// Read the fixed header first so that a request other than Produce
	// is held to the lower control-request limit before its body is
	// granted or buffered.
	var head [8]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return 0, 0, 0, nil, grant{}, err
	}
	key = int16(binary.BigEndian.Uint16(head[0:]))
	version = int16(binary.BigEndian.Uint16(head[2:]))
	corr = int32(binary.BigEndian.Uint32(head[4:]))
	if key != int16(kmsg.Produce) && size > c.b.cfg.MaxControlRequestBytes {
		c.b.limits.hit(limitMaxControlBytes, "non-produce request larger than max_control_request_bytes; connection closed",
			"client", c.nc.RemoteAddr().String(), "api", kmsg.NameForKey(key), "bytes", size, "max_control_request_bytes", c.b.cfg.MaxControlRequestBytes)
		return key, version, corr, nil, grant{}, &requestError{key, version, corr, fmt.Errorf("%w: %d bytes (limit for non-produce requests %d)", errRequestSize, size, c.b.cfg.MaxControlRequestBytes)}
	}
	// A request other than Produce is small (at most
	// max_control_request_bytes) and may pass large ones waiting for the
	// budget, so their wait does not stop every client's Metadata,
	// Heartbeat and Fetch requests.
	control := key != int16(kmsg.Produce)
	g, ok := c.b.requestBudget.tryAcquire(int64(size), control)
	if !ok {
		c.b.limits.hit(limitQueuedRequestBytes, "request waits for queued request bytes to be freed; connection not read meanwhile",
			"client", c.nc.RemoteAddr().String(), "bytes", size, "queued_max_request_bytes", c.b.cfg.QueuedMaxRequestBytes)
		if g, err = c.b.requestBudget.acquire(c.ctx, int64(size), control); err != nil {
			return key, version, corr, nil, grant{}, err
		}
		c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.RequestReadTimeout))
	}
	body, err = c.readBody(br, int(size)-8)
	if err != nil {
		g.release()
		return key, version, corr, nil, grant{}, err
	}
	return key, version, corr, body, g, nil
}

// firstBodyChunk is the body buffer allocated before any body byte has
// arrived; it doubles as bytes arrive, up to the announced size. Most
// produce requests fit in it, so they are read without a copy (growing
// from 64 KiB doubled the CPU time of reading a 100 KB request), while a
// client announcing 100 MiB and sending nothing holds 1 MiB.
const firstBodyChunk = 1 << 20

// readBody reads exactly n bytes, growing its buffer as they arrive rather
// than allocating n up front. When the read deadline passes with at least
// progressBytes of the body read since it was set, it is extended by
// RequestReadTimeout (the caller set it at the request's first byte).
func (c *conn) readBody(r io.Reader, n int) ([]byte, error) {
	body := make([]byte, 0, min(n, firstBodyChunk))
	mark := 0 // bytes read when the deadline was last set
	for len(body) < n {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(n, 2*cap(body)))
			copy(grown, body)
			body = grown
		}
		m, err := io.ReadFull(r, body[len(body):cap(body)])
		body = body[:len(body)+m]
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && len(body)-mark >= progressBytes {
				mark = len(body)
				c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.RequestReadTimeout))
				continue
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return body, nil
}

// handle decodes one request body (after the fixed header) and runs its
// handler.
func (c *conn) handle(key, version int16, corr int32, body []byte) (reply, error) {
	api, ok := apis[key]
	if !ok {
		return reply{}, errUnknownKey
	}
	if version < api.min || version > api.max {
		if key == int16(kmsg.ApiVersions) {
			// KIP-511: answer in v0 format so the client can
			// learn which versions exist and retry.
			return apiVersionsUnsupported(), nil
		}
		return reply{}, fmt.Errorf("%w (supported %d to %d)", errVersion, api.min, api.max)
	}
	if err := c.gate(key); err != nil {
		return reply{}, err
	}
	if c.b.groupsOffline != nil && needsGroups[key] {
		// Clients find no coordinator while groups are offline; one
		// that sends a group request anyway is disconnected and
		// retries.
		return reply{}, fmt.Errorf("%w: %v", errGroupsOffline, c.b.groupsOffline)
	}
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	rd := kbin.Reader{Src: body}
	if id := rd.NullableString(); id != nil {
		c.clientID = *id
	} else {
		c.clientID = ""
	}
	if req.IsFlexible() && !skipTags(&rd) {
		return reply{}, errors.New("malformed tagged fields in request header")
	}
	if !rd.Ok() {
		return reply{}, errors.New("truncated request header")
	}
	if err := req.ReadFrom(rd.Src); err != nil {
		return reply{}, fmt.Errorf("malformed request body: %w", err)
	}
	if c.log.Enabled(c.ctx, slog.LevelDebug) {
		c.log.Debug("request", "api", kmsg.NameForKey(key), "version", version, "client_id", c.clientID)
	}
	return api.handle(c.b, c, req)
}

// needsGroups are the APIs served by the group coordinator, besides
// FindCoordinator and ListGroups, which answer COORDINATOR_NOT_AVAILABLE
// while groups are offline.
var needsGroups = map[int16]bool{
	int16(kmsg.OffsetCommit): true, int16(kmsg.OffsetFetch): true, int16(kmsg.JoinGroup): true,
	int16(kmsg.Heartbeat): true, int16(kmsg.LeaveGroup): true, int16(kmsg.SyncGroup): true,
	int16(kmsg.DescribeGroups): true, int16(kmsg.DeleteGroups): true, int16(kmsg.OffsetDelete): true,
}

// skipTags skips a tagged-field section. Unlike kmsg.SkipTags it refuses a
// tag count larger than the bytes left (each tag takes at least two), so a
// forged count cannot make it loop billions of times over an empty reader.
func skipTags(rd *kbin.Reader) bool {
	n := rd.Uvarint()
	if !rd.Ok() || int64(n) > int64(len(rd.Src))/2 {
		return false
	}
	for ; n > 0 && rd.Ok(); n-- {
		rd.Uvarint() // tag key
		rd.Span(int(rd.Uvarint()))
	}
	return rd.Ok()
}

func (c *conn) write() {
	bw := bufio.NewWriterSize(progressWriter{c}, 64<<10)
	var buf []byte
	failed := false
	fail := func(err error) {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.b.limits.hit(limitResponseWriteTimeout, "client does not read its responses; connection closed",
				"client", c.nc.RemoteAddr().String(), "response_write_timeout", c.b.cfg.ResponseWriteTimeout)
		}
		// Keep draining so finish functions run (their records must
		// still be made durable), but stop writing.
		failed = true
		c.cancel()
		c.nc.Close()
	}
	for in := range c.pending {
		if in.r.finish != nil && !failed && bw.Buffered() > 0 {
			// A finish may wait (a long poll, an fsync): the
			// responses before it go out first.
			if err := bw.Flush(); err != nil {
				fail(err)
			}
		}
		resp := in.r.resp
		// Once writing failed a fetch's finish would only read records
		// (and take response budget) for nobody; other finishes still
		// run, a produce's to make its records durable.
		if in.r.finish != nil && !(failed && in.key == int16(kmsg.Fetch)) {
			resp = in.r.finish(c.ctx)
		}
		c.b.metrics.traffic.observe(in.key, resp)
		in.body.release()
		if in.r.none || failed {
			c.held.release()
			c.requestDone()
			// A request without a response (an acks=0 produce)
			// must not hold back the responses before it.
			if !failed && len(c.pending) == 0 && bw.Buffered() > 0 {
				if err := bw.Flush(); err != nil {
					fail(err)
				}
			}
			continue
		}
		buf = append(buf[:0], 0, 0, 0, 0)
		if in.r.raw != nil {
			// A SASL token after a v0 handshake: a bare frame.
			buf = append(buf, *in.r.raw...)
		} else {
			buf = binary.BigEndian.AppendUint32(buf, uint32(in.corr))
			// ApiVersions responses never carry header tags
			// (KIP-511), so a client can parse them before it knows
			// which versions exist.
			if resp.IsFlexible() && in.key != int16(kmsg.ApiVersions) {
				buf = append(buf, 0)
			}
			buf = resp.AppendTo(buf)
		}
		binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
		_, err := bw.Write(buf)
		if err == nil && len(c.pending) == 0 {
			err = bw.Flush()
		}
		c.held.release()
		c.requestDone()
		if err != nil {
			fail(err)
		}
		if cap(buf) > maxKeptResponseBuffer {
			buf = nil // do not pin an unusually large response's buffer
		}
	}
	if !failed {
		bw.Flush()
	}
}

// progressWriter writes responses to the connection with
// ResponseWriteTimeout as a no-progress timeout: each write gets that long,
// extended by as much each time it passes with at least progressBytes more
// written since it was last set. Only the writer goroutine uses it.
type progressWriter struct{ c *conn }

func (w progressWriter) Write(p []byte) (int, error) {
	nc, timeout := w.c.nc, w.c.b.cfg.ResponseWriteTimeout
	nc.SetWriteDeadline(time.Now().Add(timeout))
	written, mark := 0, 0
	for {
		n, err := nc.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || written-mark < progressBytes {
			return written, err
		}
		mark = written
		nc.SetWriteDeadline(time.Now().Add(timeout))
	}
}

// hold keeps the response budget the response being finished holds, for
// the writer to release once the response is written or dropped. It is
// called from finish functions, on the writer goroutine.
func (c *conn) hold(g grant) {
	c.held.release()
	c.held = g
}

package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxInFlight bounds the requests one connection may have read but not yet
// answered; beyond it the reader stops reading, which pushes back on the
// client through TCP.
const maxInFlight = 64

// maxKeptResponseBuffer is the largest encoding buffer a connection keeps
// between responses. A consumer's fetches are typically a few MiB, and
// allocating (and zeroing) that much per fetch is most of a fetch's CPU.
const maxKeptResponseBuffer = 16 << 20

// conn serves one client connection: a reader goroutine decodes requests and
// runs their handlers in order, a writer goroutine finishes them and writes
// the responses in the same (correlation-id) order.
type conn struct {
	b       *Broker
	nc      net.Conn
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	pending chan inflight
	wg      sync.WaitGroup

	clientID string // of the request being handled (reader goroutine only)
}

type inflight struct {
	corr int32
	key  int16
	r    reply
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

var (
	errRequestSize = errors.New("request size out of bounds")
	errUnknownKey  = errors.New("unsupported API key")
	errVersion     = errors.New("unsupported API version")
)

func newConn(b *Broker, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(b.ctx)
	return &conn{
		b:       b,
		nc:      nc,
		log:     b.log.With("client", nc.RemoteAddr().String()),
		ctx:     ctx,
		cancel:  cancel,
		pending: make(chan inflight, maxInFlight),
	}
}

// serve runs the connection until the client leaves, a request cannot be
// understood, or the broker shuts down. It returns after both goroutines
// have stopped and the socket is closed.
func (c *conn) serve() {
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
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), shutdown:
		c.log.Debug("connection closed")
	default:
		c.log.Warn("closing connection", "err", err)
	}
}

func (c *conn) read() error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	for {
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 8 || size > c.b.cfg.MaxRequestBytes {
			return fmt.Errorf("%w: %d bytes (limit %d)", errRequestSize, size, c.b.cfg.MaxRequestBytes)
		}
		// Read the fixed header first so that a request other than
		// Produce is held to the lower control-request limit before its
		// body is buffered.
		var head [8]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return err
		}
		key := int16(binary.BigEndian.Uint16(head[0:]))
		version := int16(binary.BigEndian.Uint16(head[2:]))
		corr := int32(binary.BigEndian.Uint32(head[4:]))
		if key != int16(kmsg.Produce) && size > c.b.cfg.MaxControlRequestBytes {
			return &requestError{key, version, corr, fmt.Errorf("%w: %d bytes (limit for non-produce requests %d)", errRequestSize, size, c.b.cfg.MaxControlRequestBytes)}
		}
		body := make([]byte, size-8)
		if _, err := io.ReadFull(br, body); err != nil {
			return err
		}
		r, err := c.handle(key, version, corr, body)
		if err != nil {
			return &requestError{key, version, corr, err}
		}
		select {
		case c.pending <- inflight{corr: corr, key: key, r: r}:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	}
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
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var buf []byte
	failed := false
	for in := range c.pending {
		resp := in.r.resp
		if in.r.finish != nil {
			resp = in.r.finish(c.ctx)
		}
		if in.r.none || failed {
			continue
		}
		buf = append(buf[:0], 0, 0, 0, 0)
		buf = binary.BigEndian.AppendUint32(buf, uint32(in.corr))
		// ApiVersions responses never carry header tags (KIP-511), so a
		// client can parse them before it knows which versions exist.
		if resp.IsFlexible() && in.key != int16(kmsg.ApiVersions) {
			buf = append(buf, 0)
		}
		buf = resp.AppendTo(buf)
		binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
		_, err := bw.Write(buf)
		if err == nil && len(c.pending) == 0 {
			err = bw.Flush()
		}
		if err != nil {
			// Keep draining so finish functions run (their records
			// must still be made durable), but stop writing.
			failed = true
			c.cancel()
			c.nc.Close()
		}
		if cap(buf) > maxKeptResponseBuffer {
			buf = nil // do not pin an unusually large response's buffer
		}
	}
	if !failed {
		bw.Flush()
	}
}

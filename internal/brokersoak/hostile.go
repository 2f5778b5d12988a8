package brokersoak

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/broker"
)

// Expectation classes of an outcome.
const (
	Expected   = "expected"
	Unexpected = "unexpected"
	Info       = "info"
)

// Outcome is how often one thing happened to a hostile client.
type Outcome struct {
	Name  string
	Class string // Expected, Unexpected or Info
	Count int64
}

// counters counts a hostile client's outcomes. It is safe for concurrent
// use.
type counters struct {
	mu    sync.Mutex
	order []string
	m     map[string]*Outcome
}

func newCounters() *counters { return &counters{m: map[string]*Outcome{}} }

func (c *counters) add(class, name string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.m[name]
	if !ok {
		o = &Outcome{Name: name, Class: class}
		c.m[name] = o
		c.order = append(c.order, name)
	}
	o.Count += n
}

func (c *counters) ok(name string)   { c.add(Expected, name, 1) }
func (c *counters) bad(name string)  { c.add(Unexpected, name, 1) }
func (c *counters) info(name string) { c.add(Info, name, 1) }

func (c *counters) snapshot() []Outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Outcome, 0, len(c.order))
	for _, n := range c.order {
		out = append(out, *c.m[n])
	}
	return out
}

// env is what every hostile client works with.
type env struct {
	addr   string
	bc     broker.Config // the limits the broker runs with
	cfg    Config
	l      *ledger
	groups *churnLog
}

// hostile is one kind of hostile client.
type hostile struct {
	name   string
	what   string // what it does, for the report
	expect string // what the broker should do
	run    func(ctx context.Context, e *env, ip ipRange, rng *rand.Rand, c *counters)
}

// ipRange is the block of loopback source addresses a hostile client
// dials from (127.0.N.1 and up), so that per-address limits see it apart
// from the pair, which dials from 127.0.0.1.
type ipRange byte

func (r ipRange) ip(i int) net.IP { return net.IPv4(127, 0, byte(r), byte(1+i%250)) }

// hostileIPBase is the first 127.0.N.0/24 block given to a hostile client.
const hostileIPBase = 10

// dialFrom connects to addr from source address ip. A positive rcvBuf
// sets the socket's receive buffer before it connects (a small one makes
// the broker's writes block sooner).
func dialFrom(ctx context.Context, ip net.IP, addr string, rcvBuf int) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			})
			return errors.Join(err, serr)
		}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// dialErr is a dial error without its addresses (they hold ephemeral
// ports), so that equal causes count as one outcome.
func dialErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// rawConn speaks the Kafka protocol at exactly the versions its caller
// sets, so it can send what real clients would not. Its connection is
// closed when the context it was made with ends.
type rawConn struct {
	net.Conn
	r    *bufio.Reader
	corr int32
	stop func() bool
}

func newRawConn(ctx context.Context, c net.Conn) *rawConn {
	return &rawConn{Conn: c, r: bufio.NewReader(c), stop: context.AfterFunc(ctx, func() { c.Close() })}
}

func (rc *rawConn) Close() error {
	rc.stop()
	return rc.Conn.Close()
}

// clientID is the client id of every raw request.
const clientID = "brokersoak"

// frame encodes req with a request header (v1, or v2 when req is
// flexible), size first.
func frame(req kmsg.Request, corr int32) []byte {
	buf := make([]byte, 4, 64)
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(corr))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(clientID)))
	buf = append(buf, clientID...)
	if req.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// maxResponseBytes bounds a response frame this tool reads.
const maxResponseBytes = 128 << 20

func (rc *rawConn) send(req kmsg.Request) error {
	rc.corr++
	_, err := rc.Write(frame(req, rc.corr))
	return err
}

// recv reads one response frame: its correlation id and the rest.
func (rc *rawConn) recv() (int32, []byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(rc.r, size[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > maxResponseBytes {
		return 0, nil, fmt.Errorf("response frame of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(body)), body[4:], nil
}

// roundTrip sends req and decodes its response, waiting up to timeout.
func (rc *rawConn) roundTrip(req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	rc.SetDeadline(time.Now().Add(timeout))
	defer rc.SetDeadline(time.Time{})
	if err := rc.send(req); err != nil {
		return nil, err
	}
	corr, body, err := rc.recv()
	if err != nil {
		return nil, err
	}
	if corr != rc.corr {
		return nil, fmt.Errorf("correlation id %d, want %d", corr, rc.corr)
	}
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
		rd := kbin.Reader{Src: body}
		kmsg.SkipTags(&rd)
		body = rd.Src
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %s v%d response: %w", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp, nil
}

// isClosed reports whether err means the peer closed or reset the
// connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitClosed reads from c, discarding, until the peer closes it (closed
// true) or bound passes; n is how many bytes arrived meanwhile.
func waitClosed(c net.Conn, bound time.Duration) (closed bool, n int64) {
	c.SetReadDeadline(time.Now().Add(bound))
	n, err := io.Copy(io.Discard, c)
	if err == nil { // io.Copy turns EOF into nil
		return true, n
	}
	return isClosed(err), n
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pause is the rest between two cycles of a hostile client: 1 to 2 s.
func pause(ctx context.Context, rng *rand.Rand) error {
	return sleep(ctx, time.Second+time.Duration(rng.Int64N(int64(time.Second))))
}

func apiVersionsRequest() kmsg.Request {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	return req
}

// hostiles lists every hostile client, in Kinds order.
func hostiles() []hostile {
	return []hostile{
		{KindConnFlood, "opens connections from several loopback addresses until the broker refuses them, holds them for a few seconds, releases them",
			"refusals once max_connections connections are open", connFlood},
		{KindIPFlood, "the same from one address", "refusals once max_connections_per_ip connections from that address are open", ipFlood},
		{KindSlowloris, "sends a request's size, then one byte a second", "disconnected within request_read_timeout of the first byte", slowloris},
		{KindAnnounce, "announces a 100 MiB Produce and sends nothing more, or trickles", "disconnected within request_read_timeout; queued_max_request_bytes bounds what the announcements reserve", largeAnnouncement},
		{KindNonReader, "pipelines large Fetches from the start of the pair's partitions and never reads a response", "disconnected within response_write_timeout once a response blocks; queued_max_response_bytes bounds what is held", nonReader},
		{KindMalformed, "produces RecordBatches with a correct CRC but a lying record count, a bad varint, a record past the end, a negative record length or trailing bytes (and one valid batch as a control)", "INVALID_RECORD (as Apache Kafka answers) for each malformed batch, the valid one accepted", malformedBatches},
		{KindGarbage, "sends broken frames: negative and tiny sizes, an unknown API key, a huge array count, forged tagged-field counts, random bytes", "the connection closed at once", garbageFrames},
		{KindTopicStorm, "creates 40-partition topics until refused, then deletes them", "POLICY_VIOLATION beyond max_partitions", topicStorm},
		{KindGroupChurn, "joins, syncs, commits and leaves fresh consumer groups, and commits offsets under more fresh group ids", "the groups' offsets expire after offsets_retention and the groups are deleted", groupChurn},
		{KindIdle, "opens connections, sends one request, then nothing", "closed after connections_max_idle", idleConnections},
		{KindColdReads, "fetches from random old offsets of the pair's partitions (not hostile: it opens closed segments)", "answered; at most max_open_closed_segments closed segments open at once", coldReads},
	}
}

// flood opens connections from ips round-robin, each answered one
// ApiVersions, until three in a row are refused or limit are open; holds
// them; closes them; and again until ctx ends.
func flood(ctx context.Context, e *env, ips []net.IP, limit int, rng *rand.Rand, c *counters) {
	hold := min(3*time.Second, e.bc.ConnectionsMaxIdle/2)
	for ctx.Err() == nil {
		var held []*rawConn
		refusedInRow := 0
		for i := 0; len(held) < limit && refusedInRow < 3 && ctx.Err() == nil; i++ {
			conn, err := dialFrom(ctx, ips[i%len(ips)], e.addr, 0)
			if err != nil {
				if ctx.Err() == nil {
					c.info("dial failed: " + dialErr(err))
					refusedInRow++
				}
				continue
			}
			rc := newRawConn(ctx, conn)
			_, err = rc.roundTrip(apiVersionsRequest(), 3*time.Second)
			switch {
			case err == nil:
				held = append(held, rc)
				c.info("connections answered")
				refusedInRow = 0
				continue
			case ctx.Err() != nil:
			case isClosed(err):
				c.ok("connections refused (closed unanswered)")
				refusedInRow++
			case isTimeout(err):
				c.info("connections unanswered within 3s")
				refusedInRow++
			default:
				c.info("connection error: " + err.Error())
				refusedInRow++
			}
			rc.Close()
		}
		if ctx.Err() == nil {
			if len(held) >= limit {
				c.bad(fmt.Sprintf("cycles that opened %d connections without a refusal", limit))
			} else {
				c.ok("cycles ended by refusals")
			}
			sleep(ctx, hold)
		}
		for _, rc := range held {
			rc.Close()
		}
		pause(ctx, rng)
	}
}

func connFlood(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	limit := e.bc.MaxConnections + 40
	// Enough addresses that none reaches max_connections_per_ip first.
	n := max(4, limit/max(1, e.bc.MaxConnectionsPerIP/2)+1)
	ips := make([]net.IP, min(n, 250))
	for i := range ips {
		ips[i] = r.ip(i)
	}
	flood(ctx, e, ips, limit, rng, c)
}

func ipFlood(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	flood(ctx, e, []net.IP{r.ip(0)}, e.bc.MaxConnectionsPerIP+20, rng, c)
}

// trickle writes head, then one byte of rest every interval, until the
// broker closes the connection or bound passes; it reports which, and
// whether the broker answered.
func trickle(ctx context.Context, conn net.Conn, head, rest []byte, interval, bound time.Duration) (closed, answered bool) {
	type result struct {
		closed bool
		n      int64
	}
	done := make(chan result, 1)
	go func() { // ends when the connection closes or bound passes
		cl, n := waitClosed(conn, bound)
		done <- result{cl, n}
	}()
	if _, err := conn.Write(head); err != nil {
		r := <-done
		return r.closed || isClosed(err), r.n > 0
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; ; {
		select {
		case r := <-done:
			return r.closed, r.n > 0
		case <-ctx.Done():
			conn.Close()
			r := <-done
			return false, r.n > 0
		case <-t.C:
			if i < len(rest) {
				conn.Write(rest[i : i+1]) // a failed write shows as closed below
				i++
			}
		}
	}
}

// parallel runs fn(i) for i in [0, n) and waits for them all.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i)
		}()
	}
	wg.Wait()
}

// slowloris sends a Metadata request a byte a second, five connections at
// a time.
func slowloris(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	bound := 2*e.bc.RequestReadTimeout + 5*time.Second
	// A request long enough that trickling it takes longer than bound.
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 4
	for len(frame(req, 1)) < int(bound.Seconds())+64 {
		t := kmsg.NewMetadataRequestTopic()
		name := fmt.Sprintf("soak-slowloris-%04d", len(req.Topics))
		t.Topic = &name
		req.Topics = append(req.Topics, t)
	}
	for ctx.Err() == nil {
		parallel(5, func(i int) {
			conn, err := dialFrom(ctx, r.ip(0), e.addr, 0)
			if err != nil {
				if ctx.Err() == nil {
					c.info("dial failed: " + dialErr(err))
				}
				return
			}
			defer conn.Close()
			b := frame(req, 1)
			closed, answered := trickle(ctx, conn, b[:4], b[4:], time.Second, bound)
			switch {
			case ctx.Err() != nil:
			case closed:
				c.ok("disconnected by the broker")
			default:
				c.bad(fmt.Sprintf("still connected %v after the first byte", bound))
			}
			if answered {
				c.bad("answered (the whole request arrived)")
			}
		})
		pause(ctx, rng)
	}
}

// largeAnnouncement announces a 100 MiB Produce on two connections at a
// time: one then sends nothing, the other a byte every 500 ms.
func largeAnnouncement(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	bound := 2*e.bc.RequestReadTimeout + 5*time.Second
	size := min(100<<20, e.bc.MaxRequestBytes)
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	b := frame(req, 1)
	head := b[:4+8+2+len(clientID)] // size and request header
	binary.BigEndian.PutUint32(head, uint32(size))
	rest := make([]byte, 4096)
	for ctx.Err() == nil {
		parallel(2, func(i int) {
			mode := [2]string{"silent", "trickling"}[i]
			conn, err := dialFrom(ctx, r.ip(i), e.addr, 0)
			if err != nil {
				if ctx.Err() == nil {
					c.info("dial failed: " + dialErr(err))
				}
				return
			}
			defer conn.Close()
			var body []byte
			if mode == "trickling" {
				body = rest
			}
			closed, _ := trickle(ctx, conn, head, body, 500*time.Millisecond, bound)
			switch {
			case ctx.Err() != nil:
			case closed:
				c.ok(mode + ": disconnected by the broker")
			default:
				c.bad(fmt.Sprintf("%s: still connected %v after the announcement", mode, bound))
			}
		})
		pause(ctx, rng)
	}
}

// idleConnections opens eight connections, sends each one ApiVersions and
// waits for the broker to close them.
func idleConnections(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	bound := 2*e.bc.ConnectionsMaxIdle + 5*time.Second
	for ctx.Err() == nil {
		parallel(8, func(i int) {
			conn, err := dialFrom(ctx, r.ip(0), e.addr, 0)
			if err != nil {
				if ctx.Err() == nil {
					c.info("dial failed: " + dialErr(err))
				}
				return
			}
			rc := newRawConn(ctx, conn)
			defer rc.Close()
			if _, err := rc.roundTrip(apiVersionsRequest(), 5*time.Second); err != nil {
				if ctx.Err() == nil {
					c.info("ApiVersions failed (refused by a connection limit?)")
				}
				return
			}
			closed, _ := waitClosed(conn, bound)
			switch {
			case ctx.Err() != nil:
			case closed:
				c.ok("closed by the broker")
			default:
				c.bad(fmt.Sprintf("still open after %v idle", bound))
			}
		})
		pause(ctx, rng)
	}
}

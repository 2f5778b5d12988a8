package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestMaxConnections: connections past max_connections are closed at once
// and counted; those already open are still served, and closing one frees
// its slot.
func TestMaxConnections(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.MaxConnections, c.MaxConnectionsPerIP = 4, 4 })
	addr := b.Addr().String()
	var open []*rawConn
	for range 4 {
		c := dialRaw(t, addr)
		metadata(t, c)
		open = append(open, c)
	}
	for i := range 3 {
		if !dialRaw(t, addr).closedByBroker() {
			t.Fatalf("connection %d past the limit was kept open", 5+i)
		}
	}
	wantLimitHits(t, b, limitMaxConnections, 3)
	wantLimitHits(t, b, limitMaxConnectionsPerIP, 0)
	for _, c := range open {
		metadata(t, c)
	}
	if got := gaugeValue(t, b.metrics.connections); got != 4 {
		t.Errorf("connections gauge %v, want 4", got)
	}
	open[0].c.Close()
	waitFor(t, "the closed connection's slot to be freed", func() bool { return gaugeValue(t, b.metrics.connections) == 3 })
	metadata(t, dialRaw(t, addr))
	wantLimitHits(t, b, limitMaxConnections, 3)
}

// TestMaxConnectionsPerIP: with a per-IP limit below the total, the
// connections from one address past it are closed and counted as such.
func TestMaxConnectionsPerIP(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.MaxConnections, c.MaxConnectionsPerIP = 10, 2 })
	addr := b.Addr().String()
	first, second := dialRaw(t, addr), dialRaw(t, addr)
	metadata(t, first)
	metadata(t, second)
	if !dialRaw(t, addr).closedByBroker() {
		t.Fatal("a third connection from 127.0.0.1 was kept open with max_connections_per_ip 2")
	}
	wantLimitHits(t, b, limitMaxConnectionsPerIP, 1)
	wantLimitHits(t, b, limitMaxConnections, 0)
	metadata(t, first)
	metadata(t, second)
}

// TestConnectionsMaxIdle: a connection without a request in flight for
// connections_max_idle is closed; one that keeps sending requests, or waits
// for a long-poll fetch longer than that, stays open.
func TestConnectionsMaxIdle(t *testing.T) {
	const idle = 300 * time.Millisecond
	b := startBroker(t, "", func(c *Config) { c.ConnectionsMaxIdle = idle })
	addr := b.Addr().String()

	idler := dialRaw(t, addr)
	metadata(t, idler)
	if !idler.closedByBroker() {
		t.Fatal("an idle connection was kept open")
	}

	busy := dialRaw(t, addr)
	for range 30 { // about 3 idle periods in all, none idle
		metadata(t, busy)
		time.Sleep(idle / 10)
	}
	busy.c.Close()

	poll := dialRaw(t, addr)
	createTopicRaw(t, poll, "idle-poll", 1)
	fetch := fetchReq("idle-poll", 0, 1<<20)
	fetch.MaxWaitMillis = int32(3 * idle / time.Millisecond) // nothing arrives: the full wait
	fetch.MinBytes = 1
	if resp := poll.roundTrip(fetch).(*kmsg.FetchResponse); resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("long poll: error %d", resp.Topics[0].Partitions[0].ErrorCode)
	}
	metadata(t, poll)
	poll.c.Close()

	wantLimitHits(t, b, limitConnectionsMaxIdle, 1)
}

// TestRequestReadTimeout: a client trickling a request one byte at a time
// is disconnected once request_read_timeout has passed since its first byte.
func TestRequestReadTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	b := startBroker(t, "", func(c *Config) { c.RequestReadTimeout = timeout })
	c := dialRaw(t, b.Addr().String())
	metadata(t, c) // a request sent at once is read
	req := frame(kmsg.NewPtrMetadataRequest(), 2)
	go func() {
		// Each byte a quarter of the timeout after the previous: the
		// whole request would take several timeouts.
		for _, x := range req {
			if _, err := c.c.Write([]byte{x}); err != nil {
				return
			}
			time.Sleep(timeout / 4)
		}
	}()
	if !c.closedByBroker() {
		t.Fatal("a trickling client was answered or kept open")
	}
	wantLimitHits(t, b, limitRequestReadTimeout, 1)
	wantLimitHits(t, b, limitConnectionsMaxIdle, 0)
}

// TestAnnouncedRequestNotAllocated: clients that announce the largest
// request and send a few bytes of it hold its size in the request budget
// but not in memory; those the budget cannot take wait, and shutdown ends
// their wait and gives every byte back.
func TestAnnouncedRequestNotAllocated(t *testing.T) {
	const size, clients, fit = 100 << 20, 8, 5
	b := startBroker(t, "", func(c *Config) {
		c.MaxRequestBytes = size
		c.QueuedMaxRequestBytes = fit * size
	})
	addr := b.Addr().String()
	for i := range clients {
		c := dialRaw(t, addr)
		head := binary.BigEndian.AppendUint32(nil, size)
		head = binary.BigEndian.AppendUint16(head, uint16(kmsg.Produce))
		head = binary.BigEndian.AppendUint16(head, 7)
		head = binary.BigEndian.AppendUint32(head, uint32(i))
		if _, err := c.c.Write(append(head, make([]byte, 10)...)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the announced sizes to be reserved and the rest to wait", func() bool {
		return gaugeValue(t, b.metrics.queuedRequest) == fit*size && limitHits(t, b, limitQueuedRequestBytes) == clients-fit
	})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse >= size {
		t.Errorf("heap in use %d MiB with %d requests of %d MiB announced: their bodies were allocated up front", ms.HeapInuse>>20, clients, size>>20)
	}

	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown did not end the connections waiting for the request budget")
	}
	if got := gaugeValue(t, b.metrics.queuedRequest); got != 0 {
		t.Errorf("queued request bytes %v after shutdown, want 0", got)
	}
	if got := gaugeValue(t, b.metrics.connections); got != 0 {
		t.Errorf("connections gauge %v after shutdown, want 0", got)
	}
}

// TestQueuedMaxRequestBytes: many clients send large produce requests; the
// bytes reserved never exceed queued_max_request_bytes, the requests that do
// not fit wait (counted once each), and every one is answered.
func TestQueuedMaxRequestBytes(t *testing.T) {
	const budget, clients = 8 << 20, 6
	b := startBroker(t, "", func(c *Config) {
		c.MaxRequestBytes = 4 << 20
		c.MaxControlRequestBytes = 1 << 20
		c.QueuedMaxRequestBytes = budget
		c.Topics.MaxMessageBytes = 4 << 20
	})
	addr := b.Addr().String()
	createTopicRaw(t, dialRaw(t, addr), "queued", 1)

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak.Store(max(peak.Load(), b.requestBudget.inUse()))
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()

	// Each request is about 3 MiB: two fit in the budget.
	batch := makeBatch(testBatch{records: 3, value: make([]byte, 1<<20)})
	conns := make([]*rawConn, clients)
	frames := make([][]byte, clients)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
		frames[i] = frame(produceReq(7, -1, "queued", 0, batch), 1)
		// The first half: the header is read and the size reserved
		// if it fits, but no request is complete.
		if _, err := conns[i].c.Write(frames[i][:len(frames[i])/2]); err != nil {
			t.Fatal(err)
		}
	}
	size := float64(len(frames[0]) - 4)
	waitFor(t, "two requests to be reserved and four to wait", func() bool {
		return gaugeValue(t, b.metrics.queuedRequest) == 2*size && limitHits(t, b, limitQueuedRequestBytes) == clients-2
	})

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.c.Write(frames[i][len(frames[i])/2:]); err != nil {
				errs <- err
				return
			}
			_, body, err := c.recvRaw()
			if err != nil {
				errs <- err
				return
			}
			resp := kmsg.NewPtrProduceResponse()
			resp.Version = 7
			if err := resp.ReadFrom(body); err != nil {
				errs <- err
				return
			}
			if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
				errs <- kerr.ErrorForCode(code)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("client: %v", err)
	}
	close(stop)
	<-sampled
	if p := peak.Load(); p > budget {
		t.Errorf("request bytes reserved peaked at %d, over the budget of %d", p, budget)
	}
	waitFor(t, "the request budget to be free", func() bool { return gaugeValue(t, b.metrics.queuedRequest) == 0 })
	if got := limitHits(t, b, limitQueuedRequestBytes); got != clients-2 {
		t.Errorf("queued_max_request_bytes hits %v, want %d (once per waiting request)", got, clients-2)
	}
}

// TestResponseWriteTimeout: a consumer that stops reading its fetch
// responses is disconnected after response_write_timeout and the response
// budget its responses held is given back, while another consumer keeps
// fetching.
func TestResponseWriteTimeout(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.ResponseWriteTimeout = 200 * time.Millisecond })
	addr := b.Addr().String()
	reader := dialRaw(t, addr)
	produceMiB(t, reader, "slow-reader", 8)

	stuck := dialStuck(t, addr)
	for range 10 { // 80 MB of responses, more than the socket buffers hold
		stuck.send(fetchReq("slow-reader", 0, 8<<20))
	}
	if n := fetchedBytes(t, reader, fetchReq("slow-reader", 0, 1<<20)); n == 0 {
		t.Fatal("another consumer got no records while one stopped reading")
	}
	waitFor(t, "the consumer that stopped reading to be disconnected", func() bool {
		return limitHits(t, b, limitResponseWriteTimeout) == 1
	})
	waitFor(t, "the response budget to be free", func() bool { return gaugeValue(t, b.metrics.queuedResponse) == 0 })
	drainUntilClosed(t, stuck)
	if n := fetchedBytes(t, reader, fetchReq("slow-reader", 0, 1<<20)); n == 0 {
		t.Fatal("no records fetched after the stuck consumer was disconnected")
	}
	wantLimitHits(t, b, limitResponseWriteTimeout, 1)
	wantLimitHits(t, b, limitQueuedResponseBytes, 0)
}

// TestQueuedMaxResponseBytes: while a consumer that does not read holds the
// response budget, another's fetch waits its max wait and returns what fits
// (here nothing); once the first one leaves, the budget is free again.
func TestQueuedMaxResponseBytes(t *testing.T) {
	const budget = 4 << 20
	b := startBudgetBroker(t, budget)
	addr := b.Addr().String()
	reader := dialRaw(t, addr)
	produceMiB(t, reader, "held", 12)

	stuck := holdResponseBudget(t, b, addr, "held", budget)
	fetch := fetchReq("held", 0, budget)
	fetch.MaxWaitMillis, fetch.MinBytes = 300, 1
	if n := fetchedBytes(t, reader, fetch); n != 0 {
		t.Fatalf("fetch got %d record bytes with the response budget held by another connection", n)
	}
	wantLimitHits(t, b, limitQueuedResponseBytes, 1)

	stuck.c.Close()
	waitFor(t, "the response budget to be free", func() bool { return gaugeValue(t, b.metrics.queuedResponse) == 0 })
	if n := fetchedBytes(t, reader, fetch); n == 0 {
		t.Fatal("no records fetched once the response budget was free")
	}
}

// TestFetchBatchLargerThanResponseBudget: a batch larger than the whole
// response budget is still served, alone, so its consumer does not stall.
func TestFetchBatchLargerThanResponseBudget(t *testing.T) {
	const budget = 64 << 10
	b := startBudgetBroker(t, budget)
	c := dialRaw(t, b.Addr().String())
	createTopicRaw(t, c, "wide-batch", 1)
	batch := makeBatch(testBatch{value: make([]byte, 2*budget)})
	if got := producePartition(c.roundTrip(produceReq(7, -1, "wide-batch", 0, batch))); got.ErrorCode != 0 {
		t.Fatalf("produce: error %d", got.ErrorCode)
	}
	if n := fetchedBytes(t, c, fetchReq("wide-batch", 0, budget)); n != len(batch) {
		t.Fatalf("fetched %d record bytes, want the whole %d-byte batch", n, len(batch))
	}
	waitFor(t, "the response budget to be free", func() bool { return gaugeValue(t, b.metrics.queuedResponse) == 0 })
	wantLimitHits(t, b, limitQueuedResponseBytes, 0)
}

// metadata sends a Metadata request and fails unless it is answered.
func metadata(t testing.TB, c *rawConn) {
	t.Helper()
	if resp := c.roundTrip(kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
		t.Fatalf("metadata: %d brokers", len(resp.Brokers))
	}
}

// createTopicRaw creates a topic over c.
func createTopicRaw(t testing.TB, c *rawConn, name string, partitions int32) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 4
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	req.Topics = append(req.Topics, rt)
	if resp := c.roundTrip(req).(*kmsg.CreateTopicsResponse); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic %s: error %d", name, resp.Topics[0].ErrorCode)
	}
}

// produceMiB creates topic with one partition and produces n batches of
// about 1 MB to it.
func produceMiB(t testing.TB, c *rawConn, topic string, n int) {
	t.Helper()
	createTopicRaw(t, c, topic, 1)
	batch := makeBatch(testBatch{value: make([]byte, 1_000_000)})
	for range n {
		if got := producePartition(c.roundTrip(produceReq(7, -1, topic, 0, batch))); got.ErrorCode != 0 {
			t.Fatalf("produce: error %d", got.ErrorCode)
		}
	}
}

// fetchReq asks for partition 0 of topic from offset, at most maxBytes,
// without waiting.
func fetchReq(topic string, offset int64, maxBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.MaxBytes = maxBytes
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset = offset
	fp.PartitionMaxBytes = maxBytes
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	return req
}

// fetchedBytes fetches and returns the record bytes of partition 0.
func fetchedBytes(t testing.TB, c *rawConn, req *kmsg.FetchRequest) int {
	t.Helper()
	p := c.roundTrip(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch: error %d", p.ErrorCode)
	}
	return len(p.RecordBatches)
}

// dialStuck connects with a small receive buffer, for a client that sends
// requests and does not read the responses.
func dialStuck(t testing.TB, addr string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	if err := c.c.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	return c
}

// drainUntilClosed reads what the broker wrote before it closed c and
// fails if c is still open.
func drainUntilClosed(t testing.TB, c *rawConn) {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := c.recvRaw(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the connection is still open")
			}
			return
		}
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// bound: it waits for a state, it does not time anything.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestBudget: grants in arrival order, never over the capacity; a wait
// ended by its context leaves the line and lets those behind it go;
// releasing twice gives the bytes back once.
func TestBudget(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	b := newBudget(10, m.queuedRequest)
	ctx := context.Background()
	if _, err := b.acquire(ctx, 11, false); err == nil {
		t.Fatal("acquired more than the whole budget")
	}
	first, err := b.acquire(ctx, 6, false)
	if err != nil {
		t.Fatal(err)
	}
	// A waiter for 8 is first in line: a later small taker does not
	// pass it, even though 2 bytes are free.
	big := acquireAsync(t, b, 8, false)
	waitFor(t, "the waiter to queue", func() bool { return b.waiting() == 1 })
	if _, ok := b.tryAcquire(2, false); ok {
		t.Fatal("a taker passed a waiter in line")
	}
	if g, _ := b.acquireUpTo(2); g.n != 0 {
		t.Fatalf("acquireUpTo took %d bytes past a waiter in line", g.n)
	}
	// A wait ended by its context leaves the line.
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan error)
	go func() {
		_, err := b.acquire(cctx, 1, false)
		gone <- err
	}()
	waitFor(t, "the second waiter to queue", func() bool { return b.waiting() == 2 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	first.release()
	first.release()
	g := <-big
	if got := b.inUse(); got != 8 {
		t.Fatalf("in use %d after the waiter was granted, want 8", got)
	}
	if got := gaugeValue(t, m.queuedRequest); got != 8 {
		t.Fatalf("gauge %v, want 8", got)
	}
	g.shrink(3)
	rest, free := b.acquireUpTo(100)
	if rest.n != 7 || free != 7 {
		t.Fatalf("acquireUpTo took %d of %d free bytes, want 7 of 7", rest.n, free)
	}
	if rest.grow(1) {
		t.Fatal("grew a grant past the capacity")
	}
	g.release()
	rest.release()
	if got := b.inUse(); got != 0 {
		t.Fatalf("in use %d after every grant was released, want 0", got)
	}
}

// TestShortFetchesWaitWithoutRereading: two fetches that find the response
// budget short of their first batch wait for bytes to be freed without
// reading the batch again each time the other one gives back what it took:
// the memory allocated while they wait stays within a few batches (it was
// gigabytes when each attempt's release woke the other to read again).
func TestShortFetchesWaitWithoutRereading(t *testing.T) {
	const budget = 4 << 20
	b := startBudgetBroker(t, budget)
	addr := b.Addr().String()
	produceMiB(t, dialRaw(t, addr), "held", 12)
	holdResponseBudget(t, b, addr, "held", budget)

	r1, r2 := dialRaw(t, addr), dialRaw(t, addr)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	got := make([]int, 2)
	for i, r := range []*rawConn{r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fetch := fetchReq("held", 0, budget)
			fetch.MaxWaitMillis, fetch.MinBytes = 1000, 1
			resp, err := r.recvResponse(fetch, r.send(fetch))
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = len(resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches)
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	if got[0] != 0 || got[1] != 0 {
		t.Fatalf("fetches got %v record bytes with the response budget held by another connection", got)
	}
	// Each fetch reads its 1 MB batch once to learn it does not fit and
	// once more when its max wait ends.
	const bound = 16 << 20
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%.1f MiB allocated while two fetches waited for the response budget", float64(alloc)/(1<<20))
	if alloc > bound {
		t.Errorf("%d MiB allocated while two fetches waited for the response budget, want at most %d MiB", alloc>>20, bound>>20)
	}
}

// acquireAsync acquires n bytes of b in a goroutine and delivers the grant
// on the channel it returns.
func acquireAsync(t testing.TB, b *budget, n int64, passing bool) <-chan grant {
	ch := make(chan grant)
	go func() {
		g, err := b.acquire(context.Background(), n, passing)
		if err != nil {
			t.Error(err)
		}
		ch <- g
	}()
	return ch
}

// waiting returns how many acquires wait in b's line.
func (b *budget) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters)
}

// wantLimitHits reports an error unless limit was hit exactly want times.
func wantLimitHits(t testing.TB, b *Broker, limit string, want float64) {
	t.Helper()
	if got := limitHits(t, b, limit); got != want {
		t.Errorf("%s hits %v, want %v", limit, got, want)
	}
}

// startBudgetBroker runs a broker whose response budget and fetch_max_bytes
// are both budget bytes.
func startBudgetBroker(t testing.TB, budget int32) *Broker {
	t.Helper()
	return startBroker(t, "", func(c *Config) {
		c.FetchMaxBytes = budget
		c.QueuedMaxResponseBytes = int64(budget)
	})
}

// holdResponseBudget makes a connection that does not read hold almost all
// of the response budget with fetches of topic, and returns once the bytes
// it holds stop changing.
func holdResponseBudget(t testing.TB, b *Broker, addr, topic string, budget int32) *rawConn {
	t.Helper()
	stuck := dialStuck(t, addr)
	for range 12 { // about 4 MB each: the writer blocks holding one
		stuck.send(fetchReq(topic, 0, budget))
	}
	var last float64
	waitFor(t, "a blocked response to hold the response budget", func() bool {
		prev := last
		last = gaugeValue(t, b.metrics.queuedResponse)
		if last < float64(budget-(1<<20)) || last != prev {
			return false
		}
		time.Sleep(100 * time.Millisecond)
		return gaugeValue(t, b.metrics.queuedResponse) == last
	})
	return stuck
}

// TestBudgetPassing: a passing taker gets free bytes past a waiter that
// others' grants block, also while it waits itself, but not once passing
// grants are all that block the head of the line; then it queues behind.
func TestBudgetPassing(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	b := newBudget(10, m.queuedRequest)
	ctx := context.Background()
	large, err := b.acquire(ctx, 6, false)
	if err != nil {
		t.Fatal(err)
	}
	// Blocked by the large grant: passing takers go first.
	head := acquireAsync(t, b, 8, false)
	waitFor(t, "the waiter to queue", func() bool { return b.waiting() == 1 })
	if _, ok := b.tryAcquire(1, false); ok {
		t.Fatal("a taker that may not pass passed a waiter in line")
	}
	small, ok := b.tryAcquire(3, true)
	if !ok {
		t.Fatal("a passing taker got nothing with 4 bytes free")
	}
	// A passing waiter behind the head is granted once bytes are free.
	behind := acquireAsync(t, b, 2, true)
	waitFor(t, "the passing waiter to queue", func() bool { return b.waiting() == 2 })
	small.shrink(1)
	second := <-behind
	if got := b.inUse(); got != 9 {
		t.Fatalf("in use %d, want 9", got)
	}
	// Once only passing grants block the head, nobody passes it.
	large.release()
	if _, ok := b.tryAcquire(1, true); ok {
		t.Fatal("a passing taker passed a waiter blocked by passing grants only")
	}
	small.release()
	second.release()
	g := <-head
	if got := b.inUse(); got != 8 {
		t.Fatalf("in use %d after the head waiter was granted, want 8", got)
	}
	g.release()
	if got := b.inUse(); got != 0 {
		t.Fatalf("in use %d after every grant was released, want 0", got)
	}
}

// TestLargeRequestWaitDoesNotStopSmallRequests: while a large produce
// request waits for request budget that two slow ones hold, an unrelated
// client's Metadata request is answered from the budget still free, and the
// large one keeps its place.
func TestLargeRequestWaitDoesNotStopSmallRequests(t *testing.T) {
	const size = 8 << 20
	b := startBroker(t, "", func(c *Config) {
		c.MaxRequestBytes = size
		c.QueuedMaxRequestBytes = 2*size + 1<<20 // 1 MiB free for everybody else
		c.RequestReadTimeout = time.Minute       // the slow ones keep the budget
	})
	addr := b.Addr().String()
	other := dialRaw(t, addr)
	metadata(t, other)
	for i := range 3 {
		c := dialRaw(t, addr)
		head := binary.BigEndian.AppendUint32(nil, size)
		head = binary.BigEndian.AppendUint16(head, uint16(kmsg.Produce))
		head = binary.BigEndian.AppendUint16(head, 7)
		head = binary.BigEndian.AppendUint32(head, uint32(i))
		if _, err := c.c.Write(append(head, make([]byte, 10)...)); err != nil {
			t.Fatal(err)
		}
	}
	waiting := func() bool {
		b.requestBudget.mu.Lock()
		defer b.requestBudget.mu.Unlock()
		return len(b.requestBudget.waiters) == 1 && b.requestBudget.used == 2*size
	}
	waitFor(t, "two large requests to hold the budget and a third to wait", func() bool {
		return waiting() && limitHits(t, b, limitQueuedRequestBytes) == 1
	})
	other.c.SetDeadline(time.Now().Add(20 * time.Second)) // a bound, not a timing
	metadata(t, other)
	if !waiting() {
		t.Error("the large request stopped waiting before the Metadata request was answered")
	}
	wantLimitHits(t, b, limitQueuedRequestBytes, 1)
}

// TestResponseNotHeldBehindAcks0Produce: a fetch response followed on the
// connection by an acks=0 produce (which has no response) is sent, and the
// connection is not closed as idle for want of it.
func TestResponseNotHeldBehindAcks0Produce(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.ConnectionsMaxIdle = time.Minute })
	c := dialRaw(t, b.Addr().String())
	createTopicRaw(t, c, "empty", 1)
	createTopicRaw(t, c, "sink", 1)
	fetch := fetchReq("empty", 0, 1<<20)
	fetch.MaxWaitMillis, fetch.MinBytes = 200, 1
	c.corr++
	fetchCorr := c.corr
	buf := frame(fetch, c.corr)
	c.corr++
	buf = append(buf, frame(produceReq(7, 0, "sink", 0, makeBatch(testBatch{value: []byte("x")})), c.corr)...)
	if _, err := c.c.Write(buf); err != nil {
		t.Fatal(err)
	}
	c.c.SetDeadline(time.Now().Add(20 * time.Second)) // a bound, well below the idle limit
	corr, _, err := c.recvRaw()
	if err != nil {
		t.Fatalf("the fetch response was not sent: %v", err)
	}
	if corr != fetchCorr {
		t.Fatalf("response to correlation id %d, want %d", corr, fetchCorr)
	}
	metadata(t, c) // the connection is still open
	wantLimitHits(t, b, limitConnectionsMaxIdle, 0)
}

// TestResponseNotHeldBehindLongPoll: a fetch's response is sent while the
// next fetch on the connection still long-polls: it is received before any
// data arrives for the second one, whose response then carries that data.
func TestResponseNotHeldBehindLongPoll(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	c := dialRaw(t, addr)
	createTopicRaw(t, c, "empty", 1)
	f1 := fetchReq("empty", 0, 1<<20)
	f1.MaxWaitMillis, f1.MinBytes = 100, 1
	f2 := fetchReq("empty", 0, 1<<20)
	f2.MaxWaitMillis, f2.MinBytes = 60_000, 1 // longer than the bound below: ends only with data
	if _, err := c.c.Write(append(frame(f1, 1), frame(f2, 2)...)); err != nil {
		t.Fatal(err)
	}
	c.c.SetDeadline(time.Now().Add(20 * time.Second)) // a bound, not a timing
	if corr, _, err := c.recvRaw(); err != nil || corr != 1 {
		t.Fatalf("first response: correlation id %d, %v; want 1 while the second fetch long-polls", corr, err)
	}
	// Only now does the second fetch get data.
	p := dialRaw(t, addr)
	if got := producePartition(p.roundTrip(produceReq(7, -1, "empty", 0, makeBatch(testBatch{value: []byte("x")})))); got.ErrorCode != 0 {
		t.Fatalf("produce: error %d", got.ErrorCode)
	}
	corr, body, err := c.recvRaw()
	if err != nil || corr != 2 {
		t.Fatalf("second response: correlation id %d, %v; want 2", corr, err)
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = f2.Version
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Topics[0].Partitions[0].RecordBatches); n == 0 {
		t.Error("the second fetch returned no records: it was not waiting when the first response arrived")
	}
}

// TestSlowSteadyReaderServed: a consumer that reads one response for far
// longer than response_write_timeout, but steadily in small chunks, each
// read well within that timeout, receives the whole response and stays
// connected.
func TestSlowSteadyReaderServed(t *testing.T) {
	const timeout = 500 * time.Millisecond
	b := startBroker(t, "", func(c *Config) { c.ResponseWriteTimeout = timeout })
	addr := b.Addr().String()
	produceMiB(t, dialRaw(t, addr), "slow", 8)
	r := dialStuck(t, addr)
	fetch := fetchReq("slow", 0, 8<<20)
	r.send(fetch)
	r.c.SetDeadline(time.Now().Add(60 * time.Second)) // a bound, not a timing
	var size [4]byte
	if _, err := io.ReadFull(r.r, size[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	const chunk = 32 << 10
	for got := 0; got < len(body); {
		n, err := io.ReadFull(r.r, body[got:min(got+chunk, len(body))])
		got += n
		if err != nil {
			t.Fatalf("disconnected after %d of %d response bytes: %v", got, len(body), err)
		}
		time.Sleep(timeout / 32) // about 2 MB/s
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = fetch.Version
	if err := resp.ReadFrom(body[4:]); err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Topics[0].Partitions[0].RecordBatches); n < 8_000_000 {
		t.Fatalf("fetched %d record bytes, want the 8 MB produced", n)
	}
	metadata(t, r) // still connected
	wantLimitHits(t, b, limitResponseWriteTimeout, 0)
}

// TestSlowSteadyWriterServed: a producer that sends one request for far
// longer than request_read_timeout, but steadily in small chunks, each
// well within that timeout, is answered and stays connected.
func TestSlowSteadyWriterServed(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b := startBroker(t, "", func(c *Config) {
		c.RequestReadTimeout = timeout
		c.Topics.MaxMessageBytes = 4 << 20
	})
	c := dialRaw(t, b.Addr().String())
	createTopicRaw(t, c, "slow-produce", 1)
	req := produceReq(7, -1, "slow-produce", 0, makeBatch(testBatch{value: make([]byte, 3_000_000)}))
	c.corr++
	buf := frame(req, c.corr)
	const chunk = 32 << 10
	for sent := 0; sent < len(buf); sent += chunk {
		if _, err := c.c.Write(buf[sent:min(sent+chunk, len(buf))]); err != nil {
			t.Fatalf("disconnected after %d of %d request bytes: %v", sent, len(buf), err)
		}
		time.Sleep(timeout / 20) // about 2 MB/s
	}
	resp, err := c.recvResponse(req, c.corr)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	if code := producePartition(resp).ErrorCode; code != 0 {
		t.Fatalf("produce: error %d", code)
	}
	metadata(t, c) // still connected
	wantLimitHits(t, b, limitRequestReadTimeout, 0)
}

// TestConcurrentSmallFetchesNoBudgetHits: many concurrent fetches of a
// tiny batch each reserve up to the whole response budget for a moment
// before keeping only their records' bytes; meeting such a reservation is
// not the budget running out, so no hit is counted and every fetch gets
// its records.
func TestConcurrentSmallFetchesNoBudgetHits(t *testing.T) {
	const budget = 1 << 20
	b := startBudgetBroker(t, budget)
	addr := b.Addr().String()
	c := dialRaw(t, addr)
	createTopicRaw(t, c, "tiny", 1)
	if got := producePartition(c.roundTrip(produceReq(7, -1, "tiny", 0, makeBatch(testBatch{value: []byte("hello")})))); got.ErrorCode != 0 {
		t.Fatalf("produce: error %d", got.ErrorCode)
	}
	const clients, fetches = 8, 200
	var empty atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		r := dialRaw(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range fetches {
				f := fetchReq("tiny", 0, budget)
				f.MaxWaitMillis, f.MinBytes = 10_000, 1
				resp, err := r.recvResponse(f, r.send(f))
				if err != nil {
					t.Error(err)
					return
				}
				if len(resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].RecordBatches) == 0 {
					empty.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := empty.Load(); n != 0 {
		t.Errorf("%d of %d fetches returned no records", n, clients*fetches)
	}
	if got := limitHits(t, b, limitQueuedResponseBytes); got != 0 {
		t.Errorf("queued_max_response_bytes hits %v with at most %d tiny responses in use, want 0", got, clients)
	}
}

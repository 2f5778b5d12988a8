package brokersoak

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// malformedTopic receives the malformed batches (and the valid control
// batch); the pair never reads it.
const malformedTopic = "soak-malformed"

// fetchRequest is a Fetch v10 of the given partitions and offsets.
func fetchRequest(e *env, at []pos, maxBytes, partitionMaxBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 10
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = maxBytes
	req.SessionEpoch = -1
	// One entry per topic, each partition once: a request naming a
	// partition twice is not what any client sends.
	seen := map[pos]bool{}
	byTopic := map[int]int{} // topic index → index in req.Topics
	for _, p := range at {
		key := pos{topic: p.topic, partition: p.partition}
		if seen[key] {
			continue
		}
		seen[key] = true
		i, ok := byTopic[p.topic]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic = e.l.topics[p.topic]
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			byTopic[p.topic] = i
		}
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = p.partition
		fp.FetchOffset = p.offset
		fp.LogStartOffset = -1
		fp.CurrentLeaderEpoch = -1
		fp.PartitionMaxBytes = partitionMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, fp)
	}
	return req
}

// socketBufferMax is the most bytes the kernel may buffer for a loopback
// connection's sender (tcp_wmem's maximum), plus the small receive
// buffer the non-reader sets: more bytes than this arriving after the
// wait means the broker was still writing past response_write_timeout.
func socketBufferMax() int64 {
	const fallback = 4 << 20
	raw, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(raw))
	if len(f) != 3 {
		return fallback
	}
	n, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return fallback
	}
	return n + nonReaderRcvBuf*4
}

const nonReaderRcvBuf = 4096

// nonReader pipelines eight Fetches of every pair partition from offset
// 0, up to 50 MiB each, on a connection with a 4 KiB receive buffer, and
// reads nothing for a while; then it reads what comes to tell whether the
// broker gave up on the connection.
func nonReader(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	bound := 2*e.bc.ResponseWriteTimeout + 5*time.Second
	var all []pos
	for t := range e.l.topics {
		for p := range e.cfg.Partitions {
			all = append(all, pos{topic: t, partition: int32(p)})
		}
	}
	limit := socketBufferMax()
	for ctx.Err() == nil {
		conn, err := dialFrom(ctx, r.ip(0), e.addr, nonReaderRcvBuf)
		if err != nil {
			if ctx.Err() == nil {
				c.info("dial failed: " + dialErr(err))
			}
			pause(ctx, rng)
			continue
		}
		rc := newRawConn(ctx, conn)
		const requests = 8
		for range requests {
			if err = rc.send(fetchRequest(e, all, 50<<20, 16<<20)); err != nil {
				break
			}
		}
		sleep(ctx, bound)
		// Now read: all eight responses arriving means the broker kept
		// the connection (an idle close after them does not count); the
		// connection ending before them means it gave up on it.
		rc.SetReadDeadline(time.Now().Add(10 * time.Second))
		frames, n := 0, int64(0)
		for ; frames < requests; frames++ {
			var body []byte
			_, body, err = rc.recv()
			if err != nil {
				break
			}
			n += int64(len(body)) + 8
		}
		switch {
		case ctx.Err() != nil:
		case frames == requests && n > limit:
			c.bad(fmt.Sprintf("all responses written after %v unread (more than the socket buffers hold)", bound))
		case frames == requests:
			c.info("responses fit in the socket buffers (too little data to block the broker)")
		case isClosed(err):
			c.ok("disconnected by the broker with responses unwritten")
		default:
			c.info("responses still arriving 10s after reading began: " + errClass(err))
		}
		rc.Close()
		pause(ctx, rng)
	}
}

// malformed batch variants.
var malformedVariants = []struct {
	name    string
	records int32 // the batch's record count (and last offset delta + 1)
	body    func() []byte
	valid   bool
}{
	{"valid batch (control)", 1, func() []byte { return withLen(record(0)) }, true},
	{"lying record count", 5, func() []byte { return concat(withLen(record(0)), withLen(record(1)), withLen(record(2))) }, false},
	{"bad varint", 1, func() []byte {
		return concat([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, record(0))
	}, false},
	{"record length past the end", 1, func() []byte { return concat(binary.AppendVarint(nil, 1000), record(0)) }, false},
	{"negative record length", 1, func() []byte { return concat(binary.AppendVarint(nil, -5), record(0)) }, false},
	{"trailing bytes", 1, func() []byte { return concat(withLen(record(0)), []byte{1, 2, 3, 4, 5, 6, 7}) }, false},
}

// record is record i of a batch, without its length: no key, a short
// value, no headers.
func record(i int) []byte {
	r := []byte{0} // attributes
	r = binary.AppendVarint(r, int64(i))
	r = binary.AppendVarint(r, int64(i))
	r = binary.AppendVarint(r, -1) // null key
	v := "malformed-soak"
	r = binary.AppendVarint(r, int64(len(v)))
	r = append(r, v...)
	return binary.AppendVarint(r, 0) // no headers
}

func withLen(r []byte) []byte { return append(binary.AppendVarint(nil, int64(len(r))), r...) }

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordBatch is a RecordBatch v2 holding body as its records, claiming
// n records, with its length and CRC right.
func recordBatch(n int32, body []byte) []byte {
	now := time.Now().UnixMilli()
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      n - 1,
		FirstTimestamp:       now,
		MaxTimestamp:         now,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           n,
		Records:              body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// malformedBatches produces every variant to malformedTopic, one
// connection for as long as the broker keeps it.
func malformedBatches(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	var rc *rawConn
	defer func() {
		if rc != nil {
			rc.Close()
		}
	}()
	for ctx.Err() == nil {
		for _, v := range malformedVariants {
			if rc == nil {
				conn, err := dialFrom(ctx, r.ip(0), e.addr, 0)
				if err != nil {
					if ctx.Err() == nil {
						c.info("dial failed: " + dialErr(err))
					}
					break
				}
				rc = newRawConn(ctx, conn)
			}
			req := kmsg.NewPtrProduceRequest()
			req.Version = 7
			req.Acks = -1
			req.TimeoutMillis = 10000
			t := kmsg.NewProduceRequestTopic()
			t.Topic = malformedTopic
			p := kmsg.NewProduceRequestTopicPartition()
			p.Records = recordBatch(v.records, v.body())
			t.Partitions = append(t.Partitions, p)
			req.Topics = append(req.Topics, t)
			resp, err := rc.roundTrip(req, 15*time.Second)
			if err != nil {
				if ctx.Err() == nil {
					c.bad(v.name + ": connection failed (" + errClass(err) + ")")
				}
				rc.Close()
				rc = nil
				continue
			}
			pr := resp.(*kmsg.ProduceResponse)
			code := int16(-1)
			if len(pr.Topics) == 1 && len(pr.Topics[0].Partitions) == 1 {
				code = pr.Topics[0].Partitions[0].ErrorCode
			}
			switch {
			case v.valid && code == 0:
				c.ok(v.name + ": accepted")
			case v.valid:
				c.bad(v.name + ": refused with " + codeName(code))
			case code == kerr.InvalidRecord.Code:
				c.ok(v.name + ": INVALID_RECORD")
			case code == 0:
				c.bad(v.name + ": accepted")
			default:
				c.bad(v.name + ": refused with " + codeName(code))
			}
		}
		pause(ctx, rng)
	}
}

func codeName(code int16) string {
	if code == -1 {
		return "no partition in the response"
	}
	var ke *kerr.Error
	if errors.As(kerr.ErrorForCode(code), &ke) {
		return ke.Message
	}
	return fmt.Sprintf("error code %d", code)
}

func errClass(err error) string {
	switch {
	case isClosed(err):
		return "closed by the broker"
	case isTimeout(err):
		return "timed out"
	}
	return err.Error()
}

// garbageCases are broken frames, each on its own connection. random
// frames are a Metadata v1 header followed by random bytes: the broker
// may answer one that happens to decode.
func garbageCases(rng *rand.Rand) []struct {
	name  string
	bytes []byte
} {
	randomBody := func() []byte {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 1
		b := frame(req, 1)
		b = b[:4+10+len(clientID)]
		for range 16 + rng.IntN(200) {
			b = append(b, byte(rng.Uint32()))
		}
		binary.BigEndian.PutUint32(b, uint32(len(b)-4))
		return b
	}
	unknownKey := frame(kmsg.NewPtrMetadataRequest(), 1)
	binary.BigEndian.PutUint16(unknownKey[4:], 9999)
	return []struct {
		name  string
		bytes []byte
	}{
		{"negative size", []byte{0xff, 0xff, 0xff, 0xff}},
		{"size too small for a header", []byte{0, 0, 0, 3, 0, 0, 0}},
		{"size over max_request_bytes", []byte{0x7f, 0xff, 0xff, 0xff}},
		{"unknown API key", unknownKey},
		{"huge array count", metadataWithArrayCount(1 << 30)},
		{"forged header tag count", forgedHeaderTags()},
		{"forged body tag count", forgedBodyTags()},
		{"random body", randomBody()},
	}
}

// metadataWithArrayCount is a Metadata v1 request whose topic array claims
// n entries but holds none.
func metadataWithArrayCount(n int32) []byte {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	b := frame(req, 1)
	b = b[:len(b)-4] // the encoded null array length
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// forgedHeaderTags is a flexible Metadata request whose header declares
// 2^32-1 tagged fields.
func forgedHeaderTags() []byte {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	b := frame(req, 1)
	head := b[:4+10+len(clientID)]
	out := append(append([]byte(nil), head...), 0xff, 0xff, 0xff, 0xff, 0x0f)
	out = append(out, b[len(head)+1:]...) // the body after the empty tag section
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// forgedBodyTags is a flexible Metadata request whose body ends with a
// tagged-field section declaring 2^32-1 tags.
func forgedBodyTags() []byte {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	b := frame(req, 1)
	out := append(b[:len(b)-1], 0xff, 0xff, 0xff, 0xff, 0x0f) // replaces the empty tag section
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// garbageFrames sends each garbage case on a connection of its own and
// checks that the broker closes it.
func garbageFrames(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	for ctx.Err() == nil {
		for _, gc := range garbageCases(rng) {
			conn, err := dialFrom(ctx, r.ip(0), e.addr, 0)
			if err != nil {
				if ctx.Err() == nil {
					c.info("dial failed: " + dialErr(err))
				}
				break
			}
			rc := newRawConn(ctx, conn)
			conn.Write(gc.bytes) // the broker may close before reading it all
			closed, n := waitClosed(conn, 10*time.Second)
			rc.Close()
			switch {
			case ctx.Err() != nil:
			case gc.name == "random body" && n > 0:
				c.info(gc.name + ": answered (it decoded)")
			case closed && n == 0:
				c.ok(gc.name + ": closed")
			case closed:
				c.bad(gc.name + ": answered, then closed")
			default:
				c.bad(gc.name + ": still open after 10s")
			}
		}
		pause(ctx, rng)
	}
}

// kgoClient is a franz-go client dialing from source address ip.
func kgoClient(e *env, r ipRange, name string, opts ...kgo.Opt) (*kgo.Client, error) {
	d := func(ctx context.Context, network, host string) (net.Conn, error) {
		return dialFrom(ctx, r.ip(0), host, 0)
	}
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.addr), kgo.ClientID("brokersoak-" + name), kgo.Dialer(d)}, opts...)...)
}

// stormPartitions is the partition count of each storm topic.
const stormPartitions = 40

// topicStorm creates three 40-partition topics a request until the broker
// refuses one with POLICY_VIOLATION (or the partitions asked for pass
// max_partitions by 120), holds them two seconds, deletes them.
func topicStorm(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	cl, err := kgoClient(e, r, "storm", kgo.RetryTimeout(10*time.Second))
	if err != nil {
		c.bad("client: " + err.Error())
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for cycle := 0; ctx.Err() == nil; cycle++ {
		var created []string
		refused := false
		asked := 0
		for i := 0; !refused && asked <= e.bc.MaxPartitions+120 && ctx.Err() == nil; i++ {
			names := make([]string, 3)
			for j := range names {
				names[j] = fmt.Sprintf("soak-storm-%d-%d-%d", cycle, i, j)
			}
			asked += len(names) * stormPartitions
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			resps, err := adm.CreateTopics(rctx, stormPartitions, 1, nil, names...)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					c.info("CreateTopics failed: " + errClass(err))
				}
				break
			}
			for _, t := range resps.Sorted() {
				switch {
				case t.Err == nil:
					created = append(created, t.Topic)
					c.info("topics created")
				case errors.Is(t.Err, kerr.PolicyViolation):
					c.ok("topics refused with POLICY_VIOLATION")
					refused = true
				default:
					c.bad("topics refused with " + t.Err.Error())
				}
			}
		}
		if ctx.Err() == nil && !refused {
			c.bad(fmt.Sprintf("cycles that asked for %d partitions without POLICY_VIOLATION", asked))
		}
		sleep(ctx, 2*time.Second)
		if len(created) > 0 {
			// Deleted even after ctx ends, so the storm's partitions do
			// not stay behind in the broker's catalog.
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			resps, err := adm.DeleteTopics(dctx, created...)
			cancel()
			if err != nil {
				c.bad("DeleteTopics failed: " + err.Error())
			}
			for _, t := range resps {
				if t.Err != nil {
					c.bad("topic deletion failed: " + t.Err.Error())
				} else {
					c.info("topics deleted")
				}
			}
		}
		pause(ctx, rng)
	}
}

// churnLog remembers when each churned group last committed, so the end
// of the run can tell which should have expired. Safe for concurrent use.
type churnLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (g *churnLog) committed(group string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.last[group] = time.Now()
}

// olderThan returns the groups whose last commit is before t.
func (g *churnLog) olderThan(t time.Time) map[string]bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]bool{}
	for id, at := range g.last {
		if at.Before(t) {
			out[id] = true
		}
	}
	return out
}

func (g *churnLog) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.last)
}

// churnGroupPrefix starts every churned group's id.
const churnGroupPrefix = "soak-churn-"

// groupChurn runs four members of four fresh groups through join, sync,
// commit and leave, and commits for eight more fresh groups without
// members, every cycle.
func groupChurn(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	cl, err := kgoClient(e, r, "churn", kgo.RetryTimeout(10*time.Second))
	if err != nil {
		c.bad("client: " + err.Error())
		return
	}
	defer cl.Close()
	topic := e.l.topics[0]
	var mu sync.Mutex // guards rng
	newID := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%s%016x", churnGroupPrefix, rng.Uint64())
	}
	for ctx.Err() == nil {
		parallel(4, func(int) {
			if err := churnMember(ctx, cl, newID(), topic, e.groups); err != nil {
				if ctx.Err() == nil {
					churnFailed(c, err)
				}
				return
			}
			c.ok("members joined, committed and left")
		})
		for range 8 {
			id := newID()
			if err := commit(ctx, cl, id, -1, "", topic); err != nil {
				if ctx.Err() == nil {
					churnFailed(c, err)
				}
				continue
			}
			e.groups.committed(id)
			c.ok("offsets committed without a member")
		}
		pause(ctx, rng)
	}
}

// churnFailed counts a failed churn request. A connection the broker closed
// is expected here: the other hostile clients keep max_connections and
// max_connections_per_ip saturated, so a reconnect can be refused, and a
// connection left idle between rounds is closed after connections_max_idle;
// the client does not retry a request it had written. Anything else is not.
func churnFailed(c *counters, err error) {
	if strings.HasSuffix(err.Error(), "closed by the broker") {
		c.info(err.Error() + " (connection limits saturated, or closed idle)")
		return
	}
	c.bad(err.Error())
}

// churnMember joins group as its only member, syncs an empty assignment,
// commits offset 0 of partition 0 of topic and leaves.
func churnMember(ctx context.Context, cl *kgo.Client, group, topic string, g *churnLog) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{topic}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group = group
	join.SessionTimeoutMillis = 10_000
	join.RebalanceTimeoutMillis = 10_000
	join.ProtocolType = "consumer"
	proto := kmsg.NewJoinGroupRequestProtocol()
	proto.Name = "range"
	proto.Metadata = meta.AppendTo(nil)
	join.Protocols = append(join.Protocols, proto)
	var jr *kmsg.JoinGroupResponse
	for range 2 { // a second time with the member id MEMBER_ID_REQUIRED gives
		resp, err := join.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("JoinGroup: %s", errClass(err))
		}
		jr = resp
		if resp.ErrorCode != kerr.MemberIDRequired.Code {
			break
		}
		join.MemberID = resp.MemberID
	}
	if jr.ErrorCode != 0 {
		return fmt.Errorf("JoinGroup: %s", codeName(jr.ErrorCode))
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group = group
	sync.Generation = jr.Generation
	sync.MemberID = jr.MemberID
	sync.ProtocolType = kmsg.StringPtr("consumer")
	sync.Protocol = kmsg.StringPtr("range")
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID = jr.MemberID
	assignment := kmsg.NewConsumerMemberAssignment()
	a.MemberAssignment = assignment.AppendTo(nil)
	sync.GroupAssignment = append(sync.GroupAssignment, a)
	sr, err := sync.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("SyncGroup: %s", errClass(err))
	}
	if sr.ErrorCode != 0 {
		return fmt.Errorf("SyncGroup: %s", codeName(sr.ErrorCode))
	}
	if err := commit(ctx, cl, group, jr.Generation, jr.MemberID, topic); err != nil {
		return err
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = group
	leave.MemberID = jr.MemberID
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = jr.MemberID
	leave.Members = append(leave.Members, m)
	lr, err := leave.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("LeaveGroup: %s", errClass(err))
	}
	if lr.ErrorCode != 0 {
		return fmt.Errorf("LeaveGroup: %s", codeName(lr.ErrorCode))
	}
	g.committed(group) // the group is empty from now: its offsets' retention starts
	return nil
}

// commit commits offset 0 of partition 0 of topic for group.
func commit(ctx context.Context, cl *kgo.Client, group string, generation int32, member, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = group
	req.Generation = generation
	req.MemberID = member
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = topic
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Offset = 0
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("OffsetCommit: %s", errClass(err))
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return fmt.Errorf("OffsetCommit: %s", codeName(p.ErrorCode))
			}
		}
	}
	return nil
}

// coldReads fetches six random old offsets of the pair's partitions four
// times a second, on one connection for as long as the broker keeps it.
func coldReads(ctx context.Context, e *env, r ipRange, rng *rand.Rand, c *counters) {
	var rc *rawConn
	defer func() {
		if rc != nil {
			rc.Close()
		}
	}()
	for ctx.Err() == nil {
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return
		}
		at := e.l.randomAcked(rng, 6)
		if len(at) == 0 {
			continue
		}
		if rc == nil {
			conn, err := dialFrom(ctx, r.ip(0), e.addr, 0)
			if err != nil {
				if ctx.Err() == nil {
					c.info("dial failed: " + dialErr(err))
				}
				continue
			}
			rc = newRawConn(ctx, conn)
		}
		resp, err := rc.roundTrip(fetchRequest(e, at, 1<<20, 128<<10), 15*time.Second)
		if err != nil {
			if ctx.Err() == nil {
				c.info("connection lost: " + errClass(err))
			}
			rc.Close()
			rc = nil
			continue
		}
		fr := resp.(*kmsg.FetchResponse)
		if fr.ErrorCode != 0 {
			c.bad("fetch refused with " + codeName(fr.ErrorCode))
			continue
		}
		for _, t := range fr.Topics {
			for _, p := range t.Partitions {
				switch {
				case p.ErrorCode != 0:
					c.bad("partitions answered " + codeName(p.ErrorCode))
				case len(p.RecordBatches) == 0:
					// A fetch that finds queued_max_response_bytes
					// held by others (the non-readers) returns what
					// fits, which may be nothing.
					c.info("partitions answered without records (the response budget was in use)")
				default:
					c.ok("partitions answered with records")
				}
			}
		}
	}
}

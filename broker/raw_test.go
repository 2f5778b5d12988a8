package broker

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn speaks the Kafka protocol at exactly the versions a test sets, so
// tests can send what real clients would not.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	r    *bufio.Reader
	corr int32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// frame encodes req with a request header, as a client would.
func frame(req kmsg.Request, corr int32) []byte {
	buf := make([]byte, 4, 64)
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(corr))
	buf = binary.BigEndian.AppendUint16(buf, 4)
	buf = append(buf, "test"...)
	if req.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

func (r *rawConn) send(req kmsg.Request) int32 {
	r.t.Helper()
	r.corr++
	if _, err := r.c.Write(frame(req, r.corr)); err != nil {
		r.t.Fatalf("send: %v", err)
	}
	return r.corr
}

// recvRaw reads one response frame: correlation id and the rest.
func (r *rawConn) recvRaw() (int32, []byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r.r, size[:]); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.r, body); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(body)), body[4:], nil
}

// roundTrip sends req and decodes the response at the request's version.
func (r *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	r.corr++
	if _, err := r.c.Write(frame(req, r.corr)); err != nil {
		r.t.Fatalf("send: %v", err)
	}
	resp, err := r.recvResponse(req, r.corr)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

// recvResponse reads the next response and decodes it as the answer to req
// sent with correlation id corr. It does not fail the test, so goroutines
// may use it.
func (r *rawConn) recvResponse(req kmsg.Request, corr int32) (kmsg.Response, error) {
	got, body, err := r.recvRaw()
	if err != nil {
		return nil, fmt.Errorf("%s v%d: read response: %w", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	if got != corr {
		return nil, fmt.Errorf("correlation id %d, want %d", got, corr)
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

// closedByBroker reports whether the broker closed the connection (the next
// read ends) rather than answering.
func (r *rawConn) closedByBroker() bool {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := r.recvRaw()
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// testBatch describes a RecordBatch v2 for makeBatch.
type testBatch struct {
	producerID    int64
	producerEpoch int16
	baseSequence  int32
	records       int
	timestamp     int64 // first record's time, ms; each next record +1 ms
	attributes    int16
	value         []byte
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// makeBatch encodes an uncompressed RecordBatch v2 with a valid CRC.
func makeBatch(tb testBatch) []byte {
	if tb.records == 0 {
		tb.records = 1
	}
	if tb.producerID == 0 && tb.producerEpoch == 0 && tb.baseSequence == 0 {
		tb.producerID, tb.producerEpoch, tb.baseSequence = -1, -1, -1
	}
	var records []byte
	for i := 0; i < tb.records; i++ {
		var rec []byte
		rec = append(rec, 0) // attributes
		rec = binary.AppendVarint(rec, int64(i))
		rec = binary.AppendVarint(rec, int64(i))
		rec = binary.AppendVarint(rec, -1) // null key
		rec = binary.AppendVarint(rec, int64(len(tb.value)))
		rec = append(rec, tb.value...)
		rec = binary.AppendVarint(rec, 0) // no headers
		records = binary.AppendVarint(records, int64(len(rec)))
		records = append(records, rec...)
	}
	b := make([]byte, 0, 61+len(records))
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint32(b, 0) // length, set below
	b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	b = append(b, 2)
	b = binary.BigEndian.AppendUint32(b, 0) // crc, set below
	b = binary.BigEndian.AppendUint16(b, uint16(tb.attributes))
	b = binary.BigEndian.AppendUint32(b, uint32(tb.records-1))
	b = binary.BigEndian.AppendUint64(b, uint64(tb.timestamp))
	b = binary.BigEndian.AppendUint64(b, uint64(tb.timestamp+int64(tb.records-1)))
	b = binary.BigEndian.AppendUint64(b, uint64(tb.producerID))
	b = binary.BigEndian.AppendUint16(b, uint16(tb.producerEpoch))
	b = binary.BigEndian.AppendUint32(b, uint32(tb.baseSequence))
	b = binary.BigEndian.AppendUint32(b, uint32(tb.records))
	b = append(b, records...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32Checksum(b[21:]))
	return b
}

// produceReq builds a single-partition Produce request.
func produceReq(version int16, acks int16, topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = version
	req.Acks = acks
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func producePartition(resp kmsg.Response) kmsg.ProduceResponseTopicPartition {
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, crc32c) }

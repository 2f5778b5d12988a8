package broker

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzRequestStream feeds arbitrary bytes to a broker connection as if a
// client sent them: size prefixes, headers and bodies of any API. The broker
// must not panic or hang, must answer or close, and must keep serving.
// Requests that create or delete topics or partitions are turned into
// Metadata requests so iterations stay independent and cheap; those
// handlers' validation has its own table tests.
func FuzzRequestStream(f *testing.F) {
	b := startBroker(f, "")
	createTopic(f, b.Addr().String(), "fuzz", 2, nil)

	seed := func(req kmsg.Request) []byte { return frame(req, 1) }
	produce := produceReq(7, -1, "fuzz", 0, makeBatch(testBatch{records: 2, value: []byte("x")}))
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 11
	fetch.MaxWaitMillis = 1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "fuzz"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	apiv := kmsg.NewPtrApiVersionsRequest()
	apiv.Version = 3
	apiv.ClientSoftwareName, apiv.ClientSoftwareVersion = "fuzz", "1"
	list := kmsg.NewPtrListOffsetsRequest()
	list.Version = 4
	logDirs := kmsg.NewPtrDescribeLogDirsRequest()
	logDirs.Version = 4
	for _, s := range [][]byte{
		seed(kmsg.NewPtrMetadataRequest()), seed(produce), seed(fetch), seed(apiv), seed(list),
		seed(kmsg.NewPtrDescribeConfigsRequest()), seed(kmsg.NewPtrInitProducerIDRequest()), seed(logDirs),
		append(seed(apiv), seed(produce)...),
		metadataWithArrayCount(1 << 30),
		{0xff, 0xff, 0xff, 0xff},
		{0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 1},
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		data = neutraliseAdmin(data)
		c := serveFuzzInput(t, b, b.listeners[0], data)
		// The broker still answers a well-formed request.
		r, err := c.handle(int16(kmsg.Metadata), 1, 1, append([]byte{0xff, 0xff}, 0xff, 0xff, 0xff, 0xff))
		if err != nil {
			t.Fatalf("metadata after fuzz input: %v", err)
		}
		if resp := r.resp.(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
			t.Fatalf("metadata after fuzz input: %d brokers", len(resp.Brokers))
		}
	})
}

// neutraliseAdmin rewrites the API key of every complete frame that would
// create, delete or grow topics into Metadata's.
func neutraliseAdmin(data []byte) []byte {
	out := append([]byte(nil), data...)
	for i := 0; i+6 <= len(out); {
		size := int(int32(binary.BigEndian.Uint32(out[i:])))
		if size < 2 {
			break
		}
		switch kmsg.Key(binary.BigEndian.Uint16(out[i+4:])) {
		case kmsg.CreateTopics, kmsg.DeleteTopics, kmsg.CreatePartitions, kmsg.IncrementalAlterConfigs:
			binary.BigEndian.PutUint16(out[i+4:], uint16(kmsg.Metadata))
		}
		i += 4 + size
	}
	return out
}

// serveFuzzInput serves one connection on lis whose client sends data and
// closes, and returns it once it has finished (within 30 s, else the test
// fails).
func serveFuzzInput(t *testing.T, b *Broker, lis *listener, data []byte) *conn {
	client, server := net.Pipe()
	c := newConn(b, lis, server)
	done := make(chan struct{})
	go func() { c.serve(); close(done) }()
	go io.Copy(io.Discard, client)
	client.SetWriteDeadline(time.Now().Add(time.Second))
	client.Write(data)
	client.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("connection did not finish within 30s of the client closing")
	}
	return c
}

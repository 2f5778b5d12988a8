package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAcksZeroRefusedClosesConnection: an acks=0 produce gets no answer, so
// when a partition of it is refused (here an unknown topic) the broker
// closes the connection, as Kafka does, and the producer notices; the
// partitions accepted in the same request are stored. Without a refusal
// the connection stays open.
func TestAcksZeroRefusedClosesConnection(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	createTopic(t, addr, "acks0", 1, nil)
	c := dialRaw(t, addr)
	ok := produceReq(7, 0, "acks0", 0, makeBatch(testBatch{value: []byte("first")}))
	c.send(ok)
	metadata := kmsg.NewPtrMetadataRequest()
	metadata.Version = 7
	if resp := c.roundTrip(metadata).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
		t.Fatal("no metadata after an accepted acks=0 produce")
	}

	mixed := produceReq(7, 0, "acks0", 0, makeBatch(testBatch{value: []byte("second")}))
	other := produceReq(7, 0, "no-such-topic", 0, makeBatch(testBatch{value: []byte("lost")}))
	mixed.Topics = append(mixed.Topics, other.Topics...)
	c.send(mixed)
	if !c.closedByBroker() {
		t.Fatal("the connection stayed open after an acks=0 produce with a refused partition")
	}
	got := consumeN(t, addr, "acks0", 2)
	if string(got[0].Value) != "first" || string(got[1].Value) != "second" {
		t.Fatalf("stored %q, %q; want first, second", got[0].Value, got[1].Value)
	}
}

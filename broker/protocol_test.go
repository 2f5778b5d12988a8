package broker

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestApiVersions checks the advertised table (versions advertised must be
// versions implemented, so this list changes only with a handler) and the
// KIP-511 fallback for a version the broker does not know.
func TestApiVersions(t *testing.T) {
	b := startBroker(t, "")
	want := map[kmsg.Key][2]int16{
		kmsg.Produce: {0, 9}, kmsg.Fetch: {4, 12}, kmsg.ListOffsets: {1, 6}, kmsg.Metadata: {0, 12},
		kmsg.ApiVersions: {0, 3}, kmsg.CreateTopics: {0, 7}, kmsg.DeleteTopics: {0, 6},
		kmsg.InitProducerID: {0, 2}, kmsg.DescribeConfigs: {0, 4}, kmsg.CreatePartitions: {0, 3},
		kmsg.IncrementalAlterConfigs: {0, 1},
		kmsg.FindCoordinator:         {0, 4}, kmsg.JoinGroup: {0, 9}, kmsg.SyncGroup: {0, 5}, kmsg.Heartbeat: {0, 4},
		kmsg.LeaveGroup: {0, 5}, kmsg.OffsetCommit: {2, 8}, kmsg.OffsetFetch: {1, 8}, kmsg.DescribeGroups: {0, 5},
		kmsg.ListGroups: {0, 4}, kmsg.DeleteGroups: {0, 2}, kmsg.OffsetDelete: {0, 0},
		kmsg.SASLHandshake: {0, 1}, kmsg.SASLAuthenticate: {0, 2},
		kmsg.DescribeUserSCRAMCredentials: {0, 0}, kmsg.AlterUserSCRAMCredentials: {0, 0},
		kmsg.DescribeLogDirs: {1, 4}, kmsg.DescribeClientQuotas: {0, 1},
		kmsg.DescribeACLs: {1, 3}, kmsg.CreateACLs: {1, 3}, kmsg.DeleteACLs: {1, 3},
	}
	for v := int16(0); v <= 3; v++ {
		c := dialRaw(t, b.Addr().String())
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "factorywire-test", "1.0"
		resp := c.roundTrip(req).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: error %d", v, resp.ErrorCode)
		}
		got := map[kmsg.Key][2]int16{}
		for _, k := range resp.ApiKeys {
			got[kmsg.Key(k.ApiKey)] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		for k, r := range want {
			if got[k] != r {
				t.Errorf("v%d: %s advertised %v, want %v", v, k.Name(), got[k], r)
			}
		}
	}

	// v3 validates the client software fields as Kafka does.
	bad := kmsg.NewPtrApiVersionsRequest()
	bad.Version = 3
	bad.ClientSoftwareName, bad.ClientSoftwareVersion = "my_client", "1.0"
	if resp := dialRaw(t, b.Addr().String()).roundTrip(bad).(*kmsg.ApiVersionsResponse); resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("client software name with '_': error %d, want INVALID_REQUEST", resp.ErrorCode)
	}

	// A future version is answered in the v0 format with error 35.
	c := dialRaw(t, b.Addr().String())
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	msg := frame(req, 7)
	binary.BigEndian.PutUint16(msg[6:], 42) // claim version 42
	if _, err := c.c.Write(msg); err != nil {
		t.Fatal(err)
	}
	corr, body, err := c.recvRaw()
	if err != nil || corr != 7 {
		t.Fatalf("fallback response: corr %d err %v", corr, err)
	}
	v0 := kmsg.NewPtrApiVersionsResponse()
	v0.Version = 0
	if err := v0.ReadFrom(body); err != nil {
		t.Fatalf("fallback response is not v0 format: %v", err)
	}
	if v0.ErrorCode != kerr.UnsupportedVersion.Code || len(v0.ApiKeys) != len(want) {
		t.Fatalf("fallback: error %d with %d keys, want 35 with %d", v0.ErrorCode, len(v0.ApiKeys), len(want))
	}
}

// TestProduceValidation sends batches no real client would: each is refused
// with the code a client expects, and nothing is written.
func TestProduceValidation(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	createTopic(t, addr, "v", 1, map[string]*string{"max.message.bytes": ptr("2000")})
	good := makeBatch(testBatch{records: 3, timestamp: 1000, value: []byte("x")})

	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 0xff
	magic1 := bytes.Clone(good)
	magic1[16] = 1
	twoBatches := append(bytes.Clone(good), good...)
	countMismatch := bytes.Clone(good)
	binary.BigEndian.PutUint32(countMismatch[57:], 5)
	binary.BigEndian.PutUint32(countMismatch[17:], crc32Checksum(countMismatch[21:]))

	cases := []struct {
		name    string
		version int16
		acks    int16
		topic   string
		records []byte
		want    int16
	}{
		{"produce v2 refused", 2, -1, "v", good, kerr.UnsupportedVersion.Code},
		{"invalid acks", 7, 2, "v", good, kerr.InvalidRequiredAcks.Code},
		{"unknown topic", 7, -1, "nope", good, kerr.UnknownTopicOrPartition.Code},
		{"bad crc", 7, -1, "v", badCRC, kerr.CorruptMessage.Code},
		{"magic 1", 7, -1, "v", magic1, kerr.UnsupportedForMessageFormat.Code},
		{"two batches", 7, -1, "v", twoBatches, kerr.InvalidRecord.Code},
		{"truncated", 7, -1, "v", good[:40], kerr.CorruptMessage.Code},
		{"empty", 7, -1, "v", nil, kerr.InvalidRecord.Code},
		{"record count mismatch", 7, -1, "v", countMismatch, kerr.InvalidRecord.Code},
		{"transactional", 7, -1, "v", makeBatch(testBatch{producerID: 1, baseSequence: 0, attributes: attrTransactional}), kerr.TransactionalIDAuthorizationFailed.Code},
		{"log append time", 7, -1, "v", makeBatch(testBatch{attributes: attrLogAppendTime}), kerr.InvalidTimestamp.Code},
		{"over max.message.bytes", 7, -1, "v", makeBatch(testBatch{value: make([]byte, 3000)}), kerr.MessageTooLarge.Code},
		{"unknown codec", 7, -1, "v", makeBatch(testBatch{attributes: 7}), kerr.UnsupportedCompressionType.Code},
	}
	c := dialRaw(t, addr)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := producePartition(c.roundTrip(produceReq(tc.version, tc.acks, tc.topic, 0, tc.records)))
			if got.ErrorCode != tc.want {
				t.Fatalf("error %d (%v), want %d (%v)", got.ErrorCode, kerr.ErrorForCode(got.ErrorCode), tc.want, kerr.ErrorForCode(tc.want))
			}
		})
	}
	// Nothing above was written: the next good batch lands at offset 0.
	got := producePartition(c.roundTrip(produceReq(7, -1, "v", 0, good)))
	if got.ErrorCode != 0 || got.BaseOffset != 0 {
		t.Fatalf("good batch after refusals: error %d offset %d, want 0 and 0", got.ErrorCode, got.BaseOffset)
	}
}

// TestProduceTransactionalID checks Kafka's rule for a Produce request's
// transactional id: beside plain records it is ignored; transactional
// records, with or without one, refuse the whole request with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (transactions are not implemented).
func TestProduceTransactionalID(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	createTopic(t, addr, "v", 1, nil)
	c := dialRaw(t, addr)
	for _, tc := range []struct {
		name  string
		attrs int16
		id    *string
		want  int16
	}{
		{"plain records, transactional id", 0, ptr("tx"), 0},
		{"transactional records, transactional id", attrTransactional, ptr("tx"), kerr.TransactionalIDAuthorizationFailed.Code},
		{"transactional records, no transactional id", attrTransactional, nil, kerr.TransactionalIDAuthorizationFailed.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := produceReq(9, -1, "v", 0, makeBatch(testBatch{producerID: 1, baseSequence: 0, attributes: tc.attrs, value: []byte("x")}))
			req.TransactionID = tc.id
			if got := producePartition(c.roundTrip(req)); got.ErrorCode != tc.want {
				t.Fatalf("error %v, want %v", kerr.ErrorForCode(got.ErrorCode), kerr.ErrorForCode(tc.want))
			}
		})
	}
}

// TestIdempotentProducer covers the sequence window: a retried batch is
// acknowledged with its first offset and not written twice, a gap or an old
// epoch is refused, and the window survives a broker restart.
func TestIdempotentProducer(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	addr := b.Addr().String()
	createTopic(t, addr, "idem", 1, nil)
	c := dialRaw(t, addr)
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version = 2
	ipr := c.roundTrip(init).(*kmsg.InitProducerIDResponse)
	if ipr.ErrorCode != 0 {
		t.Fatalf("init producer id: %d", ipr.ErrorCode)
	}
	pid := ipr.ProducerID
	batch := func(seq int32, n int, epoch int16) []byte {
		return makeBatch(testBatch{producerID: pid, producerEpoch: epoch, baseSequence: seq, records: n, value: []byte("v")})
	}
	send := func(c *rawConn, records []byte) kmsg.ProduceResponseTopicPartition {
		return producePartition(c.roundTrip(produceReq(7, -1, "idem", 0, records)))
	}
	steps := []struct {
		name       string
		records    []byte
		wantCode   int16
		wantOffset int64
	}{
		{"first", batch(0, 3, 5), 0, 0},
		{"second", batch(3, 2, 5), 0, 3},
		{"retry of first is a duplicate", batch(0, 3, 5), 0, 0},
		{"retry of second is a duplicate", batch(3, 2, 5), 0, 3},
		{"gap", batch(9, 1, 5), kerr.OutOfOrderSequenceNumber.Code, -1},
		{"old epoch", batch(5, 1, 4), kerr.InvalidProducerEpoch.Code, -1},
		{"next in order", batch(5, 1, 5), 0, 5},
		{"new epoch must start at 0", batch(6, 1, 6), kerr.OutOfOrderSequenceNumber.Code, -1},
		{"new epoch from 0", batch(0, 1, 6), 0, 6},
	}
	for _, s := range steps {
		got := send(c, s.records)
		if got.ErrorCode != s.wantCode || (s.wantCode == 0 && got.BaseOffset != s.wantOffset) {
			t.Fatalf("%s: error %d offset %d, want %d and %d", s.name, got.ErrorCode, got.BaseOffset, s.wantCode, s.wantOffset)
		}
	}

	// Restart: the retry is still recognised, and the producer id
	// allocator never hands out the same id again.
	b.Close()
	b2 := startBroker(t, dir)
	c2 := dialRaw(t, b2.Addr().String())
	if got := send(c2, batch(0, 1, 6)); got.ErrorCode != 0 || got.BaseOffset != 6 {
		t.Fatalf("retry after restart: error %d offset %d, want 0 and 6", got.ErrorCode, got.BaseOffset)
	}
	if got := send(c2, batch(1, 1, 6)); got.ErrorCode != 0 || got.BaseOffset != 7 {
		t.Fatalf("next after restart: error %d offset %d, want 0 and 7", got.ErrorCode, got.BaseOffset)
	}
	ipr2 := c2.roundTrip(init).(*kmsg.InitProducerIDResponse)
	if ipr2.ErrorCode != 0 || ipr2.ProducerID <= pid {
		t.Fatalf("producer id after restart %d (error %d), want > %d", ipr2.ProducerID, ipr2.ErrorCode, pid)
	}
	// Transactions are refused plainly.
	txn := kmsg.NewPtrInitProducerIDRequest()
	txn.Version = 2
	txn.TransactionalID = ptr("txn-1")
	if got := c2.roundTrip(txn).(*kmsg.InitProducerIDResponse); got.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transactional init: error %d", got.ErrorCode)
	}
}

// TestMalformedRequestsCloseOnlyTheirConnection sends broken frames; each
// closes its own connection and the broker keeps serving others.
func TestMalformedRequestsCloseOnlyTheirConnection(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	bigMeta := func() []byte {
		buf := frame(kmsg.NewPtrMetadataRequest(), 1)
		buf = append(buf, make([]byte, 9<<20)...)
		binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
		return buf
	}
	cases := []struct {
		name  string
		bytes []byte
	}{
		{"negative size", []byte{0xff, 0xff, 0xff, 0xff}},
		{"size too small for a header", []byte{0, 0, 0, 3, 0, 0, 0}},
		{"size over the request limit", []byte{0x7f, 0xff, 0xff, 0xff}},
		{"unknown api key", frameWithKey(kmsg.NewPtrMetadataRequest(), 9999)},
		{"unsupported fetch version", frameWithVersion(kmsg.NewPtrFetchRequest(), 2)},
		{"garbage body", append([]byte{0, 0, 0, 14, 0, 3, 0, 9, 0, 0, 0, 1, 0, 2}, 0xff, 0xff, 0xff, 0xff)[:18]},
		{"huge array count", metadataWithArrayCount(1 << 30)},
		{"control request over its limit", bigMeta()},
		{"forged header tag count", forgedHeaderTags()},
		{"forged body tag count", forgedBodyTags()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			// The broker may close before it has read everything, so
			// a failed write is an expected outcome too.
			c.c.Write(tc.bytes)
			if !c.closedByBroker() {
				t.Fatal("the broker answered or kept the connection open")
			}
			// Another connection is still served.
			ok := dialRaw(t, addr)
			if resp := ok.roundTrip(kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
				t.Fatalf("metadata after a bad request: %d brokers", len(resp.Brokers))
			}
		})
	}
	// The oversized requests were counted as limit hits.
	if got := limitHits(t, b, limitMaxRequestBytes); got != 1 {
		t.Errorf("max_request_bytes hits %v, want 1", got)
	}
	if got := limitHits(t, b, limitMaxControlBytes); got != 1 {
		t.Errorf("max_control_request_bytes hits %v, want 1", got)
	}
}

// forgedHeaderTags is a flexible Metadata request whose header declares
// 2^32-1 tagged fields. (Decoded with kmsg.SkipTags this would loop for about
// a minute; the closedByBroker deadline of 10s would fail the test.)
func forgedHeaderTags() []byte {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	buf := frame(req, 1)
	head := buf[:4+8+2+4] // size, key, version, correlation, client id "test"
	out := append(append([]byte(nil), head...), 0xff, 0xff, 0xff, 0xff, 0x0f)
	out = append(out, buf[len(head)+1:]...) // the body after the empty tag section
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// forgedBodyTags is a flexible Metadata request whose body ends with a
// tagged-field section declaring 2^32-1 tags. kmsg v1.15.0 looped once per
// declared tag (about a minute of CPU); v1.15.1 stops at the end of the input.
func forgedBodyTags() []byte {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	buf := frame(req, 1)
	if buf[len(buf)-1] != 0 {
		panic("metadata v12 body does not end with an empty tag section")
	}
	out := append(buf[:len(buf)-1], 0xff, 0xff, 0xff, 0xff, 0x0f)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

func frameWithKey(req kmsg.Request, key int16) []byte {
	buf := frame(req, 1)
	binary.BigEndian.PutUint16(buf[4:], uint16(key))
	return buf
}

func frameWithVersion(req kmsg.Request, version int16) []byte {
	req.SetVersion(version)
	return frame(req, 1)
}

// metadataWithArrayCount is a Metadata v1 request whose topic array claims n
// entries but holds none.
func metadataWithArrayCount(n int32) []byte {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	buf := frame(req, 1)
	buf = buf[:len(buf)-4] // drop the encoded null array length
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// TestResponseSizeBounded sends requests that repeat one partition or topic
// many times: the fetch response stays within FetchMaxBytes and a repeated
// topic is answered once.
func TestResponseSizeBounded(t *testing.T) {
	b := startBroker(t, "", func(c *Config) { c.FetchMaxBytes = 64 << 10 })
	addr := b.Addr().String()
	createTopic(t, addr, "wide", 50, nil)
	c := dialRaw(t, addr)
	for i := 0; i < 20; i++ {
		got := producePartition(c.roundTrip(produceReq(7, -1, "wide", 0, makeBatch(testBatch{records: 10, value: make([]byte, 1000)}))))
		if got.ErrorCode != 0 {
			t.Fatalf("produce: %d", got.ErrorCode)
		}
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 11
	fetch.MaxBytes = 1 << 30
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "wide"
	for i := 0; i < 1000; i++ {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 30
		ft.Partitions = append(ft.Partitions, fp)
	}
	fetch.Topics = append(fetch.Topics, ft)
	resp := c.roundTrip(fetch).(*kmsg.FetchResponse)
	total := 0
	for _, p := range resp.Topics[0].Partitions {
		total += len(p.RecordBatches)
	}
	if total == 0 || total > 64<<10 {
		t.Fatalf("fetch response holds %d record bytes, want (0, %d]", total, 64<<10)
	}

	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 7
	for i := 0; i < 1000; i++ {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = ptr("wide")
		meta.Topics = append(meta.Topics, rt)
	}
	mr := c.roundTrip(meta).(*kmsg.MetadataResponse)
	if len(mr.Topics) != 1 || len(mr.Topics[0].Partitions) != 50 {
		t.Fatalf("metadata for a topic named 1000 times: %d topics", len(mr.Topics))
	}
}

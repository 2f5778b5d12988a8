package broker

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// Produce v0–9; v0–2 are refused.
//
// v0–2 carry pre-v2 message sets, which this broker does not store: every
// partition of such a request is answered UNSUPPORTED_VERSION. (They are
// advertised only so librdkafka keeps compression on; see ApiVersions.)
//
// Each partition must carry exactly one RecordBatch v2, which is validated
// (length, magic, CRC32C, record count against the last offset delta, no
// transactional or control batches) and stored exactly as sent, with only its
// base offset assigned. Only CreateTime timestamps are supported.
//
// Every record is decoded first (records.go): the batch is decompressed
// (gzip, snappy raw or xerial-framed, lz4, zstd; at most
// maxDecompressedBatchBytes) and each record's varints and lengths, its
// offset delta (record i has delta i), its timestamp against the batch's
// maxTimestamp, the record count and the absence of trailing bytes are
// checked. A malformed batch is answered INVALID_RECORD, as Apache Kafka
// answers it (a batch whose CRC does not match, CORRUPT_MESSAGE), with a
// message naming the record and the field, is not stored, and is counted in
// factorywire_broker_malformed_batches_total. INVALID_RECORD is not
// retriable: a producer fails the batch at once instead of resending the
// same bytes until its delivery timeout. Deviations from Kafka, which
// rewrites what it can: records are never rewritten, so wrong offset deltas
// and a maxTimestamp below a record's timestamp are refused rather than
// corrected, and a batch decompressing past the bound is refused with
// MESSAGE_TOO_LARGE.
//
// acks=1 and acks=-1 are answered after the batch is durable (with flush
// "always", after the fsync that covers it): on a single node there is no
// difference between them. acks=0 gets no response, but the records are
// made durable and visible the same way.
//
// Authorization: WRITE on each topic, else its partitions are answered
// TOPIC_AUTHORIZATION_FAILED (whether the topic exists or not), as Kafka.
// A request whose records are transactional is answered
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED as a whole, as Kafka answers it
// without WRITE on its transactional id, or without one; with that
// permission too, since transactions are not implemented.

func init() { regKey(int16(kmsg.Produce), 0, 9, handleProduce) }

const (
	attrCompressionMask = 0x07
	attrLogAppendTime   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

type producedPartition struct {
	p   *partition
	out *kmsg.ProduceResponseTopicPartition
	res appendResult
}

func handleProduce(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var appended []producedPartition

	topLevel := int16(0)
	switch {
	case req.Version < 3:
		topLevel = kerr.UnsupportedVersion.Code
	case hasTransactionalRecords(req):
		// As Kafka: transactional records need WRITE on the request's
		// transactional id (none: refused too). Transactions are not
		// implemented, so they are refused when allowed as well, as
		// InitProducerId refuses transactional ids. A transactional id
		// beside plain records is ignored, as Kafka ignores it.
		if req.TransactionID != nil {
			b.authorize(c, req.Key(), kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionID)
		}
		topLevel = kerr.TransactionalIDAuthorizationFailed.Code
	}
	for _, rt := range req.Topics {
		code := topLevel
		switch {
		case code != 0:
		case !b.authorize(c, req.Key(), kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, rt.Topic):
			code = kerr.TopicAuthorizationFailed.Code
		case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
			code = kerr.InvalidRequiredAcks.Code
		}
		ot := kmsg.NewProduceResponseTopic()
		ot.Topic = rt.Topic
		ot.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		resp.Topics = append(resp.Topics, ot)
		outs := resp.Topics[len(resp.Topics)-1].Partitions
		for i, rp := range rt.Partitions {
			out := &outs[i]
			*out = kmsg.NewProduceResponseTopicPartition()
			out.Partition = rp.Partition
			out.BaseOffset = -1
			out.LogAppendTime = -1
			out.LogStartOffset = -1
			if code != 0 {
				out.ErrorCode = code
				continue
			}
			p := b.partition(rt.Topic, rp.Partition)
			if p == nil {
				out.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			if p.offline != nil {
				out.ErrorCode = kerr.KafkaStorageError.Code
				setErrorMessage(out, p.offlineMessage())
				continue
			}
			h, code, msg := validateProduceBatch(p, rp.Records)
			malformed := code == kerr.CorruptMessage.Code
			if code == 0 {
				v := validateRecords(h, rp.Records)
				code, msg = v.code, v.msg
				malformed = code != 0 && !v.tooLarge
				if v.tooLarge {
					b.limits.hit(limitDecompressedBatchBytes, "produced record batch refused: it decompresses past the bound",
						"topic", p.topic, "partition", p.index, "bytes", maxDecompressedBatchBytes)
				}
			}
			if code != 0 {
				out.ErrorCode = code
				setErrorMessage(out, msg)
				if malformed {
					b.metrics.malformedBatches.WithLabelValues(p.topic).Inc()
				}
				b.log.Debug("produce refused", "topic", p.topic, "partition", p.index, "code", code, "err", msg)
				continue
			}
			res := p.append(rp.Records, h)
			if res.code != 0 {
				out.ErrorCode = res.code
				setErrorMessage(out, res.message)
				continue
			}
			out.BaseOffset = res.baseOffset
			appended = append(appended, producedPartition{p, out, res})
		}
	}
	finish := func(context.Context) kmsg.Response {
		// Make every appended batch durable before the ack. Concurrent
		// produces to a partition share one fsync (commitlog group
		// commit), and the partitions of one request are synced in
		// parallel, so a request waits for about one fsync.
		errs := make([]error, len(appended))
		var wg sync.WaitGroup
		for i, a := range appended[min(1, len(appended)):] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i+1] = a.p.synced(a.res, a.p.log.Sync(a.res.end))
			}()
		}
		if len(appended) > 0 {
			a := appended[0]
			errs[0] = a.p.synced(a.res, a.p.log.Sync(a.res.end))
		}
		wg.Wait()
		for i, a := range appended {
			if err := errs[i]; err != nil {
				a.out.ErrorCode = storageErrorCode(err)
				a.out.BaseOffset = -1
				setErrorMessage(a.out, a.p.storageMessage(err))
				continue
			}
			a.out.LogStartOffset = a.p.log.StartOffset()
		}
		if len(appended) > 0 {
			b.data.broadcast()
		}
		return resp
	}
	if req.Acks == 0 {
		c.closeIfRefused(resp)
	}
	if !b.logOptsFlushAlways() {
		// With flush "interval" the records are visible at once and
		// acknowledged without waiting for an fsync.
		for _, a := range appended {
			a.out.LogStartOffset = a.p.log.StartOffset()
		}
		if len(appended) > 0 {
			b.data.broadcast()
		}
		return reply{resp: resp, none: req.Acks == 0}, nil
	}
	return reply{finish: finish, none: req.Acks == 0}, nil
}

// closeIfRefused closes the connection once this acks=0 produce is
// handled if any of its partitions was refused, as Kafka does: a producer
// that asks for no answer learns of the refusal (TOPIC_AUTHORIZATION_FAILED,
// a malformed batch, ...) only by losing its connection, then retries and
// sees the error on its metadata or next acks>=1 request. The partitions
// accepted in the same request are still made durable.
func (c *conn) closeIfRefused(resp *kmsg.ProduceResponse) {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				c.closeAfter = fmt.Errorf("%w: topic %s partition %d: %v", errAcksZeroRefused, t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
				c.log.Info("closing the connection after a refused acks=0 produce, as Kafka does", "topic", t.Topic, "partition", p.Partition, "err", kerr.ErrorForCode(p.ErrorCode))
				return
			}
		}
	}
}

func (b *Broker) logOptsFlushAlways() bool { return b.logOpts.Flush == commitlog.FlushAlways }

// hasTransactionalRecords reports whether the first RecordBatch v2 of
// some partition of req is transactional, as Kafka's
// RequestUtils.hasTransactionalRecords, which decides whether a Produce
// request needs the transactional id's authorization.
func hasTransactionalRecords(req *kmsg.ProduceRequest) bool {
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			r := rp.Records
			if len(r) >= 23 && r[16] == 2 && (int16(r[21])<<8|int16(r[22]))&attrTransactional != 0 {
				return true
			}
		}
	}
	return false
}

// validateProduceBatch checks one partition's records before they may be
// appended. It returns a Kafka error code and a message naming the problem.
func validateProduceBatch(p *partition, records []byte) (commitlog.BatchHeader, int16, string) {
	if len(records) == 0 {
		return commitlog.BatchHeader{}, kerr.InvalidRecord.Code, "no record batch in partition data"
	}
	if len(records) >= 17 && records[16] != 2 {
		return commitlog.BatchHeader{}, kerr.UnsupportedForMessageFormat.Code, fmt.Sprintf("record batch magic %d: only RecordBatch v2 (magic 2) is supported", records[16])
	}
	if len(records) >= commitlog.BatchHeaderSize {
		if declared := 12 + int64(beInt32(records[8:])); declared >= commitlog.BatchHeaderSize && declared < int64(len(records)) {
			return commitlog.BatchHeader{}, kerr.InvalidRecord.Code, "produce partition data must hold exactly one record batch"
		}
	}
	h, err := commitlog.ParseBatch(records)
	if err != nil {
		return h, kerr.CorruptMessage.Code, err.Error()
	}
	maxBytes := p.maxMessageBytes.Load()
	switch {
	case int64(len(records)) > maxBytes:
		return h, kerr.MessageTooLarge.Code, fmt.Sprintf("record batch of %d bytes exceeds max.message.bytes %d", len(records), maxBytes)
	case h.Attributes&attrTransactional != 0:
		return h, kerr.InvalidRecord.Code, "transactional batches are not supported by this broker"
	case h.Attributes&attrControl != 0:
		return h, kerr.InvalidRecord.Code, "control batches may not be produced"
	case h.Attributes&attrLogAppendTime != 0:
		return h, kerr.InvalidTimestamp.Code, "producers must send CreateTime timestamps"
	case h.Attributes&attrCompressionMask > 4:
		return h, kerr.UnsupportedCompressionType.Code, fmt.Sprintf("compression codec %d is unknown", h.Attributes&attrCompressionMask)
	case h.NumRecords < 1 || int64(h.NumRecords) != int64(h.LastOffsetDelta)+1:
		return h, kerr.InvalidRecord.Code, fmt.Sprintf("record count %d does not match last offset delta %d", h.NumRecords, h.LastOffsetDelta)
	case h.ProducerID >= 0 && h.BaseSequence < 0:
		return h, kerr.InvalidRecord.Code, fmt.Sprintf("idempotent batch of producer %d has base sequence %d", h.ProducerID, h.BaseSequence)
	}
	return h, 0, ""
}

func beInt32(b []byte) int32 {
	return int32(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
}

func setErrorMessage(out *kmsg.ProduceResponseTopicPartition, msg string) {
	if msg != "" {
		m := msg
		out.ErrorMessage = &m
	}
}

package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// Fetch v4–12.
//
// Batches are served exactly as stored, up to the high watermark (with flush
// "always", the durable offset). A response holds at most the request's
// MaxBytes and the broker's FetchMaxBytes, except that the first partition
// with data gets at least one whole batch even if it exceeds those limits or
// the partition's, as in Kafka, so a consumer never stalls on a large
// batch. The request waits up to MaxWaitMillis until MinBytes are available,
// and returns at once when a partition has an error.
//
// Fetch sessions (KIP-227, v7+) are not kept: every response carries
// session id 0, which tells the client to send full requests; a request
// naming a session id is answered FETCH_SESSION_ID_NOT_FOUND. There are no
// transactions, so the last stable offset equals the high watermark and no
// aborted transactions are reported. Leader epochs are always 0. A
// partition answered with an error (OFFSET_OUT_OF_RANGE included) has its
// high watermark, last stable offset and log start offset at -1, as in
// Kafka.

func init() { regKey(int16(kmsg.Fetch), 4, 12, handleFetch) }

func handleFetch(b *Broker, _ *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.FetchRequest)
	return reply{finish: func(ctx context.Context) kmsg.Response { return b.fetch(ctx, req) }}, nil
}

func (b *Broker) fetch(ctx context.Context, req *kmsg.FetchRequest) kmsg.Response {
	if req.Version >= 7 {
		code := int16(0)
		switch {
		case req.SessionID != 0:
			code = kerr.FetchSessionIDNotFound.Code
		case req.SessionEpoch != -1 && req.SessionEpoch != 0:
			code = kerr.InvalidFetchSessionEpoch.Code
		}
		if code != 0 {
			resp := req.ResponseKind().(*kmsg.FetchResponse)
			resp.ErrorCode = code
			return resp
		}
	}
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		// Take the wake-up channel before reading, so data that
		// arrives between the read and the wait is not missed.
		wake := b.data.wait()
		resp, n, final := b.fetchOnce(req)
		if final || n >= int(req.MinBytes) || timeout == nil {
			return resp
		}
		select {
		case <-wake:
		case <-timeout:
			resp, _, _ = b.fetchOnce(req)
			return resp
		case <-ctx.Done():
			return resp
		}
	}
}

// fetchOnce reads what is available now. It returns the response, the
// number of record bytes in it, and whether a partition error means it must
// be sent without waiting.
func (b *Broker) fetchOnce(req *kmsg.FetchRequest) (*kmsg.FetchResponse, int, bool) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	remaining := int(min(req.MaxBytes, b.cfg.FetchMaxBytes))
	total, final := 0, false
	for _, rt := range req.Topics {
		ot := kmsg.NewFetchResponseTopic()
		ot.Topic = rt.Topic
		ot.TopicID = rt.TopicID
		for _, rp := range rt.Partitions {
			op := kmsg.NewFetchResponseTopicPartition()
			op.Partition = rp.Partition
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
			op.PreferredReadReplica = -1
			op.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			data, code := b.fetchPartition(rt.Topic, rp, &op, remaining, total == 0)
			if code != 0 {
				op.ErrorCode = code
				final = true
			}
			if data == nil {
				// An empty record set is length 0, never null
				// (-1): kafka-go and librdkafka reject a null one.
				data = []byte{}
			}
			op.RecordBatches = data
			total += len(data)
			remaining -= len(data)
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp, total, final
}

func (b *Broker) fetchPartition(topicName string, rp kmsg.FetchRequestTopicPartition, op *kmsg.FetchResponseTopicPartition, remaining int, first bool) ([]byte, int16) {
	p := b.partition(topicName, rp.Partition)
	if p == nil {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	if p.offline != nil {
		return nil, kerr.KafkaStorageError.Code
	}
	switch {
	case rp.CurrentLeaderEpoch > 0:
		return nil, kerr.UnknownLeaderEpoch.Code
	case rp.CurrentLeaderEpoch < -1:
		return nil, kerr.FencedLeaderEpoch.Code
	}
	hwm := p.highWatermark()
	start := p.log.StartOffset()
	if rp.FetchOffset < start || rp.FetchOffset > p.log.EndOffset() {
		// As Kafka, the watermarks of a partition in error are -1:
		// the client learns the range from ListOffsets.
		return nil, kerr.OffsetOutOfRange.Code
	}
	op.HighWatermark, op.LastStableOffset, op.LogStartOffset = hwm, hwm, start
	if rp.FetchOffset >= hwm || (!first && remaining <= 0) {
		return nil, 0
	}
	limit := min(int(rp.PartitionMaxBytes), remaining)
	if limit <= 0 && !first {
		return nil, 0
	}
	data, err := p.log.Read(rp.FetchOffset, max(limit, 1), hwm)
	switch {
	case errors.Is(err, commitlog.ErrOffsetOutOfRange):
		// Retention moved the log start between the check and the read.
		op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
		return nil, kerr.OffsetOutOfRange.Code
	case err != nil:
		p.faults.readFailed(rp.FetchOffset, err)
		op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
		return nil, storageErrorCode(err)
	}
	if !first && len(data) > limit {
		// Read returns at least one batch; only the first partition
		// with data may exceed its limits.
		return nil, 0
	}
	return data, 0
}

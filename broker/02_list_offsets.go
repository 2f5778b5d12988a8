package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// ListOffsets v1–6.
//
// Timestamp -2 is the log start offset, -1 the high watermark (there are no
// transactions, so it is also the last stable offset). A timestamp >= 0
// finds the first batch whose newest record is at or after it, and answers
// that batch's base offset and newest timestamp: the answer has batch
// granularity, so a consumer starting there may first see a few records of
// that batch that are older than the timestamp (Kafka decompresses the batch
// to answer the exact record). When no batch qualifies the offset is -1.
// v7's max-timestamp lookup (-3) is not implemented and not advertised.
//
// Authorization: DESCRIBE on each topic, else its partitions are answered
// TOPIC_AUTHORIZATION_FAILED.

func init() { regKey(int16(kmsg.ListOffsets), 1, 6, handleListOffsets) }

func handleListOffsets(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewListOffsetsResponseTopic()
		ot.Topic = rt.Topic
		authorized := b.authorize(c, req.Key(), kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			op := kmsg.NewListOffsetsResponseTopicPartition()
			op.Partition = rp.Partition
			op.Timestamp, op.Offset, op.LeaderEpoch = -1, -1, 0
			if !authorized {
				op.ErrorCode, op.LeaderEpoch = kerr.TopicAuthorizationFailed.Code, -1
				ot.Partitions = append(ot.Partitions, op)
				continue
			}
			op.ErrorCode = b.listOffset(rt.Topic, rp, &op)
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return reply{resp: resp}, nil
}

func (b *Broker) listOffset(topicName string, rp kmsg.ListOffsetsRequestTopicPartition, op *kmsg.ListOffsetsResponseTopicPartition) int16 {
	p := b.partition(topicName, rp.Partition)
	if p == nil {
		return kerr.UnknownTopicOrPartition.Code
	}
	if p.offline != nil {
		return kerr.KafkaStorageError.Code
	}
	switch {
	case rp.CurrentLeaderEpoch > 0:
		return kerr.UnknownLeaderEpoch.Code
	case rp.CurrentLeaderEpoch < -1:
		return kerr.FencedLeaderEpoch.Code
	}
	switch ts := rp.Timestamp; {
	case ts == -2:
		op.Offset = p.log.StartOffset()
	case ts == -1:
		op.Offset = p.highWatermark()
	case ts < 0:
		return kerr.UnsupportedVersion.Code
	default:
		off, ok, err := p.log.OffsetForTime(ts)
		if err != nil {
			p.faults.readFailed(-1, err)
			return storageErrorCode(err)
		}
		if !ok || off >= p.highWatermark() {
			return 0
		}
		op.Offset = off
		err = p.log.Batches(off, func(h commitlog.BatchHeader) error {
			op.Timestamp = h.MaxTimestamp
			return errStopScan
		})
		if err != nil && !errors.Is(err, errStopScan) {
			p.faults.readFailed(off, err)
			return storageErrorCode(err)
		}
	}
	return 0
}

// errStopScan ends a commitlog.Log.Batches walk early.
var errStopScan = errors.New("stop scan")

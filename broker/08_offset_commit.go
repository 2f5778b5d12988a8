package broker

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit v2–8.
//
// A commit with generation -1 and no member id is accepted only while the
// group has no members (tools, and consumers that assign partitions
// themselves); otherwise the member and generation must be the group's
// (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID;
// REBALANCE_IN_PROGRESS while assignments are being handed out). Commits are
// fsynced before the answer. The retention time (v2–4) is ignored, where
// Kafka makes it the offset's expiry time: offsets expire after the broker's
// OffsetsRetention (coordinator.expire). Metadata is limited to 4096 bytes.
//
// Authorization: READ on the group (else every partition is
// GROUP_AUTHORIZATION_FAILED), and READ on each topic (else its partitions
// are TOPIC_AUTHORIZATION_FAILED).

func init() { regKey(int16(kmsg.OffsetCommit), 2, 8, handleOffsetCommit) }

func handleOffsetCommit(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	code := int16(0)
	if !b.authorize(c, req.Key(), kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		code = kerr.GroupAuthorizationFailed.Code
	} else if !validGroupID(req.Group) {
		code = kerr.InvalidGroupID.Code
	} else if g := b.groups.group(req.Group, true); !g.do(func() { code = g.commitCheck(req.Generation, req.MemberID, req.InstanceID) }) {
		code = kerr.CoordinatorNotAvailable.Code
	}
	now := time.Now().UnixMilli()
	var changes []offsetChange
	var outs []*kmsg.OffsetCommitResponseTopicPartition
	for _, rt := range req.Topics {
		ot := kmsg.NewOffsetCommitResponseTopic()
		ot.Topic = rt.Topic
		ot.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(rt.Partitions))
		topicCode := code
		if code != kerr.GroupAuthorizationFailed.Code && !b.authorize(c, req.Key(), kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, rt.Topic) {
			topicCode = kerr.TopicAuthorizationFailed.Code
		}
		for i, rp := range rt.Partitions {
			op := &ot.Partitions[i]
			op.Partition = rp.Partition
			switch {
			case topicCode != 0:
				op.ErrorCode = topicCode
			case b.partition(rt.Topic, rp.Partition) == nil:
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.Metadata != nil && len(*rp.Metadata) > maxOffsetMetadata:
				op.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			default:
				v := &committedOffset{Offset: rp.Offset, LeaderEpoch: rp.LeaderEpoch, CommitMs: now}
				if rp.Metadata != nil {
					v.Metadata = *rp.Metadata
				}
				changes = append(changes, offsetChange{offsetKey{req.Group, rt.Topic, rp.Partition}, v})
			}
		}
		resp.Topics = append(resp.Topics, ot)
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			outs = append(outs, &resp.Topics[i].Partitions[j])
		}
	}
	if len(changes) == 0 {
		return reply{resp: resp}, nil
	}
	return reply{finish: func(context.Context) kmsg.Response {
		if err := b.groups.offsets.commit(changes); err != nil {
			b.log.Error("offset commit not stored", "group", req.Group, "err", err)
			for _, op := range outs {
				if op.ErrorCode == 0 {
					op.ErrorCode = kerr.KafkaStorageError.Code
				}
			}
		}
		return resp
	}}, nil
}

package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetDelete v0.
//
// Deletes a group's committed offsets for some partitions. While the group
// has members, offsets of topics its consumers subscribe to are refused with
// GROUP_SUBSCRIBED_TO_TOPIC.
//
// Authorization: DELETE on the group (else GROUP_AUTHORIZATION_FAILED for
// the request) and READ on each topic (else its partitions are
// TOPIC_AUTHORIZATION_FAILED).

func init() { regKey(int16(kmsg.OffsetDelete), 0, 0, handleOffsetDelete) }

func handleOffsetDelete(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.OffsetDeleteRequest)
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if !b.authorize(c, req.Key(), kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	if !validGroupID(req.Group) {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return reply{resp: resp}, nil
	}
	g := b.groups.group(req.Group, false)
	if g == nil && len(b.groups.offsets.group(req.Group)) == 0 {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return reply{resp: resp}, nil
	}
	subscribed := map[string]bool{}
	if g != nil && !g.do(func() { subscribed = g.subscribedTopics() }) {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return reply{resp: resp}, nil
	}
	var changes []offsetChange
	for _, rt := range req.Topics {
		ot := kmsg.NewOffsetDeleteResponseTopic()
		ot.Topic = rt.Topic
		allowed := b.authorize(c, req.Key(), kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			op := kmsg.NewOffsetDeleteResponseTopicPartition()
			op.Partition = rp.Partition
			if !allowed {
				op.ErrorCode = kerr.TopicAuthorizationFailed.Code
			} else if subscribed[rt.Topic] {
				op.ErrorCode = kerr.GroupSubscribedToTopic.Code
			} else {
				changes = append(changes, offsetChange{key: offsetKey{req.Group, rt.Topic, rp.Partition}})
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	if err := b.groups.offsets.commit(changes); err != nil {
		b.log.Error("offset delete not stored", "group", req.Group, "err", err)
		resp.ErrorCode = kerr.KafkaStorageError.Code
	}
	return reply{resp: resp}, nil
}

// subscribedTopics returns the topics the group's consumer members
// subscribe to, read from their "consumer" protocol metadata.
func (g *group) subscribedTopics() map[string]bool {
	out := map[string]bool{}
	if g.protocolType != "consumer" {
		return out
	}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if p.Name != g.protocol {
				continue
			}
			var meta kmsg.ConsumerMemberMetadata
			if meta.ReadFrom(p.Metadata) == nil {
				for _, t := range meta.Topics {
					out[t] = true
				}
			}
		}
	}
	return out
}

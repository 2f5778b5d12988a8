package broker

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch v1–8.
//
// A partition without a committed offset answers -1. A null topic list
// (v2+) asks for every committed offset of the group. v8 asks for several
// groups at once. RequireStable (v7) needs nothing: there are no
// transactions.
//
// Authorization: DESCRIBE on the group, else GROUP_AUTHORIZATION_FAILED (v1:
// on every partition asked for; v2–7: the request's; v8: the group's), and
// DESCRIBE on each topic: a topic asked for without it is answered -1 with
// TOPIC_AUTHORIZATION_FAILED, and a request for all offsets leaves it out.

func init() { regKey(int16(kmsg.OffsetFetch), 1, 8, handleOffsetFetch) }

func handleOffsetFetch(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	groupAllowed := func(group string) bool {
		return b.authorize(c, req.Key(), kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, group)
	}
	topicAllowed := func(topic string) bool {
		return b.authorize(c, req.Key(), kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, topic)
	}
	if req.Version < 8 {
		if !groupAllowed(req.Group) {
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			if req.Version < 2 {
				for _, rt := range req.Topics {
					ot := kmsg.NewOffsetFetchResponseTopic()
					ot.Topic = rt.Topic
					for _, p := range rt.Partitions {
						op := kmsg.NewOffsetFetchResponseTopicPartition()
						op.Partition, op.Offset, op.LeaderEpoch, op.Metadata, op.ErrorCode = p, -1, -1, new(string), resp.ErrorCode
						ot.Partitions = append(ot.Partitions, op)
					}
					resp.Topics = append(resp.Topics, ot)
				}
			}
			return reply{resp: resp}, nil
		}
		if !validGroupID(req.Group) {
			resp.ErrorCode = kerr.InvalidGroupID.Code
			return reply{resp: resp}, nil
		}
		var wanted map[string][]int32
		if req.Topics != nil {
			wanted = map[string][]int32{}
			for _, t := range req.Topics {
				wanted[t.Topic] = append(wanted[t.Topic], t.Partitions...)
			}
		}
		for topic, parts := range b.fetchOffsets(req.Group, wanted) {
			allowed := topicAllowed(topic)
			if !allowed && wanted == nil {
				continue
			}
			ot := kmsg.NewOffsetFetchResponseTopic()
			ot.Topic = topic
			for _, p := range parts {
				op := kmsg.NewOffsetFetchResponseTopicPartition()
				op.Partition, op.Offset, op.LeaderEpoch, op.Metadata = p.partition, p.Offset, p.LeaderEpoch, &p.Metadata
				if !allowed {
					op.Offset, op.LeaderEpoch, op.Metadata, op.ErrorCode = -1, -1, new(string), kerr.TopicAuthorizationFailed.Code
				}
				ot.Partitions = append(ot.Partitions, op)
			}
			resp.Topics = append(resp.Topics, ot)
		}
		sort.Slice(resp.Topics, func(i, j int) bool { return resp.Topics[i].Topic < resp.Topics[j].Topic })
		return reply{resp: resp}, nil
	}
	for _, rg := range req.Groups {
		og := kmsg.NewOffsetFetchResponseGroup()
		og.Group = rg.Group
		if !groupAllowed(rg.Group) {
			og.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, og)
			continue
		}
		if !validGroupID(rg.Group) {
			og.ErrorCode = kerr.InvalidGroupID.Code
			resp.Groups = append(resp.Groups, og)
			continue
		}
		var wanted map[string][]int32
		if rg.Topics != nil {
			wanted = map[string][]int32{}
			for _, t := range rg.Topics {
				wanted[t.Topic] = append(wanted[t.Topic], t.Partitions...)
			}
		}
		for topic, parts := range b.fetchOffsets(rg.Group, wanted) {
			allowed := topicAllowed(topic)
			if !allowed && wanted == nil {
				continue
			}
			ot := kmsg.NewOffsetFetchResponseGroupTopic()
			ot.Topic = topic
			for _, p := range parts {
				op := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				op.Partition, op.Offset, op.LeaderEpoch, op.Metadata = p.partition, p.Offset, p.LeaderEpoch, &p.Metadata
				if !allowed {
					op.Offset, op.LeaderEpoch, op.Metadata, op.ErrorCode = -1, -1, new(string), kerr.TopicAuthorizationFailed.Code
				}
				ot.Partitions = append(ot.Partitions, op)
			}
			og.Topics = append(og.Topics, ot)
		}
		sort.Slice(og.Topics, func(i, j int) bool { return og.Topics[i].Topic < og.Topics[j].Topic })
		resp.Groups = append(resp.Groups, og)
	}
	return reply{resp: resp}, nil
}

type fetchedOffset struct {
	partition int32
	committedOffset
}

// fetchOffsets returns the group's committed offsets by topic: those wanted
// (-1 where none is committed), or all when wanted is nil.
func (b *Broker) fetchOffsets(group string, wanted map[string][]int32) map[string][]fetchedOffset {
	out := map[string][]fetchedOffset{}
	if wanted == nil {
		for k, v := range b.groups.offsets.group(group) {
			out[k.topic] = append(out[k.topic], fetchedOffset{k.partition, v})
		}
	} else {
		for topic, parts := range wanted {
			out[topic] = []fetchedOffset{}
			for _, p := range parts {
				v, ok := b.groups.offsets.get(offsetKey{group, topic, p})
				if !ok {
					v = committedOffset{Offset: -1, LeaderEpoch: -1}
				}
				out[topic] = append(out[topic], fetchedOffset{p, v})
			}
		}
	}
	for _, parts := range out {
		sort.Slice(parts, func(i, j int) bool { return parts[i].partition < parts[j].partition })
	}
	return out
}

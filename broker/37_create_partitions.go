package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions v0–3.
//
// Partitions only grow. A manual assignment must place each new partition on
// node 0 alone. Growing a topic changes which partition a key hashes to, so
// per-key order across the change is not kept (as in Kafka).
//
// Authorization: ALTER on the topic, else TOPIC_AUTHORIZATION_FAILED.

func init() { regKey(int16(kmsg.CreatePartitions), 0, 3, handleCreatePartitions) }

func handleCreatePartitions(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewCreatePartitionsResponseTopic()
		ot.Topic = rt.Topic
		code, msg := int16(0), ""
		if !b.authorize(c, req.Key(), kmsg.ACLOperationAlter, kmsg.ACLResourceTypeTopic, rt.Topic) {
			code = kerr.TopicAuthorizationFailed.Code
		}
		for _, a := range rt.Assignment {
			if code != 0 {
				break
			}
			if len(a.Replicas) != 1 || a.Replicas[0] != nodeID {
				code, msg = kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("replicas %v: this broker (node %d) must be the only replica", a.Replicas, nodeID)
				break
			}
		}
		if code == 0 {
			code, msg = b.addPartitions(rt.Topic, rt.Count, req.ValidateOnly)
		}
		ot.ErrorCode = code
		if msg != "" {
			ot.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return reply{resp: resp}, nil
}

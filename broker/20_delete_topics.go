package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteTopics v0–6.
//
// The topic leaves the catalog (persisted) before its partition directories
// are removed; a crash in between leaves directories that the next start
// removes. v6 may name topics by id.
//
// Authorization, as Kafka's controller: DELETE on the cluster or on the
// topic. A topic named without DESCRIBE on it is TOPIC_AUTHORIZATION_FAILED
// whether it exists or not (so a client learns nothing of topics it may not
// see); a known one without DELETE too. A topic identified by id without
// DELETE is TOPIC_AUTHORIZATION_FAILED, with its name only if the client
// may DESCRIBE it.

func init() { regKey(int16(kmsg.DeleteTopics), 0, 6, handleDeleteTopics) }

func handleDeleteTopics(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	clusterDelete := b.permits(c, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeCluster, clusterResourceName)
	may := func(op kmsg.ACLOperation, name string) bool {
		return clusterDelete || b.authorize(c, req.Key(), op, kmsg.ACLResourceTypeTopic, name)
	}
	var targets []kmsg.DeleteTopicsRequestTopic
	if req.Version >= 6 {
		targets = req.Topics
	} else {
		for _, name := range req.TopicNames {
			n := name
			t := kmsg.NewDeleteTopicsRequestTopic()
			t.Topic = &n
			targets = append(targets, t)
		}
	}
	for _, rt := range targets {
		ot := kmsg.NewDeleteTopicsResponseTopic()
		ot.Topic, ot.TopicID = rt.Topic, rt.TopicID
		var t *topic
		if rt.Topic != nil {
			if !may(kmsg.ACLOperationDescribe, *rt.Topic) {
				ot.ErrorCode = kerr.TopicAuthorizationFailed.Code
				resp.Topics = append(resp.Topics, ot)
				continue
			}
			t = b.topic(*rt.Topic)
		} else {
			t = b.topicByID(rt.TopicID)
		}
		if t != nil && !may(kmsg.ACLOperationDelete, t.meta.Name) {
			ot.ErrorCode = kerr.TopicAuthorizationFailed.Code
			if rt.Topic == nil && b.permits(c, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.meta.Name) {
				name := t.meta.Name
				ot.Topic = &name
			}
			resp.Topics = append(resp.Topics, ot)
			continue
		}
		if t == nil {
			ot.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if rt.Topic == nil {
				ot.ErrorCode = kerr.UnknownTopicID.Code
			}
			resp.Topics = append(resp.Topics, ot)
			continue
		}
		name := t.meta.Name
		ot.Topic, ot.TopicID = &name, t.meta.ID
		code, msg := b.deleteTopic(name)
		ot.ErrorCode = code
		if msg != "" && req.Version >= 5 {
			ot.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return reply{resp: resp}, nil
}

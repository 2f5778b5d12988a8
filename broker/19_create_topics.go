package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics v0–7.
//
// Replication factor must be -1 or 1 (one broker); a manual assignment must
// place every partition on node 0 alone. Configs are limited to the topic
// configs this broker implements (see topicconfig.go); any other is
// INVALID_CONFIG naming it. As in Kafka, a name that equals an existing
// topic's once '.' is read as '_' is INVALID_TOPIC_EXCEPTION (the two would
// share Kafka's metric names). v5+ responses carry the partition count,
// replication factor and effective configs; v7 the topic id.
//
// Authorization: CREATE on the cluster or on the topic, else
// TOPIC_AUTHORIZATION_FAILED; a topic created by a client without
// DESCRIBE_CONFIGS on it is answered without its configs, partition count
// and replication factor, with TOPIC_AUTHORIZATION_FAILED as its config
// error (v5+), as Kafka.

func init() { regKey(int16(kmsg.CreateTopics), 0, 7, handleCreateTopics) }

func handleCreateTopics(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	clusterCreate := b.permits(c, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeCluster, clusterResourceName)
	for _, rt := range req.Topics {
		ot := kmsg.NewCreateTopicsResponseTopic()
		ot.Topic = rt.Topic
		ot.NumPartitions, ot.ReplicationFactor = -1, -1
		code, msg := int16(0), ""
		partitions := rt.NumPartitions
		configs := map[string]string{}
		switch {
		case seen[rt.Topic] > 1:
			code, msg = kerr.InvalidRequest.Code, fmt.Sprintf("topic %q appears more than once in the request", rt.Topic)
		case !clusterCreate && !b.authorize(c, req.Key(), kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic, rt.Topic):
			code, msg = kerr.TopicAuthorizationFailed.Code, "Authorization failed."
		case rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1:
			code, msg = kerr.InvalidReplicationFactor.Code, fmt.Sprintf("replication factor %d is larger than the 1 broker available", rt.ReplicationFactor)
		case len(rt.ReplicaAssignment) > 0:
			if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
				code, msg = kerr.InvalidRequest.Code, "both a replica assignment and a partition count or replication factor were given"
				break
			}
			partitions = int32(len(rt.ReplicaAssignment))
			for i, a := range rt.ReplicaAssignment {
				if a.Partition != int32(i) || len(a.Replicas) != 1 || a.Replicas[0] != nodeID {
					code, msg = kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("partition %d: replicas %v; this broker (node %d) must be the only replica and partitions numbered from 0", a.Partition, a.Replicas, nodeID)
					break
				}
			}
		}
		for _, c := range rt.Configs {
			if code != 0 {
				break
			}
			if c.Value == nil {
				continue
			}
			configs[c.Name] = *c.Value
		}
		var t *topic
		if code == 0 {
			t, code, msg = b.createTopic(rt.Topic, partitions, configs, req.ValidateOnly)
		}
		ot.ErrorCode = code
		if msg != "" && req.Version >= 1 {
			ot.ErrorMessage = &msg
		}
		if code == 0 && !b.permits(c, kmsg.ACLOperationDescribeConfigs, kmsg.ACLResourceTypeTopic, rt.Topic) {
			if t != nil {
				ot.TopicID = t.meta.ID
			}
			ot.ConfigErrorCode = kerr.TopicAuthorizationFailed.Code
		} else if code == 0 {
			if partitions == -1 {
				partitions = b.cfg.DefaultPartitions
			}
			ot.NumPartitions, ot.ReplicationFactor = partitions, 1
			if t != nil {
				ot.TopicID = t.meta.ID
			}
			for _, kv := range b.describeTopicConfigs(configs, nil, false) {
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				c.Name, c.Value, c.ReadOnly, c.Source, c.IsSensitive = kv.Name, kv.Value, kv.ReadOnly, int8(kv.Source), false
				ot.Configs = append(ot.Configs, c)
			}
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return reply{resp: resp}, nil
}

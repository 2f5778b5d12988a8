package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metadata v0–12.
//
// One broker (node 0) leads every partition, with itself as the only
// replica and ISR; leader epochs are always 0. A null topic list (v1+), or an
// empty one at v0, asks for every topic. Missing topics are created with
// DefaultPartitions only when the broker's AutoCreateTopics is on and the
// request allows it (v4+). Topic ids (v10+) are stored in the catalog.
//
// Authorization, as Kafka: a request for every topic lists only those the
// client may DESCRIBE; a topic named (or identified) without DESCRIBE is
// answered TOPIC_AUTHORIZATION_FAILED without a topic id (without a name
// when asked by id), whether it exists or not; auto-creation needs CREATE on
// the cluster or on the topic, else TOPIC_AUTHORIZATION_FAILED. Authorized
// operations (v8+) are reported when asked (the cluster's only v8–10, and
// 0 without DESCRIBE on the cluster), else -2147483648; without
// authorization every operation is reported, as Kafka without an
// authorizer.

func init() { regKey(int16(kmsg.Metadata), 0, 12, handleMetadata) }

const nodeID = 0

// notProvided is the authorized-operations value of a field not asked for.
const notProvided = -2147483648

func handleMetadata(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	// The broker's address on the listener the request came in by.
	resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: nodeID, Host: c.lis.advHost, Port: c.lis.advPort}}
	resp.ClusterID = new(string)
	*resp.ClusterID = b.ClusterID()
	resp.ControllerID = nodeID
	resp.AuthorizedOperations = notProvided
	if req.Version >= 8 && req.Version <= 10 && req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = 0
		if b.authorizeCluster(c, req.Key(), kmsg.ACLOperationDescribe) {
			resp.AuthorizedOperations = b.authorizedOperations(c, kmsg.ACLResourceTypeCluster, clusterResourceName)
		}
	}
	describe := func(t *topic) kmsg.MetadataResponseTopic {
		mt := topicMetadata(t)
		if req.Version >= 8 && req.IncludeTopicAuthorizedOperations {
			mt.AuthorizedOperations = b.authorizedOperations(c, kmsg.ACLResourceTypeTopic, t.meta.Name)
		}
		return mt
	}
	refused := func(name *string, id [16]byte) {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic, mt.TopicID, mt.ErrorCode = name, id, kerr.TopicAuthorizationFailed.Code
		resp.Topics = append(resp.Topics, mt)
	}

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range b.sortedTopics() {
			if b.permits(c, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.meta.Name) {
				resp.Topics = append(resp.Topics, describe(t))
			}
		}
		return reply{resp: resp}, nil
	}
	autoCreate := b.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	// A topic named twice is answered once, as Kafka does; otherwise a
	// small request repeating a large topic could demand a huge response.
	seen := map[string]bool{}
	for _, rt := range req.Topics {
		key := string(rt.TopicID[:])
		if rt.Topic != nil {
			key = "name:" + *rt.Topic
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		var t *topic
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
			if !b.authorize(c, req.Key(), kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, name) {
				refused(rt.Topic, [16]byte{})
				continue
			}
			t = b.topic(name)
		} else {
			t = b.topicByID(rt.TopicID)
			if t != nil && !b.authorize(c, req.Key(), kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.meta.Name) {
				refused(nil, rt.TopicID)
				continue
			}
		}
		if t == nil && rt.Topic != nil && autoCreate {
			if !b.permits(c, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeCluster, clusterResourceName) &&
				!b.authorize(c, req.Key(), kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic, name) {
				refused(rt.Topic, [16]byte{})
				continue
			}
			if err := validateTopicName(name); err == nil {
				var code int16
				t, code, _ = b.createTopic(name, b.cfg.DefaultPartitions, nil, false)
				if code == kerr.TopicAlreadyExists.Code {
					t = b.topic(name)
				}
			}
		}
		if t == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = rt.Topic
			mt.TopicID = rt.TopicID
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if rt.Topic != nil && validateTopicName(name) != nil {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, describe(t))
	}
	return reply{resp: resp}, nil
}

func topicMetadata(t *topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.meta.Name
	mt.Topic = &name
	mt.TopicID = t.meta.ID
	mt.AuthorizedOperations = notProvided
	for _, p := range t.partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.index
		mp.Leader = nodeID
		mp.LeaderEpoch = 0
		mp.Replicas = []int32{nodeID}
		mp.ISR = []int32{nodeID}
		mp.OfflineReplicas = []int32{}
		if p.offline != nil {
			// As Kafka reports a partition whose only replica is
			// on a failed log dir: no leader, the replica offline.
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
			mp.ISR = []int32{}
			mp.OfflineReplicas = []int32{nodeID}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

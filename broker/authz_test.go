package broker

import (
	"fmt"

	"context"
	"errors"
	"github.com/prometheus/client_golang/prometheus"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// setACLs replaces every ACL of b with acls, through the authorizer's own
// change path (the store is written, then the index swapped), as
// CreateAcls and DeleteAcls do.
func setACLs(t testing.TB, b *Broker, acls ...string) {
	t.Helper()
	all := aclFilter{ResourceType: kmsg.ACLResourceTypeAny, Pattern: kmsg.ACLResourcePatternTypeAny,
		Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	if _, err := b.authz.deleteACLs([]aclFilter{all}); err != nil {
		t.Fatal(err)
	}
	var es []aclEntry
	for _, s := range acls {
		es = append(es, mustACL(t, s))
	}
	if err := b.authz.createACLs(es); err != nil {
		t.Fatal(err)
	}
}

// authzEnv is a cluster with authorization on, holding topics
// plant-a.press (2 partitions), plant-b.press and plant-d.gone with a record
// each, and the committed offsets of groups g-a and g-del; seed is a
// connection of a client that is not a super user, and set replaces every
// ACL.
type authzEnv struct {
	b    *Broker // ours, nil for Apache Kafka
	cl   *kgo.Client
	seed *kgo.Broker
	set  func(t *testing.T, acls ...string)
}

// newAuthzEnv is our broker, whose client principal is User:ANONYMOUS
// (not a super user).
func newAuthzEnv(t *testing.T) *authzEnv {
	t.Helper()
	b := startBroker(t, "", withAuthorization("User:admin"))
	addr := b.Addr().String()
	// Fixtures are made under wildcard ACLs for the anonymous client.
	setACLs(t, b, "TOPIC LITERAL * User:ANONYMOUS * ALL ALLOW", "GROUP LITERAL * User:ANONYMOUS * ALL ALLOW",
		"CLUSTER LITERAL kafka-cluster User:ANONYMOUS * ALL ALLOW")
	authzFixtures(t, addr)
	setACLs(t, b)
	cl := newClient(t, addr)
	return &authzEnv{b: b, cl: cl, seed: cl.SeedBrokers()[0], set: func(t *testing.T, acls ...string) { setACLs(t, b, acls...) }}
}

func (e *authzEnv) request(t *testing.T, req kmsg.Request) kmsg.Response {
	t.Helper()
	resp, err := e.seed.Request(testCtx(t), req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// authzFixtures creates the topics, records and offsets of an authzEnv
// through addr, as a client allowed everything.
func authzFixtures(t *testing.T, addr string) {
	t.Helper()
	createTopic(t, addr, "plant-a.press", 2, nil)
	createTopic(t, addr, "plant-b.press", 1, nil)
	createTopic(t, addr, "plant-d.gone", 1, nil)
	cl := newClient(t, addr)
	ctx := testCtx(t)
	for _, topic := range []string{"plant-a.press", "plant-b.press", "plant-d.gone"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	adm := kadm.NewClient(cl)
	for _, g := range []string{"g-a", "g-del"} {
		var os kadm.Offsets
		os.AddOffset("plant-a.press", 0, 1, -1)
		if err := adm.CommitAllOffsets(ctx, g, os); err != nil {
			t.Fatalf("commit for %s: %v", g, err)
		}
	}
}

// authzCase is one API's authorization: without grant (with base) every
// code call returns is deny; with grant none is.
type authzCase struct {
	name  string
	key   kmsg.Key
	base  []string
	grant []string
	deny  int16
	call  func(t *testing.T, e *authzEnv) []int16
}

const anon = "User:ANONYMOUS"

// authzCases are the cases of every API, for a client with principal p.
func authzCases(p string) []authzCase {
	topicA := func(op string) string { return "TOPIC LITERAL plant-a.press " + p + " * " + op + " ALLOW" }
	groupA := func(op string) string { return "GROUP LITERAL g-a " + p + " * " + op + " ALLOW" }
	cluster := func(op string) string { return "CLUSTER LITERAL kafka-cluster " + p + " * " + op + " ALLOW" }
	tafc, gafc, cafc := kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Code

	produce := func(t *testing.T, e *authzEnv) []int16 {
		resp := e.request(t, produceReq(7, -1, "plant-a.press", 0, makeBatch(testBatch{value: []byte("x")}))).(*kmsg.ProduceResponse)
		return []int16{resp.Topics[0].Partitions[0].ErrorCode}
	}
	fetch := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = -1, 100, 1, 1<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "plant-a.press"
		for p := int32(0); p < 2; p++ {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p, 0, 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp := e.request(t, req).(*kmsg.FetchResponse)
		var codes []int16
		for _, p := range resp.Topics[0].Partitions {
			codes = append(codes, p.ErrorCode)
		}
		return codes
	}
	listOffsets := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "plant-a.press"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = 0, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := e.request(t, req).(*kmsg.ListOffsetsResponse)
		return []int16{resp.Topics[0].Partitions[0].ErrorCode}
	}
	metadata := func(topic string) func(t *testing.T, e *authzEnv) []int16 {
		return func(t *testing.T, e *authzEnv) []int16 {
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
			resp := e.request(t, req).(*kmsg.MetadataResponse)
			return []int16{resp.Topics[0].ErrorCode}
		}
	}
	offsetCommit := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = "g-a", -1
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "plant-a.press"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, 1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := e.request(t, req).(*kmsg.OffsetCommitResponse)
		return []int16{resp.Topics[0].Partitions[0].ErrorCode}
	}
	offsetFetch := func(group bool) func(t *testing.T, e *authzEnv) []int16 {
		return func(t *testing.T, e *authzEnv) []int16 {
			req := kmsg.NewPtrOffsetFetchRequest()
			rg := kmsg.NewOffsetFetchRequestGroup()
			rg.Group = "g-a"
			rt := kmsg.NewOffsetFetchRequestGroupTopic()
			rt.Topic, rt.Partitions = "plant-a.press", []int32{0}
			rg.Topics = append(rg.Topics, rt)
			req.Groups = append(req.Groups, rg)
			req.Group, req.Topics = "g-a", []kmsg.OffsetFetchRequestTopic{{Topic: "plant-a.press", Partitions: []int32{0}}}
			resp := e.request(t, req).(*kmsg.OffsetFetchResponse)
			if group {
				if len(resp.Groups) > 0 {
					return []int16{resp.Groups[0].ErrorCode}
				}
				return []int16{resp.ErrorCode}
			}
			if len(resp.Groups) > 0 {
				return []int16{resp.Groups[0].Topics[0].Partitions[0].ErrorCode}
			}
			return []int16{resp.Topics[0].Partitions[0].ErrorCode}
		}
	}
	findCoordinator := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorKeys = "g-a", []string{"g-a"}
		resp := e.request(t, req).(*kmsg.FindCoordinatorResponse)
		if len(resp.Coordinators) > 0 {
			return []int16{resp.Coordinators[0].ErrorCode}
		}
		return []int16{resp.ErrorCode}
	}
	joinGroup := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.ProtocolType, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = "g-a", "consumer", 10000, 10000
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1}}}
		return []int16{e.request(t, req).(*kmsg.JoinGroupResponse).ErrorCode}
	}
	syncGroup := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Group, req.Generation, req.MemberID = "g-a", 1, "m"
		req.ProtocolType, req.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
		return []int16{e.request(t, req).(*kmsg.SyncGroupResponse).ErrorCode}
	}
	heartbeat := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.Generation, req.MemberID = "g-a", 1, "m"
		return []int16{e.request(t, req).(*kmsg.HeartbeatResponse).ErrorCode}
	}
	leaveGroup := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Group, req.MemberID = "g-a", "m"
		req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
		return []int16{e.request(t, req).(*kmsg.LeaveGroupResponse).ErrorCode}
	}
	describeGroups := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{"g-a"}
		return []int16{e.request(t, req).(*kmsg.DescribeGroupsResponse).Groups[0].ErrorCode}
	}
	deleteGroups := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Groups = []string{"g-del"}
		return []int16{e.request(t, req).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode}
	}
	offsetDelete := func(group bool) func(t *testing.T, e *authzEnv) []int16 {
		return func(t *testing.T, e *authzEnv) []int16 {
			req := kmsg.NewPtrOffsetDeleteRequest()
			req.Group = "g-a"
			req.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "plant-b.press", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			resp := e.request(t, req).(*kmsg.OffsetDeleteResponse)
			if group {
				return []int16{resp.ErrorCode}
			}
			return []int16{resp.Topics[0].Partitions[0].ErrorCode}
		}
	}
	createTopics := func(name string) func(t *testing.T, e *authzEnv) []int16 {
		return func(t *testing.T, e *authzEnv) []int16 {
			req := kmsg.NewPtrCreateTopicsRequest()
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
			req.Topics = append(req.Topics, rt)
			req.TimeoutMillis = 10000
			return []int16{e.request(t, req).(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode}
		}
	}
	deleteTopics := func(name string) func(t *testing.T, e *authzEnv) []int16 {
		return func(t *testing.T, e *authzEnv) []int16 {
			req := kmsg.NewPtrDeleteTopicsRequest()
			req.TopicNames = []string{name}
			req.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr(name)}}
			req.TimeoutMillis = 10000
			return []int16{e.request(t, req).(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode}
		}
	}
	initProducerID := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionTimeoutMillis = 60000
		return []int16{e.request(t, req).(*kmsg.InitProducerIDResponse).ErrorCode}
	}
	describeConfigs := func(typ kmsg.ConfigResourceType, name string) func(t *testing.T, e *authzEnv) []int16 {
		return func(t *testing.T, e *authzEnv) []int16 {
			req := kmsg.NewPtrDescribeConfigsRequest()
			req.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: typ, ResourceName: name}}
			return []int16{e.request(t, req).(*kmsg.DescribeConfigsResponse).Resources[0].ErrorCode}
		}
	}
	alterConfigs := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.ValidateOnly = true
		req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "plant-a.press",
			Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Op: kmsg.IncrementalAlterConfigOpSet, Value: kmsg.StringPtr("3600000")}}}}
		return []int16{e.request(t, req).(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode}
	}
	createPartitions := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrCreatePartitionsRequest()
		req.ValidateOnly, req.TimeoutMillis = true, 10000
		req.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "plant-a.press", Count: 3}}
		return []int16{e.request(t, req).(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode}
	}
	describeACLs := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrDescribeACLsRequest()
		req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
		req.Operation, req.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		return []int16{e.request(t, req).(*kmsg.DescribeACLsResponse).ErrorCode}
	}
	createACLs := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrCreateACLsRequest()
		req.Creations = []kmsg.CreateACLsRequestCreation{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "x",
			ResourcePatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:x", Host: "*",
			Operation: kmsg.ACLOperationRead, PermissionType: kmsg.ACLPermissionTypeAllow}}
		return []int16{e.request(t, req).(*kmsg.CreateACLsResponse).Results[0].ErrorCode}
	}
	deleteACLs := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrDeleteACLsRequest()
		req.Filters = []kmsg.DeleteACLsRequestFilter{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: kmsg.StringPtr("x"),
			ResourcePatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, PermissionType: kmsg.ACLPermissionTypeAny}}
		return []int16{e.request(t, req).(*kmsg.DeleteACLsResponse).Results[0].ErrorCode}
	}
	describeUsers := func(t *testing.T, e *authzEnv) []int16 {
		// A user named: Kafka 4.1 fails to answer a refused request
		// for every user (users null).
		req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
		req.Users = []kmsg.DescribeUserSCRAMCredentialsRequestUser{{Name: "nobody"}}
		return []int16{e.request(t, req).(*kmsg.DescribeUserSCRAMCredentialsResponse).ErrorCode}
	}
	alterUsers := func(t *testing.T, e *authzEnv) []int16 {
		req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
		req.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{{Name: "nobody", Mechanism: 2}}
		return []int16{e.request(t, req).(*kmsg.AlterUserSCRAMCredentialsResponse).Results[0].ErrorCode}
	}
	describeQuotas := func(t *testing.T, e *authzEnv) []int16 {
		return []int16{e.request(t, kmsg.NewPtrDescribeClientQuotasRequest()).(*kmsg.DescribeClientQuotasResponse).ErrorCode}
	}
	describeLogDirs := func(t *testing.T, e *authzEnv) []int16 {
		resp := e.request(t, kmsg.NewPtrDescribeLogDirsRequest()).(*kmsg.DescribeLogDirsResponse)
		if resp.ErrorCode == 0 && len(resp.Dirs) == 0 {
			return []int16{-1} // no error, and no dirs either
		}
		return []int16{resp.ErrorCode}
	}

	return []authzCase{
		{"produce", kmsg.Produce, nil, []string{topicA("WRITE")}, tafc, produce},
		{"fetch", kmsg.Fetch, nil, []string{topicA("READ")}, tafc, fetch},
		{"list offsets", kmsg.ListOffsets, nil, []string{topicA("DESCRIBE")}, tafc, listOffsets},
		{"list offsets implied by read", kmsg.ListOffsets, nil, []string{topicA("READ")}, tafc, listOffsets},
		{"metadata", kmsg.Metadata, nil, []string{topicA("DESCRIBE")}, tafc, metadata("plant-a.press")},
		{"metadata of a missing topic", kmsg.Metadata, nil, []string{"TOPIC PREFIXED plant-x. " + p + " * DESCRIBE ALLOW"}, tafc, metadata("plant-x.none")},
		{"offset commit: group", kmsg.OffsetCommit, nil, []string{groupA("READ"), topicA("READ")}, gafc, offsetCommit},
		{"offset commit: topic", kmsg.OffsetCommit, []string{groupA("READ")}, []string{topicA("READ")}, tafc, offsetCommit},
		{"offset fetch: group", kmsg.OffsetFetch, nil, []string{groupA("DESCRIBE")}, gafc, offsetFetch(true)},
		{"offset fetch: topic", kmsg.OffsetFetch, []string{groupA("DESCRIBE")}, []string{topicA("DESCRIBE")}, tafc, offsetFetch(false)},
		{"find coordinator", kmsg.FindCoordinator, nil, []string{groupA("DESCRIBE")}, gafc, findCoordinator},
		{"join group", kmsg.JoinGroup, nil, []string{groupA("READ")}, gafc, joinGroup},
		{"sync group", kmsg.SyncGroup, nil, []string{groupA("READ")}, gafc, syncGroup},
		{"heartbeat", kmsg.Heartbeat, nil, []string{groupA("READ")}, gafc, heartbeat},
		{"leave group", kmsg.LeaveGroup, nil, []string{groupA("READ")}, gafc, leaveGroup},
		{"describe groups", kmsg.DescribeGroups, nil, []string{groupA("DESCRIBE")}, gafc, describeGroups},
		{"delete groups", kmsg.DeleteGroups, nil, []string{"GROUP LITERAL g-del " + p + " * DELETE ALLOW"}, gafc, deleteGroups},
		{"offset delete: group", kmsg.OffsetDelete, nil, []string{groupA("DELETE"), "TOPIC LITERAL plant-b.press " + p + " * READ ALLOW"}, gafc, offsetDelete(true)},
		{"offset delete: topic", kmsg.OffsetDelete, []string{groupA("DELETE")}, []string{"TOPIC LITERAL plant-b.press " + p + " * READ ALLOW"}, tafc, offsetDelete(false)},
		{"create topics on the topic", kmsg.CreateTopics, nil, []string{"TOPIC PREFIXED plant-a. " + p + " * CREATE ALLOW"}, tafc, createTopics("plant-a.new")},
		{"create topics on the cluster", kmsg.CreateTopics, nil, []string{cluster("CREATE")}, tafc, createTopics("plant-z.new")},
		{"delete topics", kmsg.DeleteTopics, nil, []string{"TOPIC LITERAL plant-d.gone " + p + " * DELETE ALLOW"}, tafc, deleteTopics("plant-d.gone")},
		{"delete a missing topic", kmsg.DeleteTopics, nil, []string{"TOPIC LITERAL plant-d.none " + p + " * DESCRIBE ALLOW"}, tafc, deleteTopics("plant-d.none")},
		{"init producer id by idempotent write", kmsg.InitProducerID, nil, []string{cluster("IDEMPOTENT_WRITE")}, cafc, initProducerID},
		{"init producer id by a topic write (KIP-679)", kmsg.InitProducerID, nil, []string{"TOPIC PREFIXED plant-a. " + p + " * WRITE ALLOW"}, cafc, initProducerID},
		{"describe configs of a topic", kmsg.DescribeConfigs, nil, []string{topicA("DESCRIBE_CONFIGS")}, tafc, describeConfigs(kmsg.ConfigResourceTypeTopic, "plant-a.press")},
		{"describe configs implied by alter configs", kmsg.DescribeConfigs, nil, []string{topicA("ALTER_CONFIGS")}, tafc, describeConfigs(kmsg.ConfigResourceTypeTopic, "plant-a.press")},
		{"describe configs of the broker", kmsg.DescribeConfigs, nil, []string{cluster("DESCRIBE_CONFIGS")}, cafc, describeConfigs(kmsg.ConfigResourceTypeBroker, "")},
		{"incremental alter configs", kmsg.IncrementalAlterConfigs, nil, []string{topicA("ALTER_CONFIGS")}, tafc, alterConfigs},
		{"create partitions", kmsg.CreatePartitions, nil, []string{topicA("ALTER")}, tafc, createPartitions},
		{"describe acls", kmsg.DescribeACLs, nil, []string{cluster("DESCRIBE")}, cafc, describeACLs},
		{"create acls", kmsg.CreateACLs, nil, []string{cluster("ALTER")}, cafc, createACLs},
		{"delete acls", kmsg.DeleteACLs, nil, []string{cluster("ALTER")}, cafc, deleteACLs},
		{"describe user scram credentials", kmsg.DescribeUserSCRAMCredentials, nil, []string{cluster("DESCRIBE")}, cafc, describeUsers},
		{"describe log dirs", kmsg.DescribeLogDirs, nil, []string{cluster("DESCRIBE")}, cafc, describeLogDirs},
		{"describe client quotas", kmsg.DescribeClientQuotas, nil, []string{cluster("DESCRIBE_CONFIGS")}, cafc, describeQuotas},
		{"alter user scram credentials", kmsg.AlterUserSCRAMCredentials, nil, []string{cluster("ALTER")}, cafc, alterUsers},
	}
}

// notAuthorized are the APIs Kafka answers without authorization:
// ApiVersions and the SASL handshake (the client is not authenticated yet).
var notAuthorized = map[kmsg.Key]bool{kmsg.ApiVersions: true, kmsg.SASLHandshake: true, kmsg.SASLAuthenticate: true}

// filteredOnly are the APIs whose answer authorization only filters,
// refusing nothing, each tested on its own.
var filteredOnly = map[kmsg.Key]string{kmsg.ListGroups: "TestAuthorizationListGroups"}

// TestAuthorizationPerAPI sends each API's request without the ACLs it
// needs (refused with Kafka's code) and with them (not refused), as a
// client that is not a super user. Every API the broker implements must
// have a case.
func TestAuthorizationPerAPI(t *testing.T) {
	cases := authzCases(anon)
	for key := range apis {
		if !notAuthorized[kmsg.Key(key)] && filteredOnly[kmsg.Key(key)] == "" && !slices.ContainsFunc(cases, func(c authzCase) bool { return c.key == kmsg.Key(key) }) {
			t.Errorf("API %s has no authorization case: add one to authzCases with the ACL it needs and the code Kafka refuses it with", kmsg.NameForKey(key))
		}
	}
	e := newAuthzEnv(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.set(t, tc.base...)
			codes := tc.call(t, e)
			if len(codes) == 0 || slices.ContainsFunc(codes, func(c int16) bool { return c != tc.deny }) {
				t.Fatalf("without %v: codes %v, want all %s", tc.grant, codes, kerr.ErrorForCode(tc.deny))
			}
			e.set(t, append(append([]string{}, tc.base...), tc.grant...)...)
			codes = tc.call(t, e)
			if len(codes) == 0 || slices.Contains(codes, tc.deny) {
				t.Fatalf("with %v: codes %v, want none %s", tc.grant, codes, kerr.ErrorForCode(tc.deny))
			}
		})
	}
}

// TestAuthorizationMetadataListsOnlyDescribable: a request for every topic
// lists only those the client may describe; auto-creation needs CREATE.
func TestAuthorizationMetadataListsOnlyDescribable(t *testing.T) {
	e := newAuthzEnv(t)
	names := func(resp *kmsg.MetadataResponse) []string {
		var out []string
		for _, mt := range resp.Topics {
			if mt.Topic != nil {
				out = append(out, *mt.Topic)
			}
		}
		return out
	}
	setACLs(t, e.b, "TOPIC PREFIXED plant-a. "+anon+" * READ ALLOW")
	all := kmsg.NewPtrMetadataRequest()
	all.Topics = nil
	resp := e.request(t, all).(*kmsg.MetadataResponse)
	if got := names(resp); !slices.Equal(got, []string{"plant-a.press"}) {
		t.Fatalf("all topics: listed %v, want [plant-a.press]", got)
	}

	// Authorized operations, when asked.
	req := kmsg.NewPtrMetadataRequest()
	req.IncludeTopicAuthorizedOperations = true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("plant-a.press")
	req.Topics = append(req.Topics, rt)
	resp = e.request(t, req).(*kmsg.MetadataResponse)
	ops := kadm.DecodeACLOperations(resp.Topics[0].AuthorizedOperations)
	if !slices.Equal(ops, []kadm.ACLOperation{kadm.OpRead, kadm.OpDescribe}) {
		t.Fatalf("authorized operations %v, want READ and DESCRIBE", ops)
	}
	if resp.Topics[0].TopicID == [16]byte{} || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("plant-a.press: %+v", resp.Topics[0])
	}
}

// TestAuthorizationAutoCreate: a metadata request creates a missing topic
// only with CREATE on the cluster or the topic.
func TestAuthorizationAutoCreate(t *testing.T) {
	b := startBroker(t, "", withAuthorization("User:admin"), func(cfg *Config) { cfg.AutoCreateTopics = true })
	cl := newClient(t, b.Addr().String())
	meta := func(topic string) int16 {
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = true
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := cl.SeedBrokers()[0].Request(testCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.MetadataResponse).Topics[0].ErrorCode
	}
	setACLs(t, b, "TOPIC PREFIXED plant- "+anon+" * DESCRIBE ALLOW")
	if code := meta("plant-a.auto"); code != kerr.TopicAuthorizationFailed.Code || b.topic("plant-a.auto") != nil {
		t.Fatalf("without CREATE: code %d, topic created %v", code, b.topic("plant-a.auto") != nil)
	}
	setACLs(t, b, "TOPIC PREFIXED plant- "+anon+" * DESCRIBE ALLOW", "TOPIC PREFIXED plant-a. "+anon+" * CREATE ALLOW")
	if code := meta("plant-a.auto"); code != 0 || b.topic("plant-a.auto") == nil {
		t.Fatalf("with CREATE on the topic: code %d", code)
	}
	setACLs(t, b, "TOPIC PREFIXED plant- "+anon+" * DESCRIBE ALLOW", "CLUSTER LITERAL kafka-cluster "+anon+" * CREATE ALLOW")
	if code := meta("plant-b.auto"); code != 0 || b.topic("plant-b.auto") == nil {
		t.Fatalf("with CREATE on the cluster: code %d", code)
	}
}

// TestAuthorizationListGroups: with DESCRIBE on the cluster every group is
// listed, else only those the client may describe.
func TestAuthorizationListGroups(t *testing.T) {
	e := newAuthzEnv(t)
	list := func() []string {
		resp := e.request(t, kmsg.NewPtrListGroupsRequest()).(*kmsg.ListGroupsResponse)
		var out []string
		for _, g := range resp.Groups {
			out = append(out, g.Group)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		acls []string
		want []string
	}{
		{nil, nil},
		{[]string{"GROUP LITERAL g-a " + anon + " * READ ALLOW"}, []string{"g-a"}},
		{[]string{"CLUSTER LITERAL kafka-cluster " + anon + " * DESCRIBE ALLOW"}, []string{"g-a", "g-del"}},
	} {
		setACLs(t, e.b, tc.acls...)
		if got := list(); !slices.Equal(got, tc.want) {
			t.Errorf("with %v: listed %v, want %v", tc.acls, got, tc.want)
		}
	}
}

// TestAuthorizationCreateTopicsHidesConfigs: a client that may create a
// topic but not describe its configs gets no configs back, as Kafka.
func TestAuthorizationCreateTopicsHidesConfigs(t *testing.T) {
	e := newAuthzEnv(t)
	create := func(name string) kmsg.CreateTopicsResponseTopic {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: name, NumPartitions: 2, ReplicationFactor: 1}}
		req.TimeoutMillis = 10000
		return e.request(t, req).(*kmsg.CreateTopicsResponse).Topics[0]
	}
	setACLs(t, e.b, "TOPIC PREFIXED plant-n. "+anon+" * CREATE ALLOW")
	got := create("plant-n.one")
	if got.ErrorCode != 0 || got.ConfigErrorCode != kerr.TopicAuthorizationFailed.Code || len(got.Configs) != 0 || got.NumPartitions != -1 {
		t.Fatalf("without DESCRIBE_CONFIGS: %+v", got)
	}
	setACLs(t, e.b, "TOPIC PREFIXED plant-n. "+anon+" * CREATE ALLOW", "TOPIC PREFIXED plant-n. "+anon+" * DESCRIBE_CONFIGS ALLOW")
	got = create("plant-n.two")
	if got.ErrorCode != 0 || got.ConfigErrorCode != 0 || len(got.Configs) == 0 || got.NumPartitions != 2 {
		t.Fatalf("with DESCRIBE_CONFIGS: %+v", got)
	}
}

// TestAuthorizationFetchLongPollAllDenied: a fetch whose every partition is
// refused is answered at once, not after its max wait.
func TestAuthorizationFetchAllDenied(t *testing.T) {
	e := newAuthzEnv(t)
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = -1, 600000, 1<<20, 1<<20, -1
	req.Topics = []kmsg.FetchRequestTopic{{Topic: "plant-a.press", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: 1, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := e.seed.Request(ctx, req)
	if err != nil {
		t.Fatalf("a refused fetch was not answered before its 10-minute max wait: %v", err)
	}
	if code := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("code %d", code)
	}
}

// TestAuthorizationDenialsCountedAndLogged: every denial is counted by
// principal, API and resource type; one line per principal, operation
// and resource and minute is logged, as Kafka's authorizer log line, with
// the number of denials not logged since the previous one.
func TestAuthorizationDenialsCountedAndLogged(t *testing.T) {
	logs := &logSink{}
	b := startBroker(t, "", withAuthorization("User:admin"), func(cfg *Config) { cfg.Logger = logs.logger() })
	now := time.Unix(1_800_000_000, 0)
	b.authz.logMu.Lock()
	b.authz.now = func() time.Time { return now } // read under logMu
	b.authz.logMu.Unlock()
	advance := func(d time.Duration) {
		b.authz.logMu.Lock()
		now = now.Add(d)
		b.authz.logMu.Unlock()
	}
	c := dialRaw(t, b.Addr().String())
	produce := func() {
		req := produceReq(7, -1, "plant-a.press", 0, makeBatch(testBatch{value: []byte("x")}))
		if code := producePartition(c.roundTrip(req)).ErrorCode; code != kerr.TopicAuthorizationFailed.Code {
			t.Fatalf("produce: code %d, want TOPIC_AUTHORIZATION_FAILED", code)
		}
	}
	for range 3 {
		produce()
	}
	failures := func(api, typ string) float64 {
		return counterValue(t, b.metrics.authorizationFailures.WithLabelValues(anon, api, typ))
	}
	if got := failures("Produce", "topic"); got != 3 {
		t.Fatalf("produce denials counted %v, want 3", got)
	}
	lines := logs.lines("authorization failed")
	if len(lines) != 1 {
		t.Fatalf("logged %d denial lines, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, want := range []string{"principal=User:ANONYMOUS", "host=127.0.0.1", "operation=WRITE", "resource=Topic:LITERAL:plant-a.press", "api=Produce"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("denial line lacks %s: %s", want, lines[0])
		}
	}
	// Another operation on another resource is logged at once.
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{"g"}
	if code := c.roundTrip(req).(*kmsg.DescribeGroupsResponse).Groups[0].ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("describe groups: code %d", code)
	}
	if got := failures("DescribeGroups", "group"); got != 1 {
		t.Fatalf("describe groups denials counted %v, want 1", got)
	}
	advance(denialLogInterval)
	produce()
	lines = logs.lines("authorization failed")
	if len(lines) != 3 || !strings.Contains(lines[1], "resource=Group:LITERAL:g") || !strings.Contains(lines[2], "denials_not_logged=2") {
		t.Fatalf("denial lines:\n%s", strings.Join(lines, "\n"))
	}
}

// TestAuthorizationTwoUsers: a factory's gateway, authenticated with SCRAM,
// may write its factory's topics and nothing else; the sink reads them in
// its group; the admin (a super user) grants both.
func TestAuthorizationTwoUsers(t *testing.T) {
	sb := startSecureBroker(t, withAuthorization("User:admin"), func(c *Config) { c.GroupInitialRebalanceDelay = 0 })
	ctx := testCtx(t)
	admin := kadm.NewClient(sb.saslClient(t, mechScramSHA512, "admin", adminPassword))
	for _, topic := range []string{"plant-a.press", "plant-b.press"} {
		if r, err := admin.CreateTopic(ctx, 1, 1, nil, topic); err != nil || r.Err != nil {
			t.Fatalf("admin creates %s: %v %v", topic, err, r.Err)
		}
	}
	grants := []*kadm.ACLBuilder{
		kadm.NewACLs().Allow("User:gateway-plant-a").Topics("plant-a.").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite, kadm.OpDescribe),
		kadm.NewACLs().Allow("User:gateway-plant-a").Clusters().Operations(kadm.OpIdempotentWrite),
		kadm.NewACLs().Allow("User:sink").Topics("plant-a.").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead, kadm.OpDescribe),
		kadm.NewACLs().Allow("User:sink").Groups("factorywire-sink").Operations(kadm.OpRead),
	}
	for _, g := range grants {
		res, err := admin.CreateACLs(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("grant: %v %s", r.Err, r.ErrMessage)
			}
		}
	}

	gwClient := sb.saslClient(t, mechScramSHA256, "gateway-plant-a", gatewayPassword)
	if err := gwClient.ProduceSync(ctx, &kgo.Record{Topic: "plant-a.press", Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatalf("gateway of plant-a produces to plant-a.press: %v", err)
	}
	if err := gwClient.ProduceSync(ctx, &kgo.Record{Topic: "plant-b.press", Value: []byte("b")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("gateway of plant-a produces to plant-b.press: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// The Produce request itself, past the client's metadata check.
	resp, err := gwClient.SeedBrokers()[0].Request(ctx, produceReq(7, -1, "plant-b.press", 0, makeBatch(testBatch{value: []byte("b")})))
	if err != nil || producePartition(resp).ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("raw produce to plant-b.press: %v %+v", err, resp)
	}
	gw := kadm.NewClient(gwClient)
	if del, err := gw.DeleteTopics(ctx, "plant-a.press"); err != nil || !errors.Is(del["plant-a.press"].Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("gateway deletes plant-a.press: %v %+v", err, del)
	}
	alter, err := gw.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kmsg.StringPtr("1000")}}, "plant-a.press")
	if err != nil || len(alter) != 1 || !errors.Is(alter[0].Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("gateway alters plant-a.press: %v %+v", err, alter)
	}
	if res, err := gw.CreateACLs(ctx, kadm.NewACLs().Allow("User:gateway-plant-a").Topics("plant-b.").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite)); err != nil || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("gateway grants itself plant-b: %v %+v", err, res)
	}

	sink := sb.saslClient(t, mechScramSHA512, "sink", sinkPassword, kgo.ConsumerGroup("factorywire-sink"),
		kgo.ConsumeTopics("plant-a.press"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) == 0 {
		fs := sink.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the sink read nothing before the deadline")
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("sink fetch %s/%d: %v", topic, p, err) })
		got = append(got, fs.Records()...)
	}
	if err := sink.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("sink commits: %v", err)
	}
	sinkAdm := kadm.NewClient(sb.saslClient(t, mechScramSHA512, "sink", sinkPassword))
	if lo, err := sinkAdm.ListEndOffsets(ctx, "plant-b.press"); err == nil && lo.Error() == nil {
		t.Fatalf("sink lists plant-b.press offsets: %+v", lo)
	}
	if got := counterValue(t, sb.metrics.authorizationFailures.WithLabelValues("User:gateway-plant-a", "Produce", "topic")); got != 1 {
		t.Fatalf("gateway produce denials counted %v, want 1", got)
	}
}

// TestAuthorizationDenialLogBounded: a client refused on more resources
// than the denial log remembers gets one line per principal, operation
// and resource type and interval for the rest, and all are counted.
func TestAuthorizationDenialLogBounded(t *testing.T) {
	logs := &logSink{}
	m := newMetrics(prometheus.NewRegistry())
	now := time.Unix(1_800_000_000, 0)
	a := &authorizer{log: logs.logger(), failures: m.authorizationFailures, now: func() time.Time { return now }, logged: map[denialKey]*denialSeen{}}
	n := maxDenialKeys + 1000
	for i := range n {
		a.denied(anon, "127.0.0.1", "Metadata", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, fmt.Sprintf("probe-%d", i))
	}
	if got := len(logs.lines("authorization failed")); got != maxDenialKeys+1 {
		t.Fatalf("logged %d lines for %d resources, want %d", got, n, maxDenialKeys+1)
	}
	if got := counterValue(t, m.authorizationFailures.WithLabelValues(anon, "Metadata", "topic")); got != float64(n) {
		t.Fatalf("counted %v, want %d", got, n)
	}
	now = now.Add(denialLogInterval)
	a.denied(anon, "127.0.0.1", "Metadata", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "fresh")
	if got := len(logs.lines("authorization failed")); got != maxDenialKeys+2 || len(a.logged) != 1 {
		t.Fatalf("after an interval: %d lines, %d remembered", got, len(a.logged))
	}
}

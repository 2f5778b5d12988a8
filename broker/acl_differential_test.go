package broker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/factorywire/factorywire/internal/kafkatest"
	"github.com/factorywire/factorywire/topics"
)

// TestACLDifferentialAgainstKafka sets the same ACLs on Apache Kafka 4.1.1
// (a single-node KRaft cluster with StandardAuthorizer) and on our broker
// (authorization enabled), sends the same requests as the same principal to
// both, and compares what each answers, case by case: the error codes per
// topic, partition, group, ACL or user, the topics and groups a listing
// shows, and the authorized-operations fields.
//
// Both sides are set up alike for the principals under test:
//
//   - a SASL_PLAINTEXT listener taking SCRAM-SHA-512, where the principals
//     under test (User:gateway-plant-a, User:sink, User:other) and User:admin
//     authenticate, all from 127.0.0.1;
//   - super users: User:admin on both. Kafka's super.users also names
//     User:ANONYMOUS, the principal of its PLAINTEXT and CONTROLLER
//     listeners, which kafkatest uses between the node's broker and its
//     controller; the test uses that listener only to create the SCRAM
//     users before any other. Our PLAINTEXT listener's ANONYMOUS is not a
//     super user and is not used;
//   - no access to a resource without ACLs (allow.everyone.if.no.acl.found
//     false, the default of both);
//   - auto.create.topics.enable=true (Kafka's default) and
//     Config.AutoCreateTopics, one partition per auto-created topic, no
//     initial rebalance delay.
//
// Every request is sent as it is built here (kmsg, through franz-go
// clients authenticated as the principal and pinned to the versions our
// broker advertises), straight to the broker, so both get identical
// requests. ACLs are created with kadm CreateACLs as admin and removed
// with DeleteACLs between cases; Kafka applies them asynchronously (through
// its metadata log), so each case waits until DescribeAcls lists exactly
// its ACLs before sending anything.
//
// Only the authorization-relevant outcome is compared. What depends on
// nothing but each broker's identity (node ids, topic ids, coordinator
// addresses, messages, SCRAM iteration counts) is not observed. Where our
// broker answers otherwise on purpose, the observation is listed in
// aclKnownDifferences with both answers, and the test checks each side
// still gives its own, as TestDifferentialAgainstKafka does.
func TestACLDifferentialAgainstKafka(t *testing.T) {
	start := time.Now()
	kafka := kafkatest.Start(t, kafkatest.Options{
		Listeners: map[string]string{"SASL": "SASL_PLAINTEXT"},
		Props: map[string]string{
			"authorizer.class.name":                             "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
			"super.users":                                       "User:admin;User:ANONYMOUS",
			"allow.everyone.if.no.acl.found":                    "false",
			"auto.create.topics.enable":                         "true",
			"num.partitions":                                    "1",
			"listener.name.sasl.sasl.enabled.mechanisms":        "SCRAM-SHA-512",
			"listener.name.sasl.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
		},
	})
	t.Logf("Apache Kafka started in %v", time.Since(start).Round(time.Millisecond))
	ours := startSecureBroker(t, func(c *Config) {
		c.Authorization = AuthorizationConfig{Enabled: true, SuperUsers: []string{"User:admin"}}
		c.AutoCreateTopics = true
		c.DefaultPartitions = 1
		c.GroupInitialRebalanceDelay = 0
	})

	versions := advertisedVersions()

	// Kafka's SCRAM users are created over PLAINTEXT (ANONYMOUS is a
	// super user there); ours has admin, gateway-plant-a and sink
	// bootstrapped, and admin creates other.
	anonymous := newClient(t, kafka.Brokers()[0])
	var kafkaUsers []kadm.UpsertSCRAM
	for _, u := range []string{"admin", gatewayUser, "sink", "other"} {
		kafkaUsers = append(kafkaUsers, kadm.UpsertSCRAM{User: u, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: aclDiffPasswords[u]})
	}
	alterSCRAMs(t, kadm.NewClient(anonymous), kafkaUsers)
	sides := []*aclSide{
		newACLSide(t, "Kafka", kafka.ListenerAddrs("SASL")[0], kafka.NodeIDs()[0], versions),
		newACLSide(t, "ours", ours.addr("SASL_PLAIN"), nodeID, versions),
	}
	alterSCRAMs(t, sides[1].adm, []kadm.UpsertSCRAM{{User: "other", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: otherPassword}})
	for _, s := range sides {
		s.connect(t)
		s.fixtures(t)
	}
	t.Logf("set up in %v", time.Since(start).Round(time.Millisecond))

	seen := map[string]bool{} // known differences observed
	// compare runs run on each side within timeout, as user (none: run
	// picks its clients), and compares what each side answered.
	compare := func(name, user string, timeout time.Duration, run func(*aclRun)) {
		t.Run(name, func(t *testing.T) {
			var obs [2][]observation
			for i, s := range sides {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				r := &aclRun{t: t, ctx: ctx, side: s, cl: s.users[user]}
				run(r)
				cancel()
				obs[i] = r.obs
			}
			compareACLObservations(t, name, obs[0], obs[1], seen)
		})
	}
	for _, c := range aclDiffCases() {
		compare(c.name, c.user, time.Minute, func(r *aclRun) {
			if c.setup != nil {
				c.setup(r)
			}
			setACLsKadm(r.t, r.side.adm, c.acls...)
			c.run(r)
		})
	}
	compare("grant-factory", "", 2*time.Minute, grantFactory)
	for what := range aclKnownDifferences {
		if !seen[what] {
			t.Errorf("known difference %q was not observed", what)
		}
	}
	t.Logf("%d cases and grant-factory in %v", len(aclDiffCases()), time.Since(start).Round(time.Millisecond))
}

// compareACLObservations compares one case's observations on Kafka (want)
// and ours (got), what by what, reporting each mismatch with both answers.
func compareACLObservations(t *testing.T, name string, want, got []observation, seen map[string]bool) {
	t.Helper()
	kafkaSaw, oursSaw := observed(t, "Kafka", want), observed(t, "ours", got)
	for _, o := range want {
		key := name + ": " + o.what
		g, ok := oursSaw[o.what]
		if !ok {
			t.Errorf("case %q, %s: observed on Kafka only (%s)", name, o.what, o.value)
			continue
		}
		if d, ok := aclKnownDifferences[key]; ok {
			seen[key] = true
			if o.value != d.kafka || g != d.ours {
				t.Errorf("case %q, %s: a known difference changed (update docs/COMPATIBILITY.md):\n Kafka: %s (documented: %s)\n ours:  %s (documented: %s)",
					name, o.what, o.value, d.kafka, g, d.ours)
			}
			continue
		}
		if o.value != g {
			t.Errorf("case %q, %s:\n Kafka: %s\n ours:  %s", name, o.what, o.value, g)
		}
	}
	for _, o := range got {
		if _, ok := kafkaSaw[o.what]; !ok {
			t.Errorf("case %q, %s: observed on ours only (%s)", name, o.what, o.value)
		}
	}
	if t.Failed() || testing.Verbose() {
		for _, o := range got {
			t.Logf("%s: %s", o.what, o.value)
		}
	}
}

// aclKnownDifferences are the observations, "case: what", where our broker
// answers otherwise than Apache Kafka on purpose, with each one's answer.
// docs/COMPATIBILITY.md ("ACLs against Apache Kafka") lists them.
var aclKnownDifferences = map[string]struct{ kafka, ours string }{
	// Committed offsets live in the broker's own log: there is no
	// __consumer_offsets topic to list (see "Differences from Apache
	// Kafka").
	"metadata/all topics, wildcard DESCRIBE: Metadata all topics": {
		"[__consumer_offsets(ok) plant-a.meter(ok) plant-a.press(ok) plant-a.press.dlq(ok) plant-b.press(ok)]",
		"[plant-a.meter(ok) plant-a.press(ok) plant-a.press.dlq(ok) plant-b.press(ok)]"},
	// A topic auto-created by Metadata: ours creates it before answering
	// and describes it; Kafka's broker asks its controller and answers
	// UNKNOWN_TOPIC_OR_PARTITION (retriable) until it learns of the new
	// topic. Both create it, and refuse the same requests.
	"metadata/auto-create with CREATE on the topic: Metadata plant-a.md-auto2":   {"UNKNOWN_TOPIC_OR_PARTITION", "ok operations [CREATE DESCRIBE]"},
	"metadata/auto-create with CREATE on the cluster: Metadata plant-a.md-auto3": {"UNKNOWN_TOPIC_OR_PARTITION", "ok operations [DESCRIBE]"},
	// Kafka 4.1.1 does not answer a refused DescribeUserScramCredentials
	// for every user (a null user list; named users get their answer):
	// the client times out. Ours answers CLUSTER_AUTHORIZATION_FAILED.
	"describe scram/all users, no ACL: DescribeUserScramCredentials": {"client error", "CLUSTER_AUTHORIZATION_FAILED"},
	// Transactions are not implemented: transactional records are
	// refused whatever the ACLs. Kafka, with WRITE on the transactional
	// id, goes on to verify the transaction (KIP-890), which this
	// producer never began, and answers NOT_ENOUGH_REPLICAS (its
	// retriable code for INVALID_TXN_STATE at this Produce version).
	"produce/transactional batch with WRITE on its id: Produce plant-a.press[0]": {"NOT_ENOUGH_REPLICAS", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"},
}

const (
	gatewayUser   = "gateway-plant-a"
	otherPassword = "other-Secr3t-never-logged"
)

var aclDiffPasswords = map[string]string{
	"admin": adminPassword, gatewayUser: gatewayPassword, "sink": sinkPassword, "other": otherPassword,
}

func alterSCRAMs(t *testing.T, adm *kadm.Client, users []kadm.UpsertSCRAM) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := adm.AlterUserSCRAMs(ctx, nil, users)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("create SCRAM users: %v", err)
	}
}

// aclSide is one broker under comparison: its SASL_PLAINTEXT listener,
// an admin client (User:admin, a super user) and a client per principal
// under test.
type aclSide struct {
	name     string
	addr     string
	node     int32
	versions *kversion.Versions
	admin    *kgo.Client
	adm      *kadm.Client
	users    map[string]*kgo.Client
}

func newACLSide(t *testing.T, name, addr string, node int32, versions *kversion.Versions) *aclSide {
	s := &aclSide{name: name, addr: addr, node: node, versions: versions, users: map[string]*kgo.Client{}}
	s.admin = s.client(t, "admin")
	s.adm = kadm.NewClient(s.admin)
	return s
}

// client is a client of the side's SASL listener authenticating as user
// with SCRAM-SHA-512, closed when the test ends.
func (s *aclSide) client(t *testing.T, user string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newClient(t, s.addr, append([]kgo.Opt{
		kgo.SASL(scram.Auth{User: user, Pass: aclDiffPasswords[user]}.AsSha512Mechanism()),
		kgo.MaxVersions(s.versions),
	}, opts...)...)
}

// connect makes the clients of the principals under test and waits until
// each authenticates: Kafka learns a new SCRAM credential through its
// metadata log, a moment after AlterUserScramCredentials answers.
func (s *aclSide) connect(t *testing.T) {
	t.Helper()
	for _, u := range []string{"admin", gatewayUser, "sink", "other"} {
		cl := s.admin
		if u != "admin" {
			cl = s.client(t, u)
			s.users[u] = cl
		}
		var err error
		for range 100 {
			if err = ping(cl); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s: %s cannot authenticate: %v", s.name, u, err)
		}
	}
}

// fixtures creates, as admin, the topics plant-a.press (2 partitions),
// plant-a.meter, plant-b.press and plant-a.press.dlq with a record in each
// partition, and the committed offsets of groups g-a and g-b.
func (s *aclSide) fixtures(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topics := []struct {
		name       string
		partitions int32
	}{{"plant-a.press", 2}, {"plant-a.meter", 1}, {"plant-b.press", 1}, {"plant-a.press.dlq", 1}}
	prod := s.client(t, "admin", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, tp := range topics {
		s.createTopic(t, ctx, tp.name, tp.partitions)
		for p := range tp.partitions {
			if err := prod.ProduceSync(ctx, &kgo.Record{Topic: tp.name, Partition: p, Value: []byte("fixture")}).FirstErr(); err != nil {
				t.Fatalf("%s: produce to %s[%d]: %v", s.name, tp.name, p, err)
			}
		}
	}
	for _, g := range []string{"g-a", "g-b"} {
		s.commit(t, ctx, g, map[string]int32{"plant-a.press": 0, "plant-b.press": 0})
	}
}

// createTopic creates topic as admin and waits until Metadata lists it.
func (s *aclSide) createTopic(t *testing.T, ctx context.Context, topic string, partitions int32) {
	t.Helper()
	r, err := s.adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = r.Err
	}
	if err != nil {
		t.Fatalf("%s: create %s: %v", s.name, topic, err)
	}
	if !s.waitTopic(ctx, topic, true) {
		t.Fatalf("%s: %s is not listed after its creation", s.name, topic)
	}
}

// commit commits offset 1 of each topic's partition as admin for group.
func (s *aclSide) commit(t *testing.T, ctx context.Context, group string, partitions map[string]int32) {
	t.Helper()
	var os kadm.Offsets
	for topic, p := range partitions {
		os.AddOffset(topic, p, 1, -1)
	}
	if err := s.adm.CommitAllOffsets(ctx, group, os); err != nil {
		t.Fatalf("%s: commit offsets of %s: %v", s.name, group, err)
	}
}

// waitTopic waits (bounded) until Metadata, asked by admin, lists topic
// with a leader (exists) or does not list it, and reports whether it did.
func (s *aclSide) waitTopic(ctx context.Context, topic string, exists bool) bool {
	for range 150 {
		resp, err := metadataRequest(topic).RequestWith(ctx, s.admin)
		if err == nil && len(resp.Topics) == 1 {
			mt := resp.Topics[0]
			listed := mt.ErrorCode == 0 && len(mt.Partitions) > 0 && mt.Partitions[0].Leader >= 0
			if listed == exists && (listed || mt.ErrorCode == kerr.UnknownTopicOrPartition.Code) {
				return true
			}
		}
		if ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// topicID asks Metadata, as admin, for topic's id.
func (s *aclSide) topicID(t *testing.T, ctx context.Context, topic string) [16]byte {
	t.Helper()
	td, err := s.adm.ListTopics(ctx, topic)
	if err == nil {
		err = td[topic].Err
	}
	if err != nil {
		t.Fatalf("%s: the id of %s: %v", s.name, topic, err)
	}
	return td[topic].ID
}

// topicExists asks Metadata once, as admin, whether topic exists.
func (s *aclSide) topicExists(ctx context.Context, topic string) string {
	resp, err := metadataRequest(topic).RequestWith(ctx, s.admin)
	if err != nil {
		return code(err)
	}
	return codeOf(resp.Topics[0].ErrorCode)
}

// metadataRequest is a Metadata request for topics, by name.
func metadataRequest(topics ...string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	for _, topic := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// aclRun is one case's run against one side: its requests go to the side
// as the case's principal, its observations are noted in order.
type aclRun struct {
	t    *testing.T
	ctx  context.Context
	side *aclSide
	cl   *kgo.Client
	obs  []observation
}

func (r *aclRun) note(what, format string, args ...any) {
	r.obs = append(r.obs, observation{what, fmt.Sprintf(format, args...)})
}

// send sends req straight to the broker as the run's principal; an error
// (no response) is noted under the API's name and returns nil.
func (r *aclRun) send(req kmsg.Request) kmsg.Response {
	return r.sendAs(r.cl, req)
}

func (r *aclRun) sendAs(cl *kgo.Client, req kmsg.Request) kmsg.Response {
	resp, err := cl.SeedBrokers()[0].Request(r.ctx, req)
	if err != nil {
		r.note(apiName(req.Key()), "%s", code(err))
		return nil
	}
	return resp
}

// ask sends req as the run's principal and hands its answer to answered;
// when no answer comes, send has noted the error and answered is not
// called.
func ask[R kmsg.Response](r *aclRun, req kmsg.Request, answered func(R)) {
	if resp, ok := r.send(req).(R); ok {
		answered(resp)
	}
}

// noteCode notes an error code under what.
func (r *aclRun) noteCode(what string, code int16) {
	r.note(what, "%s", codeOf(code))
}

// notePartition notes a partition's error code under what and the
// partition's name.
func (r *aclRun) notePartition(what, topic string, partition int32, code int16) {
	r.noteCode(fmt.Sprintf("%s %s", what, tp{topic, partition}), code)
}

// topicName is an answer's topic name, "<no name>" when it has none.
func topicName(name *string) string {
	if name == nil {
		return "<no name>"
	}
	return *name
}

// byID asks admin for each topic's id and hands it to add, which puts it
// in a request. It returns how to name the i-th topic of the answer by
// the name its id was asked for.
func (r *aclRun) byID(topics []string, add func(id [16]byte)) (asked func(i int, id [16]byte) string) {
	names := map[[16]byte]string{}
	for _, topic := range topics {
		id := r.side.topicID(r.t, r.ctx, topic)
		names[id] = topic
		add(id)
	}
	return func(i int, id [16]byte) string {
		if name := names[id]; name != "" {
			return name
		}
		return fmt.Sprintf("topic %d of the answer", i)
	}
}

// apiName is the name of an API as Kafka spells it.
func apiName(key int16) string {
	switch n := kmsg.NameForKey(key); n {
	case "InitProducerID":
		return "InitProducerId"
	default:
		return strings.NewReplacer("ACLs", "Acls", "SCRAM", "Scram").Replace(n)
	}
}

// operations is how an answer without error (code 0) writes its
// authorized operations, after the code: " operations [...]"; nothing
// with an error.
func operations(code int16, bits int32) string {
	if code != 0 {
		return ""
	}
	return " operations " + opNames(bits)
}

// opNames writes an authorized-operations bit field as operation names.
func opNames(bits int32) string {
	if bits == notProvided {
		return "not provided"
	}
	var names []string
	for op := kmsg.ACLOperation(0); op < 32; op++ {
		if bits&(1<<op) != 0 {
			names = append(names, enumName(operationNames, op))
		}
	}
	return "[" + strings.Join(names, " ") + "]"
}

// tp is a topic and partition of a request.
type tp struct {
	topic     string
	partition int32
}

func (p tp) String() string { return fmt.Sprintf("%s[%d]", p.topic, p.partition) }

func p0(topics ...string) []tp {
	var out []tp
	for _, t := range topics {
		out = append(out, tp{t, 0})
	}
	return out
}

// The requests of the cases. Each notes what the response says for every
// resource it names.

func reqProduce(partitions ...tp) func(*aclRun) {
	return func(r *aclRun) { r.produce(produceOpts{producerID: -1}, partitions...) }
}

// produceOpts shape a Produce request's batches: plain (producer id -1),
// idempotent, or transactional, and its transactional id.
type produceOpts struct {
	producerID      int64
	transactional   bool
	transactionalID *string
}

// reqProduceTransactional produces plain batches in a request naming a
// transactional id.
func reqProduceTransactional(transactionalID string, partitions ...tp) func(*aclRun) {
	return func(r *aclRun) {
		r.produce(produceOpts{producerID: -1, transactionalID: &transactionalID}, partitions...)
	}
}

func (r *aclRun) produce(o produceOpts, partitions ...tp) {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis, req.TransactionID = -1, 10000, o.transactionalID
	for _, p := range partitions {
		batch := testBatch{value: []byte("acl")}
		if o.producerID >= 0 {
			batch.producerID, batch.producerEpoch, batch.baseSequence = o.producerID, 0, 0
		}
		if o.transactional {
			batch.attributes = attrTransactional
		}
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = p.topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p.partition, makeBatch(batch)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	ask(r, req, func(resp *kmsg.ProduceResponse) {
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				r.notePartition("Produce", rt.Topic, rp.Partition, rp.ErrorCode)
			}
		}
	})
}

// reqProduceIdempotent produces with a producer id that admin obtained,
// so that only the Produce request's own authorization is observed.
func reqProduceIdempotent(partitions ...tp) func(*aclRun) {
	return func(r *aclRun) { r.produce(produceOpts{producerID: r.adminProducerID()}, partitions...) }
}

// reqProduceTransactionalBatch produces transactional batches (of a
// producer id admin obtained), naming transactionalID if not nil.
func reqProduceTransactionalBatch(transactionalID *string, partitions ...tp) func(*aclRun) {
	return func(r *aclRun) {
		r.produce(produceOpts{producerID: r.adminProducerID(), transactional: true, transactionalID: transactionalID}, partitions...)
	}
}

// adminProducerID is a new idempotent producer id, from InitProducerId
// as admin.
func (r *aclRun) adminProducerID() int64 {
	resp, _ := r.sendAs(r.side.admin, kmsg.NewPtrInitProducerIDRequest()).(*kmsg.InitProducerIDResponse)
	if resp == nil || resp.ErrorCode != 0 {
		r.t.Fatalf("%s: admin's InitProducerId: %+v", r.side.name, resp)
	}
	return resp.ProducerID
}

func reqFetch(partitions ...tp) func(*aclRun) { return fetchAs(-1, partitions...) }

// reqFetchAsFollower fetches as if from replica 7, a broker's request.
func reqFetchAsFollower(partitions ...tp) func(*aclRun) { return fetchAs(7, partitions...) }

func fetchAs(replicaID int32, partitions ...tp) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = replicaID, 100, 1, 1<<20, -1
		for _, p := range partitions {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = p.topic
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = p.partition, 0, 1<<20, -1, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		ask(r, req, func(resp *kmsg.FetchResponse) {
			r.noteCode("Fetch", resp.ErrorCode)
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					r.note(fmt.Sprintf("Fetch %s", tp{rt.Topic, rp.Partition}), "%s records=%v", codeOf(rp.ErrorCode), len(rp.RecordBatches) > 0)
				}
			}
		})
	}
}

func reqListOffsets(partitions ...tp) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		for _, p := range partitions {
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = p.topic
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p.partition, -1, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		ask(r, req, func(resp *kmsg.ListOffsetsResponse) {
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					r.notePartition("ListOffsets", rt.Topic, rp.Partition, rp.ErrorCode)
				}
			}
		})
	}
}

// reqMetadata asks for topics (nil: every topic), allowing auto-creation if
// autoCreate, with the topics' authorized operations. With autoCreate,
// whether admin then finds each topic is noted too: auto-creation is
// asynchronous on Kafka, so a topic answered other than
// TOPIC_AUTHORIZATION_FAILED is waited for.
func reqMetadata(autoCreate bool, topics ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := metadataRequest(topics...)
		req.AllowAutoTopicCreation = autoCreate
		req.IncludeTopicAuthorizedOperations = true
		ask(r, req, func(resp *kmsg.MetadataResponse) {
			if topics == nil {
				var listed []string
				for _, mt := range resp.Topics {
					listed = append(listed, fmt.Sprintf("%s(%s)", *mt.Topic, codeOf(mt.ErrorCode)))
				}
				slices.Sort(listed)
				r.note("Metadata all topics", "%v", listed)
				return
			}
			for _, mt := range resp.Topics {
				name := topicName(mt.Topic)
				r.note("Metadata "+name, "%s%s", codeOf(mt.ErrorCode), operations(mt.ErrorCode, mt.AuthorizedOperations))
				if !autoCreate {
					continue
				}
				exists := r.side.topicExists(r.ctx, name)
				if mt.ErrorCode != kerr.TopicAuthorizationFailed.Code && r.side.waitTopic(r.ctx, name, true) {
					exists = "ok"
				}
				r.note("Metadata "+name+": exists afterwards", "%s", exists)
			}
		})
	}
}

// reqMetadataByID asks for topics by id (v10+), as admin found them.
func reqMetadataByID(topics ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrMetadataRequest()
		asked := r.byID(topics, func(id [16]byte) {
			rt := kmsg.NewMetadataRequestTopic()
			rt.TopicID = id
			req.Topics = append(req.Topics, rt)
		})
		ask(r, req, func(resp *kmsg.MetadataResponse) {
			for i, mt := range resp.Topics {
				r.note("Metadata by id of "+asked(i, mt.TopicID), "%s name %s", codeOf(mt.ErrorCode), topicName(mt.Topic))
			}
		})
	}
}

// reqCreateTopics creates one-partition topics, or only validates their
// creation; a topic created is waited for.
func reqCreateTopics(validateOnly bool, topics ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis, req.ValidateOnly = 30000, validateOnly
		for _, topic := range topics {
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
			req.Topics = append(req.Topics, rt)
		}
		ask(r, req, func(resp *kmsg.CreateTopicsResponse) {
			for _, rt := range resp.Topics {
				r.note("CreateTopics "+rt.Topic, "%s configs %s", codeOf(rt.ErrorCode), codeOf(rt.ConfigErrorCode))
				if rt.ErrorCode == 0 && !validateOnly && !r.side.waitTopic(r.ctx, rt.Topic, true) {
					r.note("CreateTopics "+rt.Topic+": listed afterwards", "no")
				}
			}
		})
	}
}

func reqDeleteTopics(topics ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TimeoutMillis, req.TopicNames = 30000, topics
		for _, topic := range topics {
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
		}
		ask(r, req, func(resp *kmsg.DeleteTopicsResponse) {
			for _, rt := range resp.Topics {
				r.noteDeleted("DeleteTopics "+topicName(rt.Topic), topicName(rt.Topic), rt.ErrorCode, "%s", codeOf(rt.ErrorCode))
			}
		})
	}
}

// reqDeleteTopicsByID deletes topics by id (v6+), as admin found them.
func reqDeleteTopicsByID(topics ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TimeoutMillis = 30000
		asked := r.byID(topics, func(id [16]byte) {
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.TopicID = id
			req.Topics = append(req.Topics, rt)
		})
		ask(r, req, func(resp *kmsg.DeleteTopicsResponse) {
			for i, rt := range resp.Topics {
				name := asked(i, rt.TopicID)
				r.noteDeleted("DeleteTopics by id of "+name, name, rt.ErrorCode, "%s name %s", codeOf(rt.ErrorCode), topicName(rt.Topic))
			}
		})
	}
}

// noteDeleted notes a topic's deletion under what and, when it succeeded
// (code 0), notes if admin still finds topic afterwards.
func (r *aclRun) noteDeleted(what, topic string, code int16, format string, args ...any) {
	r.note(what, format, args...)
	if code == 0 && !r.side.waitTopic(r.ctx, topic, false) {
		r.note(what+": gone afterwards", "no")
	}
}

// reqCreatePartitions validates growing each topic to count partitions.
func reqCreatePartitions(count int32, topics ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrCreatePartitionsRequest()
		req.TimeoutMillis, req.ValidateOnly = 30000, true
		for _, topic := range topics {
			rt := kmsg.NewCreatePartitionsRequestTopic()
			rt.Topic, rt.Count = topic, count
			req.Topics = append(req.Topics, rt)
		}
		ask(r, req, func(resp *kmsg.CreatePartitionsResponse) {
			for _, rt := range resp.Topics {
				r.noteCode("CreatePartitions "+rt.Topic, rt.ErrorCode)
			}
		})
	}
}

// reqDescribeConfigs describes topics, and the broker itself for the name
// "broker" (each side's node id).
func reqDescribeConfigs(resources ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrDescribeConfigsRequest()
		for _, name := range resources {
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeTopic, name, []string{"retention.ms"}
			if name == "broker" {
				rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeBroker, r.side.nodeName(), []string{"log.retention.ms"}
			}
			req.Resources = append(req.Resources, rr)
		}
		ask(r, req, func(resp *kmsg.DescribeConfigsResponse) {
			for i, rr := range resp.Resources {
				r.noteCode("DescribeConfigs "+resources[i], rr.ErrorCode)
			}
		})
	}
}

// reqIncrementalAlterConfigs sets retention.ms of each topic (validateOnly, or
// for real).
func reqIncrementalAlterConfigs(validateOnly bool, topics ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.ValidateOnly = validateOnly
		for _, topic := range topics {
			req.Resources = append(req.Resources, setRetention(kmsg.ConfigResourceTypeTopic, topic, "retention.ms"))
		}
		ask(r, req, func(resp *kmsg.IncrementalAlterConfigsResponse) {
			for _, rr := range resp.Resources {
				r.noteCode("IncrementalAlterConfigs "+rr.ResourceName, rr.ErrorCode)
			}
		})
	}
}

// reqAlterBrokerConfig sets log.retention.ms of the broker (validate only).
func reqAlterBrokerConfig(r *aclRun) {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = true
	req.Resources = append(req.Resources, setRetention(kmsg.ConfigResourceTypeBroker, r.side.nodeName(), "log.retention.ms"))
	ask(r, req, func(resp *kmsg.IncrementalAlterConfigsResponse) {
		for _, rr := range resp.Resources {
			r.noteCode("IncrementalAlterConfigs broker", rr.ErrorCode)
		}
	})
}

// setRetention is a resource of IncrementalAlterConfigs setting its
// config key to an hour.
func setRetention(typ kmsg.ConfigResourceType, name, key string) kmsg.IncrementalAlterConfigsRequestResource {
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = typ, name
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = key, kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("3600000")
	rr.Configs = append(rr.Configs, c)
	return rr
}

// nodeName is the side's node id, the name of its broker resource.
func (s *aclSide) nodeName() string { return strconv.Itoa(int(s.node)) }

func reqInitProducerID(transactionalID *string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = transactionalID, 60000
		ask(r, req, func(resp *kmsg.InitProducerIDResponse) { r.noteCode("InitProducerId", resp.ErrorCode) })
	}
}

func reqFindCoordinator(keyType int8, keys ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType, req.CoordinatorKey, req.CoordinatorKeys = keyType, keys[0], keys
		ask(r, req, func(resp *kmsg.FindCoordinatorResponse) {
			if len(resp.Coordinators) == 0 {
				r.noteCode("FindCoordinator "+keys[0], resp.ErrorCode)
			}
			for _, c := range resp.Coordinators {
				r.noteCode("FindCoordinator "+c.Key, c.ErrorCode)
			}
		})
	}
}

// reqGroupMembership joins group as a consumer (rejoining with the member id
// MEMBER_ID_REQUIRED hands out), syncs as its leader, heartbeats and
// leaves; when the join fails, the later requests go with a made-up member
// id, so that each API's own authorization is observed.
func reqGroupMembership(groups ...string) func(*aclRun) {
	return func(r *aclRun) {
		for _, group := range groups {
			r.groupMembership(group)
		}
	}
}

func (r *aclRun) groupMembership(group string) {
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = group, "consumer", 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0}}}
	jr, _ := r.send(join).(*kmsg.JoinGroupResponse)
	if jr == nil {
		return
	}
	if jr.ErrorCode == kerr.MemberIDRequired.Code {
		join.MemberID = jr.MemberID
		if jr, _ = r.send(join).(*kmsg.JoinGroupResponse); jr == nil {
			return
		}
	}
	r.noteCode("JoinGroup "+group, jr.ErrorCode)
	member, generation := jr.MemberID, jr.Generation
	if jr.ErrorCode != 0 {
		member, generation = "made-up-member", 1
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID = group, generation, member
	sync.ProtocolType, sync.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0}}}
	ask(r, sync, func(sr *kmsg.SyncGroupResponse) { r.noteCode("SyncGroup "+group, sr.ErrorCode) })
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.Generation, hb.MemberID = group, generation, member
	ask(r, hb, func(hr *kmsg.HeartbeatResponse) { r.noteCode("Heartbeat "+group, hr.ErrorCode) })
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = group, member
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}}
	ask(r, leave, func(lr *kmsg.LeaveGroupResponse) {
		r.noteCode("LeaveGroup "+group, lr.ErrorCode)
		for _, m := range lr.Members {
			r.noteCode("LeaveGroup "+group+" member", m.ErrorCode)
		}
	})
}

// reqOffsetCommit commits offset 1 of each partition for group, as a simple
// (generation -1) commit.
func reqOffsetCommit(group string, partitions ...tp) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = group, -1
		for _, p := range partitions {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = p.topic
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p.partition, 1, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		ask(r, req, func(resp *kmsg.OffsetCommitResponse) {
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					r.notePartition("OffsetCommit "+group, rt.Topic, rp.Partition, rp.ErrorCode)
				}
			}
		})
	}
}

// reqOffsetFetch fetches group's committed offsets of the partitions, or of
// every topic when none is named.
func reqOffsetFetch(group string, partitions ...tp) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrOffsetFetchRequest()
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = group
		for _, p := range partitions {
			rt := kmsg.NewOffsetFetchRequestGroupTopic()
			rt.Topic, rt.Partitions = p.topic, []int32{p.partition}
			rg.Topics = append(rg.Topics, rt)
			req.Topics = append(req.Topics, kmsg.OffsetFetchRequestTopic{Topic: p.topic, Partitions: []int32{p.partition}})
		}
		req.Group, req.Groups = group, []kmsg.OffsetFetchRequestGroup{rg}
		ask(r, req, func(resp *kmsg.OffsetFetchResponse) {
			errCode := resp.ErrorCode
			var parts []string
			part := func(topic string, partition int32, code int16, offset int64) {
				parts = append(parts, fmt.Sprintf("%s %s offset %d", tp{topic, partition}, codeOf(code), offset))
			}
			if len(resp.Groups) > 0 { // v8+: the group's answer
				g := resp.Groups[0]
				errCode = g.ErrorCode
				for _, rt := range g.Topics {
					for _, rp := range rt.Partitions {
						part(rt.Topic, rp.Partition, rp.ErrorCode, rp.Offset)
					}
				}
			} else {
				for _, rt := range resp.Topics {
					for _, rp := range rt.Partitions {
						part(rt.Topic, rp.Partition, rp.ErrorCode, rp.Offset)
					}
				}
			}
			slices.Sort(parts)
			r.noteCode("OffsetFetch "+group, errCode)
			r.note("OffsetFetch "+group+" partitions", "%v", parts)
		})
	}
}

func reqDescribeGroups(groups ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups, req.IncludeAuthorizedOperations = groups, true
		ask(r, req, func(resp *kmsg.DescribeGroupsResponse) {
			for _, g := range resp.Groups {
				r.note("DescribeGroups "+g.Group, "%s%s", codeOf(g.ErrorCode), operations(g.ErrorCode, g.AuthorizedOperations))
			}
		})
	}
}

// reqListGroups lists the groups named g-…, the fixtures' (other groups come
// and go with the cases, at each broker's pace).
func reqListGroups(r *aclRun) {
	ask(r, kmsg.NewPtrListGroupsRequest(), func(resp *kmsg.ListGroupsResponse) {
		var listed []string
		for _, g := range resp.Groups {
			if strings.HasPrefix(g.Group, "g-") {
				listed = append(listed, g.Group)
			}
		}
		slices.Sort(listed)
		r.note("ListGroups", "%s %v", codeOf(resp.ErrorCode), listed)
	})
}

func reqDeleteGroups(groups ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Groups = groups
		ask(r, req, func(resp *kmsg.DeleteGroupsResponse) {
			for _, g := range resp.Groups {
				r.noteCode("DeleteGroups "+g.Group, g.ErrorCode)
			}
		})
	}
}

func reqOffsetDelete(group string, partitions ...tp) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = group
		for _, p := range partitions {
			rt := kmsg.NewOffsetDeleteRequestTopic()
			rt.Topic = p.topic
			rt.Partitions = []kmsg.OffsetDeleteRequestTopicPartition{{Partition: p.partition}}
			req.Topics = append(req.Topics, rt)
		}
		ask(r, req, func(resp *kmsg.OffsetDeleteResponse) {
			r.noteCode("OffsetDelete "+group, resp.ErrorCode)
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					r.notePartition("OffsetDelete "+group, rt.Topic, rp.Partition, rp.ErrorCode)
				}
			}
		})
	}
}

// reqCreateACL creates one ACL (mustACL's form) as the run's principal.
func reqCreateACL(acl string) func(*aclRun) {
	return func(r *aclRun) {
		e := mustACL(r.t, acl)
		req := kmsg.NewPtrCreateACLsRequest()
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = e.ResourceType, e.Name, e.Pattern
		c.Principal, c.Host, c.Operation, c.PermissionType = e.Principal, e.Host, e.Operation, e.Permission
		req.Creations = append(req.Creations, c)
		ask(r, req, func(resp *kmsg.CreateACLsResponse) {
			for _, res := range resp.Results {
				r.noteCode("CreateAcls", res.ErrorCode)
			}
		})
	}
}

// reqDescribeACLs lists every ACL as the run's principal.
func reqDescribeACLs(r *aclRun) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	req.Operation, req.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	ask(r, req, func(resp *kmsg.DescribeACLsResponse) {
		n := 0
		for _, res := range resp.Resources {
			n += len(res.ACLs)
		}
		r.note("DescribeAcls", "%s acls=%d", codeOf(resp.ErrorCode), n)
	})
}

// reqDeleteACLs deletes the ACLs of User:nobody (there are none) as the
// run's principal.
func reqDeleteACLs(r *aclRun) {
	req := kmsg.NewPtrDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	f.Operation, f.PermissionType, f.Principal = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny, kmsg.StringPtr("User:nobody")
	req.Filters = append(req.Filters, f)
	ask(r, req, func(resp *kmsg.DeleteACLsResponse) {
		for _, res := range resp.Results {
			r.note("DeleteAcls", "%s matched=%d", codeOf(res.ErrorCode), len(res.MatchingACLs))
		}
	})
}

func reqDescribeSCRAM(users ...string) func(*aclRun) {
	return func(r *aclRun) {
		req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
		for _, u := range users {
			req.Users = append(req.Users, kmsg.DescribeUserSCRAMCredentialsRequestUser{Name: u})
		}
		ask(r, req, func(resp *kmsg.DescribeUserSCRAMCredentialsResponse) {
			r.noteCode("DescribeUserScramCredentials", resp.ErrorCode)
			for i, res := range resp.Results {
				what := "DescribeUserScramCredentials " + res.User
				if resp.ErrorCode != 0 {
					// Kafka answers a refused request with a result
					// per user asked for, but without their names
					// (ours names them): the codes are compared, in
					// order.
					what = fmt.Sprintf("DescribeUserScramCredentials result %d", i)
				}
				r.noteCode(what, res.ErrorCode)
			}
		})
	}
}

// reqAlterSCRAM upserts user's SCRAM-SHA-512 credential as the run's
// principal (kadm salts and hashes it).
func reqAlterSCRAM(user string) func(*aclRun) {
	return func(r *aclRun) {
		res, err := kadm.NewClient(r.cl).AlterUserSCRAMs(r.ctx, nil, []kadm.UpsertSCRAM{
			{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "scratch-Secr3t"}})
		if err != nil {
			r.note("AlterUserScramCredentials", "%s", code(err))
			return
		}
		for _, u := range res.Sorted() {
			r.note("AlterUserScramCredentials "+u.User, "%s", code(u.Err))
		}
	}
}

// aclDiffCase is one comparison: as principal user, with exactly acls set,
// run sends its requests (setup runs first, as admin).
type aclDiffCase struct {
	name  string
	user  string
	acls  []string
	setup func(*aclRun)
	run   func(*aclRun)
}

// seq runs several requests in order.
func seq(runs ...func(*aclRun)) func(*aclRun) {
	return func(r *aclRun) {
		for _, run := range runs {
			run(r)
		}
	}
}

// Principals and ACLs of the cases, in mustACL's form.
const (
	gwP    = "User:gateway-plant-a"
	sinkP  = "User:sink"
	otherP = "User:other"
)

// acl writes an ACL from any host.
func acl(resource, pattern, name, principal, op, perm string) string {
	return strings.Join([]string{resource, pattern, name, principal, "*", op, perm}, " ")
}

func topicACL(pattern, name, principal, op string) string {
	return acl("TOPIC", pattern, name, principal, op, "ALLOW")
}

func groupACL(pattern, name, principal, op string) string {
	return acl("GROUP", pattern, name, principal, op, "ALLOW")
}

func clusterACL(principal, op string) string {
	return acl("CLUSTER", "LITERAL", "kafka-cluster", principal, op, "ALLOW")
}

func aclDiffCases() []aclDiffCase {
	const (
		aPress, aMeter, bPress, dlq = "plant-a.press", "plant-a.meter", "plant-b.press", "plant-a.press.dlq"
		lit, pre                    = "LITERAL", "PREFIXED"
	)
	gw, sink, other := gatewayUser, "sink", "other"
	commitAs := func(group string) func(*aclRun) {
		return func(r *aclRun) { r.side.commit(r.t, r.ctx, group, map[string]int32{aPress: 0, bPress: 0}) }
	}
	createAs := func(topic string) func(*aclRun) {
		return func(r *aclRun) { r.side.createTopic(r.t, r.ctx, topic, 1) }
	}
	return []aclDiffCase{
		// Produce: WRITE on the topic.
		{name: "produce/no ACL", user: gw, run: reqProduce(p0(aPress)...)},
		{name: "produce/literal WRITE", user: gw, acls: []string{topicACL(lit, aPress, gwP, "WRITE")},
			run: reqProduce(tp{aPress, 0}, tp{aPress, 1}, tp{aMeter, 0})},
		{name: "produce/prefixed WRITE", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE")},
			run: reqProduce(p0(aPress, aMeter, bPress)...)},
		{name: "produce/wildcard WRITE", user: gw, acls: []string{topicACL(lit, "*", gwP, "WRITE")},
			run: reqProduce(p0(aPress, bPress)...)},
		{name: "produce/ALL", user: gw, acls: []string{topicACL(lit, aPress, gwP, "ALL")}, run: reqProduce(p0(aPress)...)},
		{name: "produce/READ does not imply WRITE", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "READ")},
			run: reqProduce(p0(aPress)...)},
		{name: "produce/literal DENY overrides prefixed ALLOW", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE"), acl("TOPIC", lit, aPress, gwP, "WRITE", "DENY")},
			run:  reqProduce(p0(aPress, aMeter)...)},
		{name: "produce/User:* DENY ALL overrides ALLOW", user: gw,
			acls: []string{topicACL(lit, "*", gwP, "WRITE"), acl("TOPIC", pre, "plant-b.", "User:*", "ALL", "DENY")},
			run:  reqProduce(p0(aPress, bPress)...)},
		{name: "produce/DENY of another operation", user: gw,
			acls: []string{topicACL(lit, aPress, gwP, "WRITE"), acl("TOPIC", lit, aPress, gwP, "READ", "DENY")},
			run:  reqProduce(p0(aPress)...)},
		{name: "produce/host 127.0.0.1", user: gw, acls: []string{"TOPIC LITERAL plant-a.press " + gwP + " 127.0.0.1 WRITE ALLOW"},
			run: reqProduce(p0(aPress)...)},
		{name: "produce/another host", user: gw, acls: []string{"TOPIC LITERAL plant-a.press " + gwP + " 10.0.0.7 WRITE ALLOW"},
			run: reqProduce(p0(aPress)...)},
		{name: "produce/DENY from another host", user: gw,
			acls: []string{topicACL(lit, aPress, gwP, "WRITE"), "TOPIC LITERAL plant-a.press " + gwP + " 10.0.0.7 WRITE DENY"},
			run:  reqProduce(p0(aPress)...)},
		{name: "produce/DENY from this host", user: gw,
			acls: []string{topicACL(lit, aPress, gwP, "WRITE"), "TOPIC LITERAL plant-a.press " + gwP + " 127.0.0.1 WRITE DENY"},
			run:  reqProduce(p0(aPress)...)},
		{name: "produce/User:*", user: other, acls: []string{topicACL(pre, "plant-a.", "User:*", "WRITE")},
			run: reqProduce(p0(aPress, bPress)...)},
		{name: "produce/another principal's ACL", user: other, acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE")},
			run: reqProduce(p0(aPress)...)},
		{name: "produce/missing topic with WRITE", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE")},
			run: reqProduce(p0("plant-a.nope")...)},
		{name: "produce/missing topic without ACL", user: gw, run: reqProduce(p0("plant-a.nope")...)},
		{name: "produce/prefixed ACL of a whole name", user: gw, acls: []string{topicACL(pre, aPress, gwP, "WRITE")},
			run: reqProduce(p0(aPress, dlq, aMeter)...)},
		{name: "produce/prefixes are case-sensitive", user: gw, acls: []string{topicACL(pre, "Plant-a.", gwP, "WRITE")},
			run: reqProduce(p0(aPress)...)},
		{name: "produce/principals are case-sensitive", user: gw, acls: []string{topicACL(pre, "plant-a.", "User:Gateway-plant-a", "WRITE")},
			run: reqProduce(p0(aPress)...)},
		{name: "produce/prefixed DENY overrides literal ALLOW", user: gw,
			acls: []string{topicACL(lit, aPress, gwP, "WRITE"), acl("TOPIC", pre, "plant-a.", gwP, "WRITE", "DENY")},
			run:  reqProduce(p0(aPress)...)},
		{name: "produce/wildcard DENY overrides literal ALLOW", user: gw,
			acls: []string{topicACL(lit, aPress, gwP, "WRITE"), acl("TOPIC", lit, "*", gwP, "WRITE", "DENY")},
			run:  reqProduce(p0(aPress)...)},
		{name: "produce/idempotent, WRITE", user: gw, acls: []string{topicACL(lit, aPress, gwP, "WRITE")},
			run: reqProduceIdempotent(p0(aPress)...)},
		{name: "produce/idempotent, IDEMPOTENT_WRITE only", user: gw, acls: []string{clusterACL(gwP, "IDEMPOTENT_WRITE")},
			run: reqProduceIdempotent(p0(aPress)...)},
		{name: "produce/transactional id without ACL", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE")},
			run: reqProduceTransactional("tx-a", p0(aPress)...)},
		{name: "produce/transactional batch without transactional id", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE")},
			run: reqProduceTransactionalBatch(nil, p0(aPress)...)},
		{name: "produce/transactional batch without ACL on its id", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE")},
			run: reqProduceTransactionalBatch(kmsg.StringPtr("tx-a"), p0(aPress)...)},
		{name: "produce/transactional batch with WRITE on its id", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE"), acl("TRANSACTIONAL_ID", lit, "tx-a", gwP, "WRITE", "ALLOW")},
			run:  reqProduceTransactionalBatch(kmsg.StringPtr("tx-a"), p0(aPress)...)},

		// Fetch: READ on the topic.
		{name: "fetch/prefixed READ", user: sink, acls: []string{topicACL(pre, "plant-a.", sinkP, "READ")},
			run: reqFetch(p0(aPress, bPress)...)},
		{name: "fetch/DESCRIBE does not imply READ", user: sink, acls: []string{topicACL(pre, "plant-a.", sinkP, "DESCRIBE")},
			run: reqFetch(p0(aPress)...)},
		{name: "fetch/WRITE does not imply READ", user: sink, acls: []string{topicACL(pre, "plant-a.", sinkP, "WRITE")},
			run: reqFetch(p0(aPress)...)},
		{name: "fetch/literal DENY overrides wildcard ALLOW", user: sink,
			acls: []string{topicACL(lit, "*", sinkP, "READ"), acl("TOPIC", lit, bPress, sinkP, "READ", "DENY")},
			run:  reqFetch(p0(aPress, bPress)...)},
		{name: "fetch/missing topic with READ", user: sink, acls: []string{topicACL(pre, "plant-a.", sinkP, "READ")},
			run: reqFetch(p0("plant-a.nope")...)},
		{name: "fetch/missing topic without ACL", user: sink, run: reqFetch(p0("plant-a.nope")...)},
		{name: "fetch/as a follower without CLUSTER_ACTION", user: sink, acls: []string{topicACL(pre, "plant-a.", sinkP, "READ")},
			run: reqFetchAsFollower(p0(aPress)...)},

		// ListOffsets: DESCRIBE on the topic.
		{name: "list offsets/READ implies DESCRIBE", user: sink, acls: []string{topicACL(pre, "plant-a.", sinkP, "READ")},
			run: reqListOffsets(p0(aPress, bPress)...)},
		{name: "list offsets/no ACL", user: sink, run: reqListOffsets(p0(aPress)...)},
		{name: "list offsets/missing topic with DESCRIBE", user: sink, acls: []string{topicACL(pre, "plant-a.", sinkP, "DESCRIBE")},
			run: reqListOffsets(p0("plant-a.nope")...)},
		{name: "list offsets/missing topic without ACL", user: sink, run: reqListOffsets(p0("plant-a.nope")...)},

		// Metadata: DESCRIBE on the topic; auto-creation CREATE.
		{name: "metadata/all topics, prefixed DESCRIBE", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE")},
			run: reqMetadata(false)},
		{name: "metadata/all topics, WRITE implies DESCRIBE", user: gw, acls: []string{topicACL(lit, aPress, gwP, "WRITE")},
			run: reqMetadata(false)},
		{name: "metadata/all topics, no ACL", user: gw, run: reqMetadata(false)},
		{name: "metadata/all topics, wildcard DESCRIBE", user: gw, acls: []string{topicACL(lit, "*", gwP, "DESCRIBE")},
			run: reqMetadata(false)},
		{name: "metadata/all topics, User:* DESCRIBE, one topic denied", user: gw,
			acls: []string{topicACL(pre, "plant-a.", "User:*", "DESCRIBE"), acl("TOPIC", lit, aMeter, gwP, "DESCRIBE", "DENY")},
			run:  reqMetadata(false)},
		{name: "metadata/named topics", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE")},
			run: reqMetadata(false, aPress, bPress)},
		{name: "metadata/topics by id", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE")},
			run: reqMetadataByID(aPress, bPress)},
		{name: "metadata/authorized operations", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "READ"), topicACL(lit, aPress, gwP, "ALTER_CONFIGS"),
				topicACL(lit, "*", gwP, "WRITE"), acl("TOPIC", lit, aMeter, gwP, "WRITE", "DENY"),
				topicACL(lit, aMeter, gwP, "DELETE")},
			run: reqMetadata(false, aPress, aMeter)},
		{name: "metadata/missing topic, DESCRIBE, no auto-creation", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE")},
			run: reqMetadata(false, "plant-a.md-missing")},
		{name: "metadata/missing topic, no ACL", user: gw, run: reqMetadata(false, "plant-a.md-missing")},
		{name: "metadata/auto-create without CREATE", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE")},
			run: reqMetadata(true, "plant-a.md-auto1")},
		{name: "metadata/auto-create with CREATE on the topic", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE"), topicACL(pre, "plant-a.md-", gwP, "CREATE")},
			run:  reqMetadata(true, "plant-a.md-auto2")},
		{name: "metadata/auto-create with CREATE on the cluster", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE"), clusterACL(gwP, "CREATE")},
			run:  reqMetadata(true, "plant-a.md-auto3")},
		{name: "metadata/auto-create with CREATE, without DESCRIBE", user: gw, acls: []string{clusterACL(gwP, "CREATE")},
			run: reqMetadata(true, "plant-a.md-auto4")},

		// CreateTopics: CREATE on the cluster or the topic.
		{name: "create topics/no ACL", user: gw, run: reqCreateTopics(true, "plant-a.ct1")},
		{name: "create topics/CREATE on the cluster", user: gw, acls: []string{clusterACL(gwP, "CREATE")},
			run: reqCreateTopics(false, "plant-a.ct2", "plant-b.ct2")},
		{name: "create topics/prefixed CREATE", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "CREATE")},
			run: reqCreateTopics(false, "plant-a.ct3", "plant-b.ct3")},
		{name: "create topics/CREATE on the cluster, DENY on the topic", user: gw,
			acls: []string{clusterACL(gwP, "CREATE"), acl("TOPIC", lit, "plant-a.ct5", gwP, "CREATE", "DENY")},
			run:  reqCreateTopics(true, "plant-a.ct5")},
		{name: "create topics/prefixed CREATE and DESCRIBE_CONFIGS", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "CREATE"), topicACL(pre, "plant-a.", gwP, "DESCRIBE_CONFIGS")},
			run:  reqCreateTopics(true, "plant-a.ct4")},
		{name: "create topics/existing topic without DESCRIBE", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "CREATE")},
			run: reqCreateTopics(true, aPress)},
		{name: "create topics/existing topic with DESCRIBE", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "CREATE"), topicACL(pre, "plant-a.", gwP, "DESCRIBE")},
			run:  reqCreateTopics(true, aPress)},

		// DeleteTopics: DELETE on the topic.
		{name: "delete topics/DELETE", user: gw, setup: createAs("plant-a.del1"), acls: []string{topicACL(pre, "plant-a.del", gwP, "DELETE")},
			run: reqDeleteTopics("plant-a.del1", bPress)},
		{name: "delete topics/DESCRIBE only", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE")},
			run: reqDeleteTopics(aPress)},
		{name: "delete topics/DELETE DENY overrides ALL", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "ALL"), acl("TOPIC", lit, aPress, gwP, "DELETE", "DENY")},
			run:  reqDeleteTopics(aPress)},
		{name: "delete topics/missing topic with DELETE", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DELETE")},
			run: reqDeleteTopics("plant-a.nope")},
		{name: "delete topics/missing topic without ACL", user: gw, run: reqDeleteTopics("plant-a.nope")},
		{name: "delete topics/by id", user: gw, setup: createAs("plant-a.del2"), acls: []string{topicACL(pre, "plant-a.del", gwP, "DELETE")},
			run: reqDeleteTopicsByID("plant-a.del2", bPress)},

		// CreatePartitions: ALTER on the topic (validate only).
		{name: "create partitions/ALTER", user: gw, acls: []string{topicACL(lit, aMeter, gwP, "ALTER")},
			run: reqCreatePartitions(2, aMeter, bPress)},
		{name: "create partitions/no ACL", user: gw, run: reqCreatePartitions(2, aMeter)},
		{name: "create partitions/CREATE on the cluster", user: gw, acls: []string{clusterACL(gwP, "CREATE")},
			run: reqCreatePartitions(2, aMeter)},
		{name: "create partitions/ALTER on the cluster", user: gw, acls: []string{clusterACL(gwP, "ALTER")},
			run: reqCreatePartitions(2, aMeter)},
		{name: "create partitions/missing topic with ALTER", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "ALTER")},
			run: reqCreatePartitions(2, "plant-a.nope")},
		{name: "create partitions/missing topic without ACL", user: gw, run: reqCreatePartitions(2, "plant-a.nope")},

		// DescribeConfigs: DESCRIBE_CONFIGS on the topic, or the cluster
		// for the broker.
		{name: "describe configs/DESCRIBE_CONFIGS", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE_CONFIGS")},
			run: reqDescribeConfigs(aPress, bPress)},
		{name: "describe configs/ALTER_CONFIGS implies DESCRIBE_CONFIGS", user: gw, acls: []string{topicACL(lit, aPress, gwP, "ALTER_CONFIGS")},
			run: reqDescribeConfigs(aPress)},
		{name: "describe configs/READ does not", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "READ")},
			run: reqDescribeConfigs(aPress)},
		{name: "describe configs/broker, cluster DESCRIBE_CONFIGS", user: gw, acls: []string{clusterACL(gwP, "DESCRIBE_CONFIGS")},
			run: reqDescribeConfigs("broker")},
		{name: "describe configs/broker, no ACL", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "ALL")},
			run: reqDescribeConfigs("broker")},
		{name: "describe configs/missing topic", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE_CONFIGS")},
			run: reqDescribeConfigs("plant-a.nope")},

		// IncrementalAlterConfigs: ALTER_CONFIGS on the topic.
		{name: "alter configs/ALTER_CONFIGS", user: gw, acls: []string{topicACL(lit, aPress, gwP, "ALTER_CONFIGS")},
			run: reqIncrementalAlterConfigs(true, aPress, bPress)},
		{name: "alter configs/DESCRIBE_CONFIGS does not", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "DESCRIBE_CONFIGS")},
			run: reqIncrementalAlterConfigs(true, aPress)},
		{name: "alter configs/ALL", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "ALL")},
			run: reqIncrementalAlterConfigs(false, aMeter)},
		{name: "alter configs/broker without cluster ALTER_CONFIGS", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "ALL"), clusterACL(gwP, "DESCRIBE_CONFIGS")}, run: reqAlterBrokerConfig},

		// InitProducerId: IDEMPOTENT_WRITE on the cluster or WRITE on
		// some topic (KIP-679); WRITE on the transactional id.
		{name: "init producer id/IDEMPOTENT_WRITE", user: gw, acls: []string{clusterACL(gwP, "IDEMPOTENT_WRITE")}, run: reqInitProducerID(nil)},
		{name: "init producer id/WRITE on a topic", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE")}, run: reqInitProducerID(nil)},
		{name: "init producer id/READ only", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "READ")}, run: reqInitProducerID(nil)},
		{name: "init producer id/ALL on a topic", user: gw, acls: []string{topicACL(lit, aPress, gwP, "ALL")}, run: reqInitProducerID(nil)},
		{name: "init producer id/User:* WRITE", user: other, acls: []string{topicACL(pre, "plant-a.", "User:*", "WRITE")}, run: reqInitProducerID(nil)},
		{name: "init producer id/WRITE from another host", user: gw,
			acls: []string{"TOPIC PREFIXED plant-a. " + gwP + " 10.0.0.7 WRITE ALLOW"}, run: reqInitProducerID(nil)},
		{name: "init producer id/IDEMPOTENT_WRITE denied, WRITE on a topic", user: gw,
			acls: []string{acl("CLUSTER", lit, "kafka-cluster", gwP, "IDEMPOTENT_WRITE", "DENY"), topicACL(pre, "plant-a.", gwP, "WRITE")},
			run:  reqInitProducerID(nil)},
		{name: "init producer id/WRITE denied on every topic", user: gw,
			acls: []string{topicACL(pre, "plant-a.", gwP, "WRITE"), acl("TOPIC", lit, "*", gwP, "WRITE", "DENY")}, run: reqInitProducerID(nil)},
		{name: "init producer id/WRITE under a prefixed DENY", user: gw,
			acls: []string{topicACL(lit, aPress, gwP, "WRITE"), acl("TOPIC", pre, "plant-a.", gwP, "WRITE", "DENY")}, run: reqInitProducerID(nil)},
		{name: "init producer id/WRITE beside a prefixed DENY", user: gw,
			acls: []string{topicACL(lit, bPress, gwP, "WRITE"), acl("TOPIC", pre, "plant-a.", gwP, "WRITE", "DENY")}, run: reqInitProducerID(nil)},
		{name: "init producer id/transactional, no ACL", user: gw, acls: []string{clusterACL(gwP, "IDEMPOTENT_WRITE")},
			run: reqInitProducerID(kmsg.StringPtr("tx-a"))},

		// FindCoordinator: DESCRIBE on the group or transactional id.
		{name: "find coordinator/group DESCRIBE", user: sink, acls: []string{groupACL(lit, "g-a", sinkP, "DESCRIBE")},
			run: reqFindCoordinator(0, "g-a", "g-b")},
		{name: "find coordinator/prefixed READ implies DESCRIBE", user: sink, acls: []string{groupACL(pre, "g-", sinkP, "READ")},
			run: reqFindCoordinator(0, "g-a")},
		{name: "find coordinator/transaction, no ACL", user: gw, acls: []string{clusterACL(gwP, "IDEMPOTENT_WRITE")},
			run: reqFindCoordinator(1, "tx-a")},

		// JoinGroup, SyncGroup, Heartbeat, LeaveGroup: READ on the group.
		{name: "group membership/READ", user: sink, acls: []string{groupACL(lit, "j-1", sinkP, "READ")}, run: reqGroupMembership("j-1")},
		{name: "group membership/DESCRIBE only", user: sink, acls: []string{groupACL(lit, "j-2", sinkP, "DESCRIBE")}, run: reqGroupMembership("j-2")},
		{name: "group membership/prefixed READ, one group denied", user: sink,
			acls: []string{groupACL(pre, "j-", sinkP, "READ"), acl("GROUP", lit, "j-4", sinkP, "READ", "DENY")},
			run:  reqGroupMembership("j-3", "j-4")},
		{name: "group membership/no ACL", user: other, run: reqGroupMembership("j-5")},

		// OffsetCommit: READ on the group and the topic.
		{name: "offset commit/group and topic READ", user: sink,
			acls: []string{groupACL(lit, "g-a", sinkP, "READ"), topicACL(pre, "plant-a.", sinkP, "READ")},
			run:  reqOffsetCommit("g-a", p0(aPress, bPress)...)},
		{name: "offset commit/group DESCRIBE only", user: sink,
			acls: []string{groupACL(lit, "g-a", sinkP, "DESCRIBE"), topicACL(pre, "plant-a.", sinkP, "READ")},
			run:  reqOffsetCommit("g-a", p0(aPress)...)},
		{name: "offset commit/topic DESCRIBE only", user: sink,
			acls: []string{groupACL(lit, "g-a", sinkP, "READ"), topicACL(pre, "plant-a.", sinkP, "DESCRIBE")},
			run:  reqOffsetCommit("g-a", p0(aPress)...)},
		{name: "offset commit/missing topic", user: sink,
			acls: []string{groupACL(lit, "g-a", sinkP, "READ"), topicACL(pre, "plant-a.", sinkP, "READ")},
			run:  reqOffsetCommit("g-a", p0("plant-a.nope")...)},

		// OffsetFetch: DESCRIBE on the group and the topics.
		{name: "offset fetch/named topics", user: sink,
			acls: []string{groupACL(lit, "g-a", sinkP, "DESCRIBE"), topicACL(pre, "plant-a.", sinkP, "DESCRIBE")},
			run:  reqOffsetFetch("g-a", p0(aPress, bPress)...)},
		{name: "offset fetch/all topics", user: sink,
			acls: []string{groupACL(lit, "g-a", sinkP, "DESCRIBE"), topicACL(pre, "plant-a.", sinkP, "DESCRIBE")},
			run:  reqOffsetFetch("g-a")},
		{name: "offset fetch/no group ACL", user: sink, acls: []string{topicACL(pre, "plant-a.", sinkP, "READ")},
			run: reqOffsetFetch("g-a", p0(aPress)...)},

		// DescribeGroups: DESCRIBE on the group.
		{name: "describe groups/DESCRIBE", user: sink, acls: []string{groupACL(lit, "g-a", sinkP, "DESCRIBE")},
			run: reqDescribeGroups("g-a", "g-b")},
		{name: "describe groups/authorized operations", user: sink,
			acls: []string{groupACL(pre, "g-", sinkP, "ALL"), acl("GROUP", lit, "g-a", sinkP, "DELETE", "DENY")},
			run:  reqDescribeGroups("g-a", "g-b")},
		{name: "describe groups/READ implies DESCRIBE", user: sink, acls: []string{groupACL(lit, "g-a", sinkP, "READ")},
			run: reqDescribeGroups("g-a")},
		{name: "describe groups/missing group", user: sink, acls: []string{groupACL(pre, "g-", sinkP, "DESCRIBE")},
			run: reqDescribeGroups("g-nope")},

		// ListGroups: DESCRIBE on the cluster, else the groups the
		// principal may DESCRIBE.
		{name: "list groups/cluster DESCRIBE", user: sink, acls: []string{clusterACL(sinkP, "DESCRIBE")}, run: reqListGroups},
		{name: "list groups/group DESCRIBE", user: sink, acls: []string{groupACL(lit, "g-a", sinkP, "DESCRIBE")}, run: reqListGroups},
		{name: "list groups/wildcard group DESCRIBE", user: sink, acls: []string{groupACL(lit, "*", sinkP, "DESCRIBE")}, run: reqListGroups},
		{name: "list groups/prefixed group READ", user: sink, acls: []string{groupACL(pre, "g-b", sinkP, "READ")}, run: reqListGroups},
		{name: "list groups/no ACL", user: sink, run: reqListGroups},
		{name: "list groups/cluster DESCRIBE denied", user: sink,
			acls: []string{acl("CLUSTER", lit, "kafka-cluster", sinkP, "DESCRIBE", "DENY"), groupACL(lit, "g-a", sinkP, "DESCRIBE")}, run: reqListGroups},

		// DeleteGroups: DELETE on the group.
		{name: "delete groups/DELETE", user: sink, setup: commitAs("g-del1"), acls: []string{groupACL(pre, "g-del", sinkP, "DELETE")},
			run: reqDeleteGroups("g-del1", "g-b")},
		{name: "delete groups/missing group with DELETE", user: sink, acls: []string{groupACL(pre, "g-", sinkP, "DELETE")},
			run: reqDeleteGroups("g-nope")},

		// OffsetDelete: DELETE on the group, READ on the topics.
		{name: "offset delete/group DELETE and topic READ", user: sink, setup: commitAs("g-del2"),
			acls: []string{groupACL(lit, "g-del2", sinkP, "DELETE"), topicACL(pre, "plant-a.", sinkP, "READ")},
			run:  reqOffsetDelete("g-del2", p0(aPress, bPress)...)},
		{name: "offset delete/no group DELETE", user: sink,
			acls: []string{groupACL(lit, "g-b", sinkP, "READ"), topicACL(pre, "plant-a.", sinkP, "READ")},
			run:  reqOffsetDelete("g-b", p0(aPress)...)},
		{name: "offset delete/missing group", user: sink,
			acls: []string{groupACL(pre, "g-", sinkP, "DELETE"), topicACL(pre, "plant-a.", sinkP, "READ")},
			run:  reqOffsetDelete("g-nope", p0(aPress)...)},

		// CreateAcls, DeleteAcls: ALTER on the cluster; DescribeAcls:
		// DESCRIBE.
		{name: "create acls/no ACL", user: gw, run: reqCreateACL(topicACL(pre, "plant-a.", gwP, "READ"))},
		{name: "create acls/cluster ALTER", user: gw, acls: []string{clusterACL(gwP, "ALTER")},
			run: reqCreateACL(topicACL(pre, "plant-a.", gwP, "READ"))},
		{name: "describe acls/no cluster DESCRIBE", user: gw, acls: []string{topicACL(pre, "plant-a.", gwP, "ALL")}, run: reqDescribeACLs},
		{name: "describe acls/cluster DESCRIBE", user: gw, acls: []string{clusterACL(gwP, "DESCRIBE")}, run: reqDescribeACLs},
		{name: "describe acls/cluster ALTER implies DESCRIBE", user: gw, acls: []string{clusterACL(gwP, "ALTER")}, run: reqDescribeACLs},
		{name: "describe acls/cluster ALL DENY overrides DESCRIBE", user: gw,
			acls: []string{clusterACL(gwP, "DESCRIBE"), acl("CLUSTER", lit, "kafka-cluster", gwP, "ALL", "DENY")}, run: reqDescribeACLs},
		{name: "delete acls/cluster DESCRIBE only", user: gw, acls: []string{clusterACL(gwP, "DESCRIBE")}, run: reqDeleteACLs},
		{name: "delete acls/cluster ALTER", user: gw, acls: []string{clusterACL(gwP, "ALTER")}, run: reqDeleteACLs},
		{name: "delete acls/cluster ALL", user: gw, acls: []string{clusterACL(gwP, "ALL")}, run: reqDeleteACLs},

		// DescribeUserScramCredentials: DESCRIBE on the cluster;
		// AlterUserScramCredentials: ALTER.
		{name: "describe scram/no ACL", user: gw, run: reqDescribeSCRAM(gatewayUser, "other")},
		{name: "describe scram/all users, no ACL", user: gw, run: reqDescribeSCRAM()},
		{name: "describe scram/cluster DESCRIBE", user: gw, acls: []string{clusterACL(gwP, "DESCRIBE")},
			run: reqDescribeSCRAM(gatewayUser, "nobody")},
		{name: "alter scram/cluster DESCRIBE only", user: gw, acls: []string{clusterACL(gwP, "DESCRIBE")}, run: reqAlterSCRAM("scratch")},
		{name: "alter scram/cluster ALTER", user: gw, acls: []string{clusterACL(gwP, "ALTER")}, run: reqAlterSCRAM("scratch")},

		// Several APIs under one principal's ACLs for a factory's sink.
		{name: "dlq/sink writes only its DLQ", user: sink,
			acls: []string{topicACL(pre, "plant-a.", sinkP, "READ"), topicACL(lit, dlq, sinkP, "WRITE")},
			run:  seq(reqProduce(p0(dlq, aPress)...), reqFetch(p0(dlq)...), reqMetadata(false))},
	}
}

// grantFactory is the scenario of `broker acls grant-factory --factory
// plant-a --gateway-user gateway-plant-a --sink-user sink`: the gateway may
// write and describe plant-a.* and produce idempotently, the sink may read
// plant-a.* with its group and write the DLQ. Real franz-go clients then
// do what the gateway and the sink do, and what they must not.
func grantFactory(r *aclRun) {
	s := r.side
	// The ACLs grant-factory gives (topics.FactoryAccess), with
	// plant-a.press.dlq the factory's only dead-letter topic.
	access := topics.FactoryAccess{Factory: "plant-a", GatewayUser: gatewayUser, SinkUser: "sink",
		SinkGroup: "factorywire-sink", DeadLetters: []string{"plant-a.press.dlq"}}
	var acls []string
	for _, a := range access.ACLs() {
		acls = append(acls, acl(a.Type.String(), a.Pattern.String(), a.Name, a.Principal, a.Operation.String(), a.Permission.String()))
	}
	setACLsKadm(r.t, s.adm, acls...)
	// The gateway: an idempotent producer (franz-go's default).
	gw := s.client(r.t, gatewayUser, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(3))
	for _, topic := range []string{"plant-a.press", "plant-b.press"} {
		err := gw.ProduceSync(r.ctx, &kgo.Record{Topic: topic, Value: []byte("sample")}).FirstErr()
		r.note("gateway produces to "+topic, "%s", code(err))
	}
	r.cl = s.users[gatewayUser]
	reqDeleteTopics("plant-a.press")(r)
	reqIncrementalAlterConfigs(false, "plant-a.press")(r)
	reqCreateTopics(false, "plant-a.new")(r)
	reqGroupMembership("factorywire-sink")(r)

	// The sink: consume plant-a.press to its end in group
	// factorywire-sink, commit, and write a dead letter.
	ends, err := s.adm.ListEndOffsets(r.ctx, "plant-a.press")
	if err != nil {
		r.t.Fatalf("%s: list end offsets: %v", s.name, err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	sink := s.client(r.t, "sink", kgo.ConsumerGroup("factorywire-sink"), kgo.ConsumeTopics("plant-a.press"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.RecordRetries(3))
	var consumed int64
	for consumed < total && r.ctx.Err() == nil {
		fs := sink.PollFetches(r.ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if r.ctx.Err() == nil {
				r.note(fmt.Sprintf("sink consumes %s[%d]", topic, p), "%s", code(err))
			}
		})
		consumed += int64(fs.NumRecords())
	}
	r.note("sink consumes plant-a.press", "%d records of %d", consumed, total)
	r.note("sink commits", "%s", code(sink.CommitUncommittedOffsets(r.ctx)))
	offsets, err := s.adm.FetchOffsets(r.ctx, "factorywire-sink")
	r.note("committed offsets of factorywire-sink", "%s %d partitions", code(err), len(offsets["plant-a.press"]))
	sink.Close()
	dl := s.client(r.t, "sink", kgo.RecordRetries(3))
	for _, topic := range []string{"plant-a.press.dlq", "plant-a.press"} {
		err := dl.ProduceSync(r.ctx, &kgo.Record{Topic: topic, Value: []byte("dead letter")}).FirstErr()
		r.note("sink produces to "+topic, "%s", code(err))
	}
	r.cl = s.users["sink"]
	reqFetch(p0("plant-b.press")...)(r)
	reqGroupMembership("other-group")(r)
}

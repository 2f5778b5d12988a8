package broker

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/kafkatest"
)

// TestAuthorizationAgainstKafka runs every API's authorization case
// (authzCases) for the SCRAM user gateway-plant-a against Apache Kafka
// 4.1.1 with its StandardAuthorizer and against our broker, with the same
// ACLs: without the case's ACLs both must refuse with the same codes, and
// with them neither may refuse. The plaintext (anonymous) client is a
// super user on both and sets the ACLs and fixtures. Both clients use the
// API versions our broker advertises.
func TestAuthorizationAgainstKafka(t *testing.T) {
	const user = "gateway-plant-a"
	dir := t.TempDir()
	ca := certtest.NewCA(t, "plant CA")
	srv := ca.Server(t, "localhost", "127.0.0.1").Write(t, dir, "broker")
	kafka := kafkatest.Start(t, kafkatest.Options{
		Listeners: map[string]string{"SECURE": "SASL_SSL"},
		Props: map[string]string{
			"authorizer.class.name":                               "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
			"super.users":                                         "User:ANONYMOUS",
			"auto.create.topics.enable":                           "false",
			"listener.name.secure.ssl.keystore.type":              "PEM",
			"listener.name.secure.ssl.keystore.location":          srv.Chain,
			"listener.name.secure.sasl.enabled.mechanisms":        "SCRAM-SHA-512",
			"listener.name.secure.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
		},
	})
	kafkaAdmin := kadm.NewClient(newClient(t, kafka.Brokers()[0]))
	altered, err := kafkaAdmin.AlterUserSCRAMs(testCtx(t), nil, []kadm.UpsertSCRAM{
		{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: gatewayPassword}})
	if err == nil {
		err = altered.Error()
	}
	if err != nil {
		t.Fatalf("create the SCRAM user on Kafka: %v", err)
	}
	ours := startSecureBroker(t, withAuthorization(anon), func(c *Config) { c.GroupInitialRebalanceDelay = 0 })

	versions := advertisedVersions()
	admins := map[string]*kgo.Client{}
	env := func(plain, secure string, caPool *tls.Config) *authzEnv {
		authzFixtures(t, plain)
		admins[plain] = newClient(t, plain, kgo.MaxVersions(versions))
		admin := kadm.NewClient(admins[plain])
		cl := newClient(t, secure, kgo.DialTLSConfig(caPool), kgo.SASL(mechanism(mechScramSHA512, user, gatewayPassword)),
			kgo.MaxVersions(versions))
		return &authzEnv{cl: cl, seed: cl.SeedBrokers()[0], set: func(t *testing.T, acls ...string) { setACLsKadm(t, admin, acls...) }}
	}
	kafkaEnv := env(kafka.Brokers()[0], kafka.ListenerAddrs("SECURE")[0], &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	oursEnv := env(ours.addr("PLAINTEXT"), ours.addr("SASL_SSL"), ours.caPool.Clone())
	oursEnv.b = ours.Broker

	for _, tc := range authzCases("User:" + user) {
		t.Run(tc.name, func(t *testing.T) {
			var denied, granted [2][]int16
			for i, e := range []*authzEnv{kafkaEnv, oursEnv} {
				e.set(t, tc.base...)
				denied[i] = tc.call(t, e)
				e.set(t, append(append([]string{}, tc.base...), tc.grant...)...)
				granted[i] = tc.call(t, e)
			}
			if !slices.Equal(denied[0], denied[1]) {
				t.Errorf("without %v: Kafka answers %s, ours %s", tc.grant, codeNames(denied[0]), codeNames(denied[1]))
			}
			for i, who := range []string{"Kafka", "ours"} {
				if len(denied[i]) == 0 || slices.ContainsFunc(denied[i], func(c int16) bool { return c != tc.deny }) {
					t.Errorf("%s without %v: %s, want all %s", who, tc.grant, codeNames(denied[i]), kerr.ErrorForCode(tc.deny))
				}
				if slices.Contains(granted[i], tc.deny) {
					t.Errorf("%s with %v: %s", who, tc.grant, codeNames(granted[i]))
				}
			}
			if !slices.Equal(granted[0], granted[1]) {
				t.Logf("with %v: Kafka answers %s, ours %s", tc.grant, codeNames(granted[0]), codeNames(granted[1]))
			}
		})
	}

	// The ACL APIs themselves, as the super user: validation of
	// creations, and the ACLs each filter describes and deletes.
	kafkaSuper, oursSuper := admins[kafka.Brokers()[0]], admins[ours.addr("PLAINTEXT")]
	t.Run("create acls validation", func(t *testing.T) {
		// One creation per request: Kafka fails a whole request for
		// one bad principal.
		for _, tc := range aclCreationCases() {
			if tc.kafkaDiffers {
				continue
			}
			var codes [2]int16
			var msgs [2]string
			for i, cl := range []*kgo.Client{kafkaSuper, oursSuper} {
				req := kmsg.NewPtrCreateACLsRequest()
				req.Creations = []kmsg.CreateACLsRequestCreation{tc.c}
				resp, err := req.RequestWith(testCtx(t), cl)
				if err != nil {
					t.Fatal(err)
				}
				codes[i] = resp.Results[0].ErrorCode
				if m := resp.Results[0].ErrorMessage; m != nil {
					msgs[i] = *m
				}
			}
			if codes[0] != codes[1] {
				t.Errorf("%s: Kafka answers %s (%s), ours %s (%s)", tc.name, codeNames(codes[:1]), msgs[0], codeNames(codes[1:]), msgs[1])
			}
		}
	})
	for _, tc := range aclFilterCases() {
		t.Run("filter "+tc.name, func(t *testing.T) {
			f := tc.f
			var described, deleted [2][]string
			for i, cl := range []*kgo.Client{kafkaSuper, oursSuper} {
				setACLsKadm(t, kadm.NewClient(cl), aclFilterACLs...)
				dreq := kmsg.NewPtrDescribeACLsRequest()
				dreq.ResourceType, dreq.ResourceName, dreq.ResourcePatternType = f.ResourceType, f.Name, f.Pattern
				dreq.Principal, dreq.Host, dreq.Operation, dreq.PermissionType = f.Principal, f.Host, f.Operation, f.Permission
				dresp, err := dreq.RequestWith(testCtx(t), cl)
				if err != nil || dresp.ErrorCode != 0 {
					t.Fatalf("describe: %v %+v", err, dresp)
				}
				for _, r := range dresp.Resources {
					for _, a := range r.ACLs {
						described[i] = append(described[i], aclEntry{r.ResourceType, r.ResourceName, r.ResourcePatternType,
							a.Principal, a.Host, a.Operation, a.PermissionType}.String())
					}
				}
				xreq := kmsg.NewPtrDeleteACLsRequest()
				xreq.Filters = []kmsg.DeleteACLsRequestFilter{{ResourceType: f.ResourceType, ResourceName: f.Name, ResourcePatternType: f.Pattern,
					Principal: f.Principal, Host: f.Host, Operation: f.Operation, PermissionType: f.Permission}}
				xresp, err := xreq.RequestWith(testCtx(t), cl)
				if err != nil || xresp.Results[0].ErrorCode != 0 {
					t.Fatalf("delete: %v %+v", err, xresp)
				}
				for _, m := range xresp.Results[0].MatchingACLs {
					deleted[i] = append(deleted[i], aclEntry{m.ResourceType, m.ResourceName, m.ResourcePatternType,
						m.Principal, m.Host, m.Operation, m.PermissionType}.String())
				}
				slices.Sort(described[i])
				slices.Sort(deleted[i])
			}
			if !slices.Equal(described[0], described[1]) || !slices.Equal(deleted[0], deleted[1]) {
				t.Errorf("Kafka describes %v and deletes %v; ours describes %v and deletes %v", described[0], deleted[0], described[1], deleted[1])
			}
		})
	}
}

func codeNames(codes []int16) string {
	var names []string
	for _, c := range codes {
		if c == 0 {
			names = append(names, "NONE")
		} else {
			names = append(names, kerr.ErrorForCode(c).Error())
		}
	}
	return "[" + strings.Join(names, " ") + "]"
}

// setACLsKadm replaces every ACL of a cluster with acls through kadm (as
// a super user), then waits until DescribeAcls, answered from the broker's
// authorizer, lists exactly them: Kafka's brokers apply ACL changes from
// the metadata log after the controller answered.
func setACLsKadm(t *testing.T, adm *kadm.Client, acls ...string) {
	t.Helper()
	ctx := testCtx(t)
	all := func() *kadm.ACLBuilder {
		return kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations().Allow().Deny().AllowHosts().DenyHosts()
	}
	if res, err := adm.DeleteACLs(ctx, all()); err != nil {
		t.Fatalf("delete ACLs: %v", err)
	} else {
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("delete ACLs: %v %s", r.Err, r.ErrMessage)
			}
		}
	}
	var want []string
	for _, s := range acls {
		e := mustACL(t, s)
		b := kadm.NewACLs().ResourcePatternType(e.Pattern).Operations(e.Operation)
		switch e.ResourceType {
		case kmsg.ACLResourceTypeTopic:
			b.Topics(e.Name)
		case kmsg.ACLResourceTypeGroup:
			b.Groups(e.Name)
		case kmsg.ACLResourceTypeCluster:
			b.Clusters()
		case kmsg.ACLResourceTypeTransactionalId:
			b.TransactionalIDs(e.Name)
		default:
			t.Fatalf("ACL %q: resource type not handled", s)
		}
		if e.Permission == kmsg.ACLPermissionTypeAllow {
			b.Allow(e.Principal).AllowHosts(e.Host)
		} else {
			b.Deny(e.Principal).DenyHosts(e.Host)
		}
		res, err := adm.CreateACLs(ctx, b)
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("create ACL %q: %v %+v", s, err, res)
		}
		want = append(want, e.String())
	}
	slices.Sort(want)
	want = slices.Compact(want)
	var got []string
	for range 200 {
		res, err := adm.DescribeACLs(ctx, all())
		if err != nil {
			t.Fatalf("describe ACLs: %v", err)
		}
		got = got[:0]
		for _, r := range res {
			for _, d := range r.Described {
				got = append(got, aclEntry{ResourceType: d.Type, Name: d.Name, Pattern: d.Pattern, Principal: d.Principal,
					Host: d.Host, Operation: d.Operation, Permission: d.Permission}.String())
			}
		}
		slices.Sort(got)
		got = slices.Compact(got)
		if slices.Equal(got, want) {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("the broker lists ACLs %v, want %v", got, fmt.Sprint(want))
}

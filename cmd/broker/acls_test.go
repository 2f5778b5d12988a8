package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/kafkatest"
	"github.com/factorywire/factorywire/internal/secret"
	"github.com/factorywire/factorywire/sink"
)

func TestDefaultSinkGroupIsTheSinks(t *testing.T) {
	if defaultSinkGroup != sink.DefaultGroup {
		t.Fatalf("defaultSinkGroup %q, sink.DefaultGroup %q", defaultSinkGroup, sink.DefaultGroup)
	}
}

// aclsTarget is a cluster with authorization on and a SASL_SSL listener
// (SCRAM-SHA-512) at addr, whose certificate caFile's CA signed, with the
// users admin (a super user), gateway-plant-a and sink.
type aclsTarget struct {
	addr, caFile string
	ca           *certtest.CA
}

const aclsGatewayPassword, aclsSinkPassword = "gw-Pa55-never-printed", "sink-Pa55-never-printed"

// TestACLsCommands grants a factory's gateway and sink their ACLs with
// `broker acls grant-factory`, checks what the users may then do with
// real clients, lists the ACLs, and revokes them: on our broker, and on
// Apache Kafka 4.1.1 with StandardAuthorizer. No password shows in the
// output.
func TestACLsCommands(t *testing.T) {
	t.Run("ours", func(t *testing.T) {
		dir := t.TempDir()
		ca := certtest.NewCA(t, "plant CA")
		srv := ca.Server(t, "localhost", "127.0.0.1").Write(t, dir, "broker")
		cfg := broker.DefaultConfig()
		cfg.DataDir = filepath.Join(dir, "data")
		cfg.Listeners = []broker.ListenerConfig{{Name: "SECURE", Address: "127.0.0.1:0", Protocol: "SASL_SSL",
			TLS: broker.ListenerTLS{CertFile: srv.Cert, KeyFile: srv.Key}}}
		cfg.SASL.BootstrapUsers = []broker.BootstrapUser{
			{Name: "admin", Password: secret.New(adminPassword)},
			{Name: "gateway-plant-a", Password: secret.New(aclsGatewayPassword)},
			{Name: "sink", Password: secret.New(aclsSinkPassword)},
		}
		cfg.SASL.FailedAuthenticationDelay = time.Millisecond
		cfg.Authorization = broker.AuthorizationConfig{Enabled: true, SuperUsers: []string{"User:admin"}}
		b, err := broker.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		testACLsCommands(t, aclsTarget{addr: b.ListenerAddr("SECURE").String(), caFile: ca.Write(t, dir), ca: ca})
	})
	t.Run("kafka", func(t *testing.T) {
		dir := t.TempDir()
		ca := certtest.NewCA(t, "plant CA")
		srv := ca.Server(t, "localhost", "127.0.0.1").Write(t, dir, "broker")
		c := kafkatest.Start(t, kafkatest.Options{
			Listeners: map[string]string{"SECURE": "SASL_SSL"},
			Props: map[string]string{
				"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
				// The brokers' and controllers' own (plaintext)
				// connections are User:ANONYMOUS.
				"super.users":                                         "User:ANONYMOUS;User:admin",
				"listener.name.secure.ssl.keystore.type":              "PEM",
				"listener.name.secure.ssl.keystore.location":          srv.Chain,
				"listener.name.secure.sasl.enabled.mechanisms":        "SCRAM-SHA-512",
				"listener.name.secure.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
			},
		})
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var ups []kadm.UpsertSCRAM
		for user, pw := range map[string]string{"admin": adminPassword, "gateway-plant-a": aclsGatewayPassword, "sink": aclsSinkPassword} {
			ups = append(ups, kadm.UpsertSCRAM{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: pw})
		}
		altered, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, ups)
		if err == nil {
			err = altered.Error()
		}
		if err != nil {
			t.Fatalf("create the SCRAM users: %v", err)
		}
		testACLsCommands(t, aclsTarget{addr: c.ListenerAddrs("SECURE")[0], caFile: ca.Write(t, dir), ca: ca})
	})
}

func testACLsCommands(t *testing.T, target aclsTarget) {
	dir := t.TempDir()
	addr, caFile, ca := target.addr, target.caFile, target.ca
	const gwPassword, sinkPassword = aclsGatewayPassword, aclsSinkPassword
	pwFile := filepath.Join(dir, "admin.pw")
	os.WriteFile(pwFile, []byte(adminPassword+"\n"), 0o600)
	conn := []string{"--brokers", addr, "--tls", "--tls-ca-file", caFile,
		"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "admin", "--sasl-password-file", pwFile}
	cmd := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := run(append(args, conn...), &out)
		for _, pw := range []string{adminPassword, gwPassword, sinkPassword} {
			if strings.Contains(out.String(), pw) || err != nil && strings.Contains(err.Error(), pw) {
				t.Fatalf("a password shows: %v\n%s", err, out.String())
			}
		}
		return out.String(), err
	}
	for _, f := range []string{"plant-a", "plant-b"} {
		if out, err := cmd("topics", "create", "--factory", f, "--classes", "press,oven", "--partitions", "1"); err != nil {
			t.Fatalf("topics create %s: %v\n%s", f, err, out)
		}
	}

	out, err := cmd("acls", "grant-factory", "--factory", "plant-a", "--gateway-user", "gateway-plant-a", "--sink-user", "sink", "--classes", "mill")
	if err != nil {
		t.Fatalf("grant-factory: %v\n%s", err, out)
	}
	for _, want := range []string{
		"User:gateway-plant-a  ALLOW       WRITE", "IDEMPOTENT_WRITE  CLUSTER",
		"GROUP     LITERAL   factorywire-sink",
		"only these dead-letter topics: plant-a.mill.dlq, plant-a.oven.dlq, plant-a.press.dlq.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("grant-factory output lacks %q:\n%s", want, out)
		}
	}
	// Granting again changes nothing and succeeds.
	if out, err := cmd("acls", "grant-factory", "--factory", "plant-a", "--gateway-user", "gateway-plant-a", "--sink-user", "sink"); err != nil {
		t.Fatalf("grant-factory again: %v\n%s", err, out)
	}

	// Kafka's brokers apply ACL changes shortly after the controller
	// answered: list (answered from the broker's authorizer) until the
	// grants show, then use them.
	out = listUntil(t, cmd, func(out string) bool { return strings.Contains(out, "plant-a.press.dlq") })
	for _, want := range []string{
		"User:gateway-plant-a:\n",
		`  may write and describe every topic whose name starts with "plant-a."`,
		"  may write idempotently (IDEMPOTENT_WRITE) on the cluster",
		`  may read group "factorywire-sink"`,
		`  may write topic "plant-a.press.dlq"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}

	client := func(user, password string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}),
			kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()), kgo.RecordRetries(3))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	produce := func(cl *kgo.Client, topic string) error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
	}
	gw, sk := client("gateway-plant-a", gwPassword), client("sink", sinkPassword)
	for _, tc := range []struct {
		who   string
		cl    *kgo.Client
		topic string
		want  error
	}{
		{"gateway", gw, "plant-a.press", nil},
		{"gateway", gw, "plant-b.press", kerr.TopicAuthorizationFailed},
		{"gateway", gw, "plant-a.press.dlq", nil}, // the factory's prefix covers it
		{"sink", sk, "plant-a.press.dlq", nil},
		{"sink", sk, "plant-a.press", kerr.TopicAuthorizationFailed},
		{"sink", sk, "plant-b.press.dlq", kerr.TopicAuthorizationFailed},
	} {
		if err := produce(tc.cl, tc.topic); tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s produces to %s: %v, want %v", tc.who, tc.topic, err, tc.want)
		}
	}

	out, err = cmd("acls", "list", "--principal", "User:sink")
	if err != nil || strings.Contains(out, "gateway") || !strings.Contains(out, `  may read and describe every topic whose name starts with "plant-a."`) {
		t.Fatalf("list --principal User:sink: %v\n%s", err, out)
	}

	out, err = cmd("acls", "revoke-factory", "--factory", "plant-a", "--gateway-user", "gateway-plant-a", "--sink-user", "sink")
	if err != nil || strings.Count(out, "ALLOW") != 7 {
		t.Fatalf("revoke-factory: %v\n%s", err, out)
	}
	out = listUntil(t, cmd, func(out string) bool { return !strings.Contains(out, "TOPIC") })
	if !strings.Contains(out, "IDEMPOTENT_WRITE") || !strings.Contains(out, "factorywire-sink") {
		t.Fatalf("list after revoke:\n%s", out)
	}
	if err := produce(gw, "plant-a.oven"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("gateway produces after revoke: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"acls", "grant-factory", "--gateway-user", "g"}, "--factory"},
		{[]string{"acls", "grant-factory", "--factory", "plant-a"}, "--gateway-user or --sink-user"},
		{[]string{"acls", "grant-factory", "--factory", "Plant_A", "--gateway-user", "g"}, "--factory"},
		{[]string{"acls", "grant-factory", "--factory", "plant-a", "--gateway-user", "User:g"}, "give the user name"},
		{[]string{"acls", "list", "--principal", "sink"}, "User:sink"},
	} {
		if _, err := cmd(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// listUntil runs `broker acls list` until done accepts its output (a
// bounded number of times) and returns that output.
func listUntil(t *testing.T, cmd func(args ...string) (string, error), done func(string) bool) string {
	t.Helper()
	var out string
	for range 200 {
		var err error
		if out, err = cmd("acls", "list"); err != nil {
			t.Fatalf("list: %v\n%s", err, out)
		}
		if done(out) {
			return out
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("acls list never showed the change:\n%s", out)
	return out
}

package broker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/peers"
)

// TestKafkaToolsManageUsersAndACLs runs Apache Kafka 4.1.1's own admin
// tools against our broker over SASL_SSL, as an operator used to Kafka
// would: kafka-configs.sh (kafka.admin.ConfigCommand) creates and
// describes a SCRAM user, who then authenticates; kafka-acls.sh
// (org.apache.kafka.tools.AclCommand) adds, lists and removes an ACL, which
// our broker enforces meanwhile.
func TestKafkaToolsManageUsersAndACLs(t *testing.T) {
	libs, java := peers.KafkaLibs(t)
	sb := startSecureBroker(t, func(c *Config) {
		c.Authorization = AuthorizationConfig{Enabled: true, SuperUsers: []string{"User:admin"}}
	})
	addr := sb.addr("SASL_SSL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(sb.saslClient(t, mechScramSHA512, "admin", adminPassword)).CreateTopic(ctx, 1, 1, nil, "plant-a.press"); err != nil {
		t.Fatal(err)
	}
	props := filepath.Join(t.TempDir(), "admin.properties")
	os.WriteFile(props, []byte(strings.Join([]string{
		"security.protocol=SASL_SSL",
		"sasl.mechanism=SCRAM-SHA-512",
		`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="` + adminPassword + `";`,
		"ssl.truststore.type=PEM",
		"ssl.truststore.location=" + sb.caFile,
	}, "\n")+"\n"), 0o600)
	tool := func(class string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, java, append([]string{"-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
			"-cp", filepath.Join(libs, "*"), class, "--bootstrap-server", addr, "--command-config", props}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", class, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	const configs, acls = "kafka.admin.ConfigCommand", "org.apache.kafka.tools.AclCommand"

	tool(configs, "--alter", "--add-config", "SCRAM-SHA-256=[iterations=8192,password=operator-pw]", "--entity-type", "users", "--entity-name", "operator")
	if out := tool(configs, "--describe", "--entity-type", "users", "--entity-name", "operator"); !strings.Contains(out, "SCRAM-SHA-256=iterations=8192") {
		t.Fatalf("kafka-configs --describe of operator:\n%s", out)
	}
	operator := func(opts ...kgo.Opt) *kgo.Client {
		return newClient(t, addr, append([]kgo.Opt{kgo.DialTLSConfig(sb.caPool.Clone()),
			kgo.SASL(mechanism(mechScramSHA256, "operator", "operator-pw")), kgo.RequestRetries(2), kgo.RetryTimeout(5 * time.Second)}, opts...)...)
	}
	offsets := func() error {
		listed, err := kadm.NewClient(operator()).ListEndOffsets(ctx, "plant-a.press")
		if err == nil {
			err = listed.Error()
		}
		return err
	}
	if err := offsets(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("operator, created by kafka-configs, without ACLs: %v; want TOPIC_AUTHORIZATION_FAILED (authenticated, not authorized)", err)
	}
	tool(acls, "--add", "--allow-principal", "User:operator", "--operation", "Describe", "--topic", "plant-a.", "--resource-pattern-type", "prefixed")
	if out := tool(acls, "--list", "--principal", "User:operator"); !strings.Contains(out, "ResourcePattern(resourceType=TOPIC, name=plant-a., patternType=PREFIXED)") ||
		!strings.Contains(out, "operation=DESCRIBE") {
		t.Fatalf("kafka-acls --list:\n%s", out)
	}
	if err := offsets(); err != nil {
		t.Fatalf("operator with DESCRIBE on plant-a.* from kafka-acls: %v", err)
	}
	tool(acls, "--remove", "--force", "--allow-principal", "User:operator", "--operation", "Describe", "--topic", "plant-a.", "--resource-pattern-type", "prefixed")
	if err := offsets(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("operator after kafka-acls --remove: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	tool(configs, "--alter", "--delete-config", "SCRAM-SHA-256", "--entity-type", "users", "--entity-name", "operator")
	if err := offsets(); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("operator after kafka-configs deleted its credential: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

package broker

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/secret"
)

// Passwords of the users every secured test broker bootstraps.
const (
	adminPassword   = "admin-Secr3t-never-logged"
	gatewayPassword = "gateway-Secr3t-never-logged"
	sinkPassword    = "sink-Secr3t-never-logged"
)

// secureBroker is a broker with one listener of each protocol, all on
// 127.0.0.1:0, and the users admin, gateway-plant-a and sink bootstrapped
// with both SCRAM mechanisms:
//
//	PLAINTEXT  plaintext, User:ANONYMOUS
//	SASL_SSL   PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 over TLS
//	SASL_PLAIN SASL_PLAINTEXT with SCRAM-SHA-256 and SCRAM-SHA-512
//	MTLS       SSL requiring a client certificate of the test CA
type secureBroker struct {
	*Broker
	dir    string
	ca     *certtest.CA
	caFile string      // the CA certificate, PEM, for clients in other processes
	caPool *tls.Config // trusts the CA, for clients
	server certtest.Files
}

// startSecureBroker starts a secureBroker over a new temp dir (or dir, to
// reopen one) and stops it when the test ends.
func startSecureBroker(t testing.TB, mutate ...func(*Config)) *secureBroker {
	t.Helper()
	sb := &secureBroker{dir: t.TempDir(), ca: certtest.NewCA(t, "plant CA")}
	certs := t.TempDir()
	caFile := sb.ca.Write(t, certs)
	sb.caFile = caFile
	sb.server = sb.ca.Server(t, "localhost", "127.0.0.1").Write(t, certs, "broker")
	sb.caPool = &tls.Config{RootCAs: sb.ca.Pool(), ServerName: "127.0.0.1"}
	tlsCfg := ListenerTLS{CertFile: sb.server.Cert, KeyFile: sb.server.Key}
	mtls := tlsCfg
	mtls.ClientAuth, mtls.ClientCAFile = "required", caFile
	mtls.PrincipalMappingRules = []string{`RULE:^CN=([^,]+),.*$/$1/L`, "DEFAULT"}
	sb.Broker = startBroker(t, sb.dir, append([]func(*Config){func(c *Config) {
		c.Listeners = []ListenerConfig{
			{Name: "PLAINTEXT", Address: "127.0.0.1:0"},
			{Name: "SASL_SSL", Address: "127.0.0.1:0", Protocol: "SASL_SSL", SASLMechanisms: []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}, TLS: tlsCfg},
			{Name: "SASL_PLAIN", Address: "127.0.0.1:0", Protocol: "SASL_PLAINTEXT"},
			{Name: "MTLS", Address: "127.0.0.1:0", Protocol: "SSL", TLS: mtls},
		}
		c.SASL.FailedAuthenticationDelay = 10 * time.Millisecond
		c.SASL.BootstrapUsers = []BootstrapUser{
			{Name: "admin", Password: secret.New(adminPassword)},
			{Name: "gateway-plant-a", Password: secret.New(gatewayPassword)},
			{Name: "sink", Password: secret.New(sinkPassword)},
		}
	}}, mutate...)...)
	return sb
}

// addr returns the address of listener name.
func (sb *secureBroker) addr(name string) string { return sb.ListenerAddr(name).String() }

// mechanism returns franz-go's SASL mechanism mech for user and password.
func mechanism(mech, user, password string) sasl.Mechanism {
	switch mech {
	case mechPlain:
		return plain.Auth{User: user, Pass: password}.AsMechanism()
	case mechScramSHA256:
		return scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
	default:
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	}
}

// saslClient returns a franz-go client of the SASL_SSL listener
// authenticating as user with mech, closed when the test ends.
func (sb *secureBroker) saslClient(t testing.TB, mech, user, password string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newClient(t, sb.addr("SASL_SSL"), append([]kgo.Opt{
		kgo.DialTLSConfig(sb.caPool.Clone()),
		kgo.SASL(mechanism(mech, user, password)),
	}, opts...)...)
}

// ping sends one Metadata request and returns its error.
func ping(cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// metricSum gathers the broker's registry and sums the series of metric
// name whose label has value (every series if label is empty).
func metricSum(t testing.TB, b *Broker, name, label, value string) float64 {
	t.Helper()
	families, err := b.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if match {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

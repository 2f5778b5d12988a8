package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/certtest"
)

// StartSCRAM starts a single-node cluster with a SASL_SSL listener named
// SECURE (ListenerAddrs("SECURE")) that takes SCRAM-SHA-512, its
// certificate for localhost and 127.0.0.1 signed by a throwaway CA, and
// creates the SCRAM user user with password through the admin API on the
// PLAINTEXT listener (Brokers()). It returns the cluster and the CA's PEM
// file, for a client's tls.ca_file.
func StartSCRAM(t *testing.T, user, password string) (c *Cluster, caFile string) {
	t.Helper()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "plant CA")
	caFile = ca.Write(t, dir)
	srv := ca.Server(t, "localhost", "127.0.0.1").Write(t, dir, "broker")
	c = Start(t, Options{
		Listeners: map[string]string{"SECURE": "SASL_SSL"},
		Props: map[string]string{
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
	altered, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: password}})
	if err == nil {
		err = altered.Error()
	}
	if err != nil {
		t.Fatalf("kafkatest: create the SCRAM user %s: %v", user, err)
	}
	return c, caFile
}

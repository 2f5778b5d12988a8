package brokerbench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/internal/pki"
	"github.com/factorywire/factorywire/topics"
)

// The secure kind (kindOursSASLSSL) is ours with one SASL_SSL listener:
// TLS with a server certificate signed by a CA made for the bench run,
// then SCRAM-SHA-512 as benchUser, bootstrapped from a password file.
// The parent writes the CA, the certificate and the password once per
// bench run into one directory (secureFiles), gives it to every secure
// child (-secure) and reads the CA and the password from it for its own
// clients, which connect as the gateway and the sink do: through
// kafkaclient.Config.Opts.

// benchUser is the SCRAM user the secure kind's clients authenticate as.
const benchUser = "bench"

// benchAdmin is the secure kind's super user, who grants benchUser its
// ACLs when the child starts; the bench's clients never use it.
const benchAdmin = "bench-admin"

// unrelatedFactories is how many other factories' gateway grants the
// secure kind's ACLs hold besides benchUser's, so each decision searches
// an index of a plant's size rather than an empty one.
const unrelatedFactories = 100

// secureAuthorization says, for the report, how the secure kind
// authorizes its user's requests.
var secureAuthorization = fmt.Sprintf("ACLs enforced (authorization.enabled): %s is not a super user; it is allowed ALL on topic *, group * and the cluster, beside %d other factories' gateway grants (%d ACLs)",
	benchUser, unrelatedFactories, 3*unrelatedFactories+3)

// benchCertValid is how long the bench run's CA and certificate are valid:
// longer than any run.
const benchCertValid = 7 * 24 * time.Hour

// secureFiles are the paths of the secure kind's material in its
// directory.
type secureFiles struct {
	Dir      string
	CA       string // the CA's certificate, PEM: what clients verify the broker against
	Cert     string // the broker's certificate for 127.0.0.1, PEM
	Key      string // its private key, PEM
	Password string // benchUser's password, one line
	Admin    string // benchAdmin's password, one line
}

// secureFilesIn names the files of the secure kind's directory dir.
func secureFilesIn(dir string) secureFiles {
	return secureFiles{
		Dir:      dir,
		CA:       filepath.Join(dir, "ca.pem"),
		Cert:     filepath.Join(dir, "broker.crt"),
		Key:      filepath.Join(dir, "broker.key"),
		Password: filepath.Join(dir, benchUser+".password"),
		Admin:    filepath.Join(dir, benchAdmin+".password"),
	}
}

// writeSecureFiles makes a CA, a server certificate for 127.0.0.1 and a
// random password for benchUser, and writes them to dir (created; files
// readable by the owner only).
func writeSecureFiles(dir string) (secureFiles, error) {
	f := secureFilesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	ca, err := pki.NewCA("brokerbench CA", benchCertValid)
	if err != nil {
		return f, err
	}
	srv, err := ca.Server(benchCertValid, "127.0.0.1")
	if err != nil {
		return f, err
	}
	files, err := srv.Write(dir, "broker")
	if err != nil {
		return f, err
	}
	if files.Cert != f.Cert || files.Key != f.Key {
		return f, fmt.Errorf("pki wrote %s and %s, want %s and %s", files.Cert, files.Key, f.Cert, f.Key)
	}
	if path, err := ca.Write(dir); err != nil {
		return f, err
	} else if path != f.CA {
		return f, fmt.Errorf("pki wrote the CA to %s, want %s", path, f.CA)
	}
	if err := os.WriteFile(f.Password, []byte(rand.Text()+"\n"), 0o600); err != nil {
		return f, fmt.Errorf("write the %s password: %w", benchUser, err)
	}
	if err := os.WriteFile(f.Admin, []byte(rand.Text()+"\n"), 0o600); err != nil {
		return f, fmt.Errorf("write the %s password: %w", benchAdmin, err)
	}
	return f, nil
}

// secureConfig is ours as the secure kind runs it: the default config
// (flush always, as ours) with one SASL_SSL listener on 127.0.0.1 that
// takes SCRAM-SHA-512 only, and benchUser created at start from the
// password file.
func secureConfig(dataDir string, f secureFiles) broker.Config {
	cfg := broker.DefaultConfig()
	cfg.DataDir = dataDir
	cfg.Listeners = []broker.ListenerConfig{{
		Name:           "SASL_SSL",
		Address:        "127.0.0.1:0",
		Protocol:       "SASL_SSL",
		SASLMechanisms: []string{kafkaclient.ScramSHA512},
		TLS:            broker.ListenerTLS{CertFile: f.Cert, KeyFile: f.Key},
	}}
	cfg.SASL.BootstrapUsers = []broker.BootstrapUser{
		{Name: benchUser, Mechanisms: []string{kafkaclient.ScramSHA512}, PasswordFile: f.Password},
		{Name: benchAdmin, Mechanisms: []string{kafkaclient.ScramSHA512}, PasswordFile: f.Admin},
	}
	cfg.Authorization = broker.AuthorizationConfig{Enabled: true, SuperUsers: []string{"User:" + benchAdmin}}
	return cfg
}

// grantBench creates, as benchAdmin, benchUser's ACLs and the unrelated
// factories' on the secure broker at addr.
func grantBench(addr string, f secureFiles) error {
	c := kafkaclient.Config{
		Brokers: []string{addr},
		TLS:     kafkaclient.TLSConfig{Enabled: true, CAFile: f.CA},
		SASL:    kafkaclient.SASLConfig{Mechanism: kafkaclient.ScramSHA512, Username: benchAdmin, PasswordFile: f.Admin},
	}
	opts, err := c.Opts(nil)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bench := "User:" + benchUser
	acls := []topics.ACL{
		{Principal: bench, Host: "*", Type: kmsg.ACLResourceTypeTopic, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAll, Permission: kmsg.ACLPermissionTypeAllow},
		{Principal: bench, Host: "*", Type: kmsg.ACLResourceTypeGroup, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAll, Permission: kmsg.ACLPermissionTypeAllow},
		{Principal: bench, Host: "*", Type: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAll, Permission: kmsg.ACLPermissionTypeAllow},
	}
	for i := range unrelatedFactories {
		factory := fmt.Sprintf("plant-%03d", i)
		acls = append(acls, topics.FactoryAccess{Factory: factory, GatewayUser: "gateway-" + factory}.ACLs()...)
	}
	return topics.NewAdmin(cl).CreateACLs(ctx, acls)
}

// endpoint is how this process's clients reach one broker: the connection
// options of its kind (seed broker, then TLS and SASL for the secure
// kind). Every client of the benchmark is made by endpoint.client, so
// every scenario runs over the connection security of the broker's kind.
type endpoint struct {
	opts []kgo.Opt
}

// client returns a new client of the endpoint with extra options after
// the connection's.
func (e endpoint) client(extra ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(slices.Concat(e.opts, extra)...)
}

// connConfig is the kafka block of a broker of the given kind at addr:
// plaintext without authentication, or, for the secure kind, TLS verifying
// the bench CA and SCRAM-SHA-512 as benchUser.
func connConfig(kind, addr string, f secureFiles) kafkaclient.Config {
	c := kafkaclient.Config{Brokers: []string{addr}}
	if kind == kindOursSASLSSL {
		c.TLS = kafkaclient.TLSConfig{Enabled: true, CAFile: f.CA}
		c.SASL = kafkaclient.SASLConfig{Mechanism: kafkaclient.ScramSHA512, Username: benchUser, PasswordFile: f.Password}
	}
	return c
}

// newEndpoint returns the endpoint of a broker of the given kind at addr
// (see connConfig). Its clients log nothing.
func newEndpoint(kind, addr string, f secureFiles) (endpoint, error) {
	opts, err := connConfig(kind, addr, f).Opts(nil)
	if err != nil {
		return endpoint{}, fmt.Errorf("%s client options: %w", kind, err)
	}
	return endpoint{opts: opts}, nil
}

// tlsSession dials the secure kind's listener once with the TLS settings
// kafkaclient gives its clients (TLS 1.2 or later, the bench CA as the
// only root) and describes the session negotiated, for the report:
// "TLS 1.3, TLS_AES_128_GCM_SHA256".
func tlsSession(addr string, f secureFiles) (string, error) {
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return "", fmt.Errorf("%s holds no PEM certificate", f.CA)
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots})
	if err != nil {
		return "", fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	return fmt.Sprintf("%s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)), nil
}

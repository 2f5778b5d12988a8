package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/internal/pki"
	"github.com/factorywire/factorywire/internal/secret"
	"github.com/factorywire/factorywire/sink"
	"github.com/factorywire/factorywire/topics"
)

// A secured plant (Config.Secure): our broker with a single SASL_SSL
// listener taking SCRAM-SHA-512, ACLs enforced, and a user per component:
//
//	admin            super user, bootstrapped at the broker's start; creates
//	                 the other users, the topics and the ACLs
//	gateway-<factory> writes its factory's topics only
//	sink             reads every factory's topics and its group, writes
//	                 their dead-letter topics
//
// The CA, the broker's certificate and every password are made at start
// in <data dir>/secure (the directory 0700, each file 0600) and reused if
// they exist, so a demo restarted on the same data dir keeps its users.
const (
	secureDir     = "secure"
	adminUser     = "admin"
	sinkUser      = "sink"
	secureMech    = kafkaclient.ScramSHA512
	certValidity  = 365 * 24 * time.Hour
	secureListen  = "SECURE"
	passwordBytes = 24
)

// GatewayUser is the SASL user of factory's gateway in a secured demo.
func GatewayUser(factory string) string { return "gateway-" + factory }

// securePlant is where a secured demo's files are.
type securePlant struct {
	dir               string
	caFile            string
	certFile, keyFile string
}

// SecureDir is where a secured demo keeps its CA (ca.pem), the broker's
// certificate and key, and one password file per user (<user>.password);
// empty if the demo is not secured.
func (d *Demo) SecureDir() string {
	if d.secure == nil {
		return ""
	}
	return d.secure.dir
}

// PasswordFile is the file holding user's password in a secured demo.
func (d *Demo) PasswordFile(user string) string {
	return filepath.Join(d.secure.dir, user+".password")
}

// CAFile is the CA certificate a client of a secured demo trusts.
func (d *Demo) CAFile() string { return d.secure.caFile }

// setUpSecure makes (or finds) the CA, the broker's certificate for
// 127.0.0.1 and localhost, and the users' passwords.
func (d *Demo) setUpSecure() error {
	dir := filepath.Join(d.cfg.DataDir, secureDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("secure plant: %w", err)
	}
	sp := &securePlant{dir: dir, caFile: filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "broker.crt"), keyFile: filepath.Join(dir, "broker.key")}
	if _, err := os.Stat(sp.caFile); os.IsNotExist(err) {
		ca, err := pki.NewCA("factorywire demo CA", certValidity)
		if err != nil {
			return err
		}
		srv, err := ca.Server(certValidity, "localhost", "127.0.0.1")
		if err != nil {
			return err
		}
		if _, err := srv.Write(dir, "broker"); err != nil {
			return err
		}
		if _, err := ca.Write(dir); err != nil {
			return err
		}
	}
	users := []string{adminUser, sinkUser}
	for i := 0; i < d.cfg.Factories; i++ {
		users = append(users, GatewayUser(Factory(i)))
	}
	for _, u := range users {
		path := filepath.Join(dir, u+".password")
		if _, err := os.Stat(path); err == nil {
			continue
		}
		raw := make([]byte, passwordBytes)
		rand.Read(raw)
		if err := os.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
			return fmt.Errorf("secure plant: %w", err)
		}
	}
	d.secure = sp
	return nil
}

// secureBrokerConfig turns the broker's config into the secured plant's:
// one SASL_SSL listener on listen, the admin bootstrapped, ACLs enforced.
func (d *Demo) secureBrokerConfig(cfg *broker.Config, listen string) {
	sp := d.secure
	cfg.Listeners = []broker.ListenerConfig{{
		Name: secureListen, Address: listen, Protocol: "SASL_SSL", SASLMechanisms: []string{secureMech},
		TLS: broker.ListenerTLS{CertFile: sp.certFile, KeyFile: sp.keyFile},
	}}
	cfg.SASL.BootstrapUsers = []broker.BootstrapUser{{Name: adminUser, Mechanisms: []string{secureMech}, PasswordFile: d.PasswordFile(adminUser)}}
	cfg.Authorization = broker.AuthorizationConfig{Enabled: true, SuperUsers: []string{"User:" + adminUser}}
}

// kafkaAs is the connection of user to the secured broker: TLS verifying
// the demo's CA, SCRAM-SHA-512 with the user's password file.
func (d *Demo) kafkaAs(user string) kafkaclient.Config {
	return kafkaclient.Config{
		Brokers: []string{d.BrokerAddr()},
		TLS:     kafkaclient.TLSConfig{Enabled: true, CAFile: d.secure.caFile},
		SASL:    kafkaclient.SASLConfig{Mechanism: secureMech, Username: user, PasswordFile: d.PasswordFile(user)},
	}
}

// grantPlant creates the gateways' and the sink's users (as the admin,
// with AlterUserScramCredentials, the password salted here) and their
// ACLs, once the topics exist.
func (d *Demo) grantPlant() error {
	return d.administer(func(ctx context.Context, adm *topics.Admin) error {
		var ups []kadm.UpsertSCRAM
		for i := 0; i <= d.cfg.Factories; i++ {
			user := sinkUser
			if i < d.cfg.Factories {
				user = GatewayUser(Factory(i))
			}
			pw, err := secret.FromFile(d.PasswordFile(user))
			if err != nil {
				return fmt.Errorf("secure plant: %w", err)
			}
			ups = append(ups, kadm.UpsertSCRAM{User: user, Mechanism: kadm.ScramSha512, Iterations: 8192, Password: pw.Reveal()})
		}
		altered, err := adm.Kadm().AlterUserSCRAMs(ctx, nil, ups)
		if err == nil {
			err = altered.Error()
		}
		if err != nil {
			return fmt.Errorf("secure plant: create the users: %w", err)
		}
		for i := 0; i < d.cfg.Factories; i++ {
			dlq, err := adm.DeadLetterTopics(ctx, "", Factory(i), d.cfg.Classes)
			if err != nil {
				return err
			}
			access := topics.FactoryAccess{Factory: Factory(i), GatewayUser: GatewayUser(Factory(i)), SinkUser: sinkUser,
				SinkGroup: sink.DefaultGroup, DeadLetters: dlq}
			if err := adm.CreateACLs(ctx, access.ACLs()); err != nil {
				return fmt.Errorf("secure plant: grant %s: %w", Factory(i), err)
			}
		}
		return nil
	})
}

// AdminKafka is how the admin commands reach the demo's broker: its
// address and, in a secured plant, TLS and SCRAM as the admin (paths and
// the user, never a password).
func (d *Demo) AdminKafka() kafkaclient.Config { return d.kafka() }

// Secure reports whether the demo runs a secured plant.
func (d *Demo) Secure() bool { return d.secure != nil }

package broker

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/xdg-go/scram"
)

// TestSASLMechanisms authenticates franz-go with each mechanism over TLS
// (and SCRAM without TLS), produces and consumes; a wrong password and an
// unknown user fail alike with SASL_AUTHENTICATION_FAILED, counted, and
// the password shows in no log line.
func TestSASLMechanisms(t *testing.T) {
	logs := &logSink{}
	sb := startSecureBroker(t, func(c *Config) { c.Logger = logs.logger() })
	for _, tc := range []struct{ listener, mech string }{
		{"SASL_SSL", mechPlain}, {"SASL_SSL", mechScramSHA256}, {"SASL_SSL", mechScramSHA512},
		{"SASL_PLAIN", mechScramSHA256}, {"SASL_PLAIN", mechScramSHA512},
	} {
		t.Run(tc.listener+"/"+tc.mech, func(t *testing.T) {
			opts := []kgo.Opt{kgo.SASL(mechanism(tc.mech, "gateway-plant-a", gatewayPassword))}
			if tc.listener == "SASL_SSL" {
				opts = append(opts, kgo.DialTLSConfig(sb.caPool.Clone()))
			}
			topic := strings.ToLower("auth." + strings.ReplaceAll(tc.listener+"-"+tc.mech, "_", "-"))
			cl := newClient(t, sb.addr(tc.listener), append(opts, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())...)
			createTopic(t, sb.addr("PLAINTEXT"), topic, 1, nil)
			before := metricSum(t, sb.Broker, "factorywire_broker_authentications_total", "mechanism", tc.mech)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := range 5 {
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
					t.Fatalf("produce as gateway-plant-a with %s: %v", tc.mech, err)
				}
			}
			got := consumeN(t, sb.addr(tc.listener), topic, 5, opts...)
			if string(got[4].Value) != "r4" {
				t.Fatalf("consumed %q last, want r4", got[4].Value)
			}
			if after := metricSum(t, sb.Broker, "factorywire_broker_authentications_total", "mechanism", tc.mech); after <= before {
				t.Fatalf("authentications_total{mechanism=%s} did not grow: %v", tc.mech, after)
			}

			for _, bad := range []struct{ user, pw string }{{"gateway-plant-a", "wrong-" + gatewayPassword}, {"nobody", gatewayPassword}} {
				failsBefore := metricSum(t, sb.Broker, "factorywire_broker_authentication_failures_total", "mechanism", tc.mech)
				bopts := []kgo.Opt{kgo.SASL(mechanism(tc.mech, bad.user, bad.pw)), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second)}
				if tc.listener == "SASL_SSL" {
					bopts = append(bopts, kgo.DialTLSConfig(sb.caPool.Clone()))
				}
				err := ping(newClient(t, sb.addr(tc.listener), bopts...))
				if !errors.Is(err, kerr.SaslAuthenticationFailed) {
					t.Fatalf("user %s with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", bad.user, err)
				}
				if want := authFailedMessage(tc.mech); !strings.Contains(err.Error(), want) {
					t.Fatalf("user %s: error %q does not say %q", bad.user, err, want)
				}
				if after := metricSum(t, sb.Broker, "factorywire_broker_authentication_failures_total", "mechanism", tc.mech); after <= failsBefore {
					t.Fatalf("authentication_failures_total{mechanism=%s} did not grow", tc.mech)
				}
			}
		})
	}
	if len(logs.lines("authentication failed", "user=nobody")) == 0 {
		t.Fatal("no log line names the unknown user nobody")
	}
	for _, pw := range []string{adminPassword, gatewayPassword, sinkPassword} {
		if l := logs.lines(pw); len(l) > 0 {
			t.Fatalf("a password is logged: %s", l[0])
		}
	}
}

// dialRawTLS is dialRaw over TLS.
func dialRawTLS(t *testing.T, addr string, cfg *tls.Config) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func handshakeReq(version int16, mech string) *kmsg.SASLHandshakeRequest {
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = version, mech
	return req
}

func authReq(token []byte) *kmsg.SASLAuthenticateRequest {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = 2, token
	return req
}

// TestUnauthenticatedGetsOnlyHandshake: on a SASL listener a client that has
// not authenticated gets answers to ApiVersions and SaslHandshake only; any
// other request, a SaslAuthenticate before the handshake, or a request
// larger than 512 KiB closes the connection unanswered.
func TestUnauthenticatedGetsOnlyHandshake(t *testing.T) {
	sb := startSecureBroker(t)
	addr := sb.addr("SASL_PLAIN")
	apiv := kmsg.NewPtrApiVersionsRequest()
	apiv.Version = 3
	apiv.ClientSoftwareName, apiv.ClientSoftwareVersion = "raw", "1"
	metadata := kmsg.NewPtrMetadataRequest()
	metadata.Version = 7
	for _, key := range []kmsg.Request{
		metadata, kmsg.NewPtrCreateTopicsRequest(), kmsg.NewPtrDeleteTopicsRequest(), kmsg.NewPtrProduceRequest(),
		kmsg.NewPtrFetchRequest(), kmsg.NewPtrAlterUserSCRAMCredentialsRequest(), kmsg.NewPtrFindCoordinatorRequest(),
	} {
		t.Run(kmsg.NameForKey(key.Key()), func(t *testing.T) {
			c := dialRaw(t, addr)
			if resp := c.roundTrip(apiv).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
				t.Fatalf("ApiVersions before authentication: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
			}
			key.SetVersion(min(key.MaxVersion(), apis[key.Key()].max))
			c.send(key)
			if !c.closedByBroker() {
				t.Fatalf("%s before authentication was not refused by closing the connection", kmsg.NameForKey(key.Key()))
			}
		})
	}
	t.Run("after the handshake", func(t *testing.T) {
		c := dialRaw(t, addr)
		if resp := c.roundTrip(handshakeReq(1, mechScramSHA256)).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != 0 {
			t.Fatalf("handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		c.send(metadata)
		if !c.closedByBroker() {
			t.Fatal("Metadata between SaslHandshake and SaslAuthenticate was answered")
		}
	})
	t.Run("authenticate before the handshake", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send(authReq([]byte("n,,n=admin,r=abc")))
		if !c.closedByBroker() {
			t.Fatal("SaslAuthenticate before SaslHandshake was answered")
		}
	})
	t.Run("large request", func(t *testing.T) {
		c := dialRaw(t, addr)
		frame := binary.BigEndian.AppendUint32(nil, 600<<10)
		frame = binary.BigEndian.AppendUint16(frame, uint16(kmsg.ApiVersions))
		c.c.Write(append(frame, 0, 3, 0, 0, 0, 1))
		if !c.closedByBroker() {
			t.Fatal("a 600 KiB request before authentication was not refused")
		}
	})
	t.Run("unsupported mechanism", func(t *testing.T) {
		c := dialRaw(t, addr)
		resp := c.roundTrip(handshakeReq(1, "GSSAPI")).(*kmsg.SASLHandshakeResponse)
		if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || strings.Join(resp.SupportedMechanisms, ",") != "SCRAM-SHA-256,SCRAM-SHA-512" {
			t.Fatalf("GSSAPI: %v, mechanisms %v", kerr.ErrorForCode(resp.ErrorCode), resp.SupportedMechanisms)
		}
		if !c.closedByBroker() {
			t.Fatal("the connection stayed open after an unsupported mechanism")
		}
	})
	t.Run("no SASL on a plaintext listener", func(t *testing.T) {
		c := dialRaw(t, sb.addr("PLAINTEXT"))
		if resp := c.roundTrip(handshakeReq(1, mechPlain)).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("SaslHandshake on PLAINTEXT: %v, want ILLEGAL_SASL_STATE", kerr.ErrorForCode(resp.ErrorCode))
		}
	})
}

// scramExchange runs a SCRAM-SHA-512 exchange as user over raw requests
// on conn c. It returns the two client messages sent and the error of the
// last step.
func scramExchange(t *testing.T, c *rawConn, first, final func(server string) string) error {
	t.Helper()
	if resp := c.roundTrip(handshakeReq(1, mechScramSHA512)).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != 0 {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	r1 := c.roundTrip(authReq([]byte(first("")))).(*kmsg.SASLAuthenticateResponse)
	if r1.ErrorCode != 0 {
		return kerr.ErrorForCode(r1.ErrorCode)
	}
	r2 := c.roundTrip(authReq([]byte(final(string(r1.SASLAuthBytes))))).(*kmsg.SASLAuthenticateResponse)
	return kerr.ErrorForCode(r2.ErrorCode)
}

// TestSCRAMReplayFails records a successful SCRAM exchange and replays the
// client's two messages on a new connection: the broker's nonce differs,
// so the replayed proof is refused.
func TestSCRAMReplayFails(t *testing.T) {
	sb := startSecureBroker(t)
	addr := sb.addr("SASL_PLAIN")
	client, err := scram.SHA512.NewClient("admin", adminPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := client.NewConversation()
	var sent []string
	step := func(server string) string {
		msg, err := conv.Step(server)
		if err != nil {
			t.Fatalf("client step: %v", err)
		}
		sent = append(sent, msg)
		return msg
	}
	if err := scramExchange(t, dialRaw(t, addr), step, step); err != nil {
		t.Fatalf("the recorded exchange failed: %v", err)
	}
	replay := func(i int) func(string) string { return func(string) string { return sent[i] } }
	c := dialRaw(t, addr)
	if err := scramExchange(t, c, replay(0), replay(1)); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("the replayed exchange: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if !c.closedByBroker() {
		t.Fatal("the connection stayed open after the replay failed")
	}
}

// TestSASLHandshakeV0 authenticates as clients from before KIP-152 do: a v0
// SaslHandshake, then the PLAIN token in a bare frame, answered by an empty
// bare frame; a wrong password closes the connection.
func TestSASLHandshakeV0(t *testing.T) {
	sb := startSecureBroker(t)
	rawToken := func(c *rawConn, token string) ([]byte, error) {
		c.c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(token))), token...))
		var size [4]byte
		if _, err := io.ReadFull(c.r, size[:]); err != nil {
			return nil, err
		}
		out := make([]byte, binary.BigEndian.Uint32(size[:]))
		_, err := io.ReadFull(c.r, out)
		return out, err
	}
	c := dialRawTLS(t, sb.addr("SASL_SSL"), sb.caPool.Clone())
	if resp := c.roundTrip(handshakeReq(0, mechPlain)).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != 0 {
		t.Fatalf("v0 handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if out, err := rawToken(c, "\x00admin\x00"+adminPassword); err != nil || len(out) != 0 {
		t.Fatalf("PLAIN token in a bare frame: %q, %v; want an empty frame", out, err)
	}
	metadata := kmsg.NewPtrMetadataRequest()
	metadata.Version = 7
	if resp := c.roundTrip(metadata).(*kmsg.MetadataResponse); len(resp.Brokers) != 1 {
		t.Fatalf("metadata after v0 authentication: %d brokers", len(resp.Brokers))
	}

	c = dialRawTLS(t, sb.addr("SASL_SSL"), sb.caPool.Clone())
	c.roundTrip(handshakeReq(0, mechPlain))
	if out, err := rawToken(c, "\x00admin\x00wrong"); err == nil {
		t.Fatalf("a wrong password in a bare frame was answered %q", out)
	}
}

// TestListenersAdvertiseTheirOwnAddress: Metadata and FindCoordinator name
// the address of the listener the request came in by.
func TestListenersAdvertiseTheirOwnAddress(t *testing.T) {
	sb := startSecureBroker(t)
	for _, name := range []string{"PLAINTEXT", "SASL_PLAIN"} {
		opts := []kgo.Opt{}
		if name == "SASL_PLAIN" {
			opts = append(opts, kgo.SASL(mechanism(mechScramSHA256, "admin", adminPassword)))
		}
		cl := newClient(t, sb.addr(name), opts...)
		resp, err := kmsg.NewPtrMetadataRequest().RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%s:%d", resp.Brokers[0].Host, resp.Brokers[0].Port); got != sb.addr(name) {
			t.Fatalf("listener %s advertises %s, want %s", name, got, sb.addr(name))
		}
	}
}

// TestMutualTLS: the SSL listener requiring client certificates serves a
// client with a certificate of the CA, its principal mapped from the
// subject, and refuses one without, counting a TLS authentication failure.
func TestMutualTLS(t *testing.T) {
	logs := &logSink{}
	sb := startSecureBroker(t, func(c *Config) { c.Logger = logs.logger() })
	client := sb.ca.Client(t, "Gateway-Plant-A")
	cfg := sb.caPool.Clone()
	cfg.Certificates = []tls.Certificate{client.TLS}
	cl := newClient(t, sb.addr("MTLS"), kgo.DialTLSConfig(cfg))
	if err := ping(cl); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	cl.Close()
	// The mapping rule takes the CN in lower case.
	deadline := time.Now().Add(10 * time.Second)
	waitUntil(t, deadline, "a log line with the mapped principal", func() bool {
		return len(logs.lines("principal=User:gateway-plant-a")) > 0
	})

	before := metricSum(t, sb.Broker, "factorywire_broker_authentication_failures_total", "mechanism", "TLS")
	if err := ping(newClient(t, sb.addr("MTLS"), kgo.DialTLSConfig(sb.caPool.Clone()), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	waitUntil(t, deadline, "a TLS authentication failure counted", func() bool {
		return metricSum(t, sb.Broker, "factorywire_broker_authentication_failures_total", "mechanism", "TLS") > before
	})
	// The failure is counted, then logged: wait for the line too.
	waitUntil(t, deadline, "a log line for the failed handshake", func() bool {
		return len(logs.lines("TLS handshake failed", "listener=MTLS")) > 0
	})
}

func TestPrincipalMappingRules(t *testing.T) {
	for _, tc := range []struct {
		rules   []string
		subject string
		want    string
		ok      bool
	}{
		{nil, "CN=gw,O=Plant A", "CN=gw,O=Plant A", true},
		{[]string{`RULE:^CN=([^,]+),O=(.*)$/$1@$2/`}, "CN=gw,O=Plant", "gw@Plant", true},
		{[]string{`RULE:^CN=([^,]+),.*$/$1/U`}, "CN=gw,O=x", "GW", true},
		{[]string{`RULE:^CN=([^,]+)$/$1/`}, "CN=gw,O=x", "", false},
		{[]string{`RULE:^CN=([^,]+)$/$1/`, "DEFAULT"}, "CN=gw,O=x", "CN=gw,O=x", true},
		{[]string{`RULE:^CN=(.*?),OU=ServiceUsers.*$/$1x/`}, "CN=svc,OU=ServiceUsers,O=p", "svcx", true},
	} {
		rules, err := parsePrincipalRules(tc.rules)
		if err != nil {
			t.Fatalf("%v: %v", tc.rules, err)
		}
		if got, ok := mapPrincipal(rules, tc.subject); got != tc.want || ok != tc.ok {
			t.Errorf("rules %v on %q: %q, %v; want %q, %v", tc.rules, tc.subject, got, ok, tc.want, tc.ok)
		}
	}
	for _, bad := range []string{"RULE:x", "RULE:(/y/", "RULE:a/b/X", "SOMETHING"} {
		if _, err := parsePrincipalRules([]string{bad}); err == nil {
			t.Errorf("rule %q was accepted", bad)
		}
	}
}

// TestReloadTLS replaces the listener's certificate and reloads: new
// connections get the new certificate, a client connected before keeps
// producing, and files that do not load leave the previous certificate in
// place with an error naming them.
func TestReloadTLS(t *testing.T) {
	sb := startSecureBroker(t)
	addr := sb.addr("SASL_SSL")
	topic := "reload.tls"
	createTopic(t, sb.addr("PLAINTEXT"), topic, 1, nil)
	cl := sb.saslClient(t, mechScramSHA512, "admin", adminPassword, kgo.DefaultProduceTopic(topic))
	produce := func(v string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr()
	}
	if err := produce("before"); err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		c, err := tls.Dial("tcp", addr, sb.caPool.Clone())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	old := serial()
	fresh := sb.ca.Server(t, "localhost", "127.0.0.1")
	os.WriteFile(sb.server.Cert, fresh.CertPEM, 0o600)
	os.WriteFile(sb.server.Key, fresh.KeyPEM, 0o600)
	if err := sb.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if now := serial(); now == old || now != fresh.Cert.SerialNumber.String() {
		t.Fatalf("after the reload the listener shows certificate %s; want the new %s", now, fresh.Cert.SerialNumber)
	}
	if err := produce("after"); err != nil {
		t.Fatalf("the client connected before the reload: %v", err)
	}

	os.WriteFile(sb.server.Key, []byte("not a key"), 0o600)
	err := sb.ReloadTLS()
	if err == nil || !strings.Contains(err.Error(), sb.server.Key) || !strings.Contains(err.Error(), "SASL_SSL") {
		t.Fatalf("reloading a broken key: %v; want an error naming the listener and the file", err)
	}
	if now := serial(); now != fresh.Cert.SerialNumber.String() {
		t.Fatalf("a failed reload changed the certificate to %s", now)
	}
}

// TestUsersAreStoredAsSCRAMCredentials: the users survive a restart without
// their bootstrap entries, users.json is readable by its owner only and
// holds no password, and a bootstrap entry never overwrites a credential.
func TestUsersAreStoredAsSCRAMCredentials(t *testing.T) {
	sb := startSecureBroker(t)
	dir := sb.dir
	sb.Close()
	path := filepath.Join(dir, usersFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	for _, pw := range []string{adminPassword, gatewayPassword, sinkPassword} {
		if strings.Contains(string(raw), pw) {
			t.Fatalf("%s holds a password", path)
		}
	}
	b := startBroker(t, dir, func(c *Config) {
		c.Listeners = []ListenerConfig{{Name: "SASL", Address: "127.0.0.1:0", Protocol: "SASL_PLAINTEXT"}}
		c.SASL.BootstrapUsers = []BootstrapUser{{Name: "admin", PasswordEnv: "FW_TEST_UNSET_VARIABLE"}}
	})
	addr := b.ListenerAddr("SASL").String()
	if err := ping(newClient(t, addr, kgo.SASL(mechanism(mechScramSHA256, "sink", sinkPassword)))); err != nil {
		t.Fatalf("sink after a restart: %v", err)
	}
	if err := ping(newClient(t, addr, kgo.SASL(mechanism(mechScramSHA512, "admin", adminPassword)))); err != nil {
		t.Fatalf("admin after a restart with a bootstrap entry whose password is unset: %v", err)
	}
}

func TestListenerConfigErrors(t *testing.T) {
	good := ListenerTLS{CertFile: "c.pem", KeyFile: "k.pem"}
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"protocol", func(c *Config) { c.Listeners = []ListenerConfig{{Address: ":0", Protocol: "TLS"}} }, "listeners[0].protocol"},
		{"address", func(c *Config) { c.Listeners = []ListenerConfig{{Address: "nope"}} }, "listeners[0].address"},
		{"duplicate", func(c *Config) { c.Listeners = []ListenerConfig{{Address: ":0"}, {Address: ":1"}} }, `listeners[1].name: "PLAINTEXT" is used by two`},
		{"name", func(c *Config) { c.Listeners = []ListenerConfig{{Name: "low", Address: ":0"}} }, "listeners[0].name"},
		{"tls missing", func(c *Config) { c.Listeners = []ListenerConfig{{Address: ":0", Protocol: "SSL"}} }, "cert_file and key_file are required"},
		{"tls on plaintext", func(c *Config) { c.Listeners = []ListenerConfig{{Address: ":0", TLS: good}} }, "only an SSL or SASL_SSL listener takes tls"},
		{"mechanism", func(c *Config) {
			c.Listeners = []ListenerConfig{{Address: ":0", Protocol: "SASL_PLAINTEXT", SASLMechanisms: []string{"GSSAPI"}}}
		}, `"GSSAPI" must be PLAIN`},
		{"mechanisms on plaintext", func(c *Config) { c.Listeners = []ListenerConfig{{Address: ":0", SASLMechanisms: []string{"PLAIN"}}} }, "only a SASL_PLAINTEXT or SASL_SSL listener"},
		{"client auth", func(c *Config) {
			tls := good
			tls.ClientAuth = "always"
			c.Listeners = []ListenerConfig{{Address: ":0", Protocol: "SSL", TLS: tls}}
		}, "client_auth"},
		{"client ca", func(c *Config) {
			tls := good
			tls.ClientAuth = "required"
			c.Listeners = []ListenerConfig{{Address: ":0", Protocol: "SSL", TLS: tls}}
		}, "client_ca_file: required"},
		{"rules", func(c *Config) {
			tls := good
			tls.PrincipalMappingRules = []string{"RULE:nope"}
			c.Listeners = []ListenerConfig{{Address: ":0", Protocol: "SSL", TLS: tls}}
		}, "principal_mapping_rules"},
		{"advertised_addr with listeners", func(c *Config) { c.AdvertisedAddr = "h:1"; c.Listeners = []ListenerConfig{{Address: ":0"}} }, "advertised_addr"},
		{"bootstrap password", func(c *Config) { c.SASL.BootstrapUsers = []BootstrapUser{{Name: "a"}} }, "sasl.bootstrap_users[0]: set exactly one"},
		{"bootstrap mechanism", func(c *Config) {
			c.SASL.BootstrapUsers = []BootstrapUser{{Name: "a", PasswordEnv: "X", Mechanisms: []string{"PLAIN"}}}
		}, "sasl.bootstrap_users[0].mechanisms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.DataDir = t.TempDir()
			tc.set(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSCRAMFailureLogsNoToken: a SCRAM message the broker cannot parse is
// logged as malformed, never quoted: a client that sends its PLAIN token
// (user and password) on a SCRAM mechanism, or a broken client-final
// message, must not put the password in the broker's log.
func TestSCRAMFailureLogsNoToken(t *testing.T) {
	logs := &logSink{}
	sb := startSecureBroker(t, func(c *Config) { c.Logger = logs.logger() })
	addr := sb.addr("SASL_PLAIN")
	secret := "p4ss,with,commas," + adminPassword
	t.Run("client-first", func(t *testing.T) {
		c := dialRaw(t, addr)
		err := scramExchange(t, c, func(string) string { return "\x00admin\x00" + secret }, nil)
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("a PLAIN token on SCRAM-SHA-512: %v, want SASL_AUTHENTICATION_FAILED", err)
		}
	})
	t.Run("client-final", func(t *testing.T) {
		c := dialRaw(t, addr)
		err := scramExchange(t, c, func(string) string { return "n,,n=admin,r=abcdefgh" }, func(server string) string {
			nonce, _, _ := strings.Cut(strings.TrimPrefix(server, "r="), ",")
			return "c=biws,r=" + nonce + "," + adminPassword
		})
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("a client-final without a proof: %v, want SASL_AUTHENTICATION_FAILED", err)
		}
	})
	if len(logs.lines("authentication failed", "malformed")) < 2 {
		t.Fatalf("the failures are not logged as malformed messages: %q", logs.lines("authentication failed"))
	}
	for _, s := range []string{"p4ss", adminPassword} {
		if l := logs.lines(s); len(l) > 0 {
			t.Fatalf("the client's token is logged: %s", l[0])
		}
	}
}

// TestRawSASLTokenHeldInRequestBudget: a SASL token in a bare frame (after
// a v0 handshake) is read, as any request, only once its announced size is
// granted from queued_max_request_bytes, so unauthenticated clients
// announcing large tokens cannot hold more memory than that budget.
func TestRawSASLTokenHeldInRequestBudget(t *testing.T) {
	// Two tokens fit, with room left for the handshakes; the third waits.
	const budget, token, clients = 1 << 20, 400 << 10, 3
	sb := startSecureBroker(t, func(c *Config) {
		c.MaxRequestBytes, c.MaxControlRequestBytes, c.QueuedMaxRequestBytes = budget, budget, budget
	})
	for range clients {
		c := dialRaw(t, sb.addr("SASL_PLAIN"))
		if resp := c.roundTrip(handshakeReq(0, mechScramSHA256)).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != 0 {
			t.Fatalf("v0 handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		head := binary.BigEndian.AppendUint32(nil, token)
		if _, err := c.c.Write(append(head, "n,,n=admin"...)); err != nil {
			t.Fatal(err)
		}
	}
	fit := budget / token
	waitFor(t, "the announced tokens to be reserved and the rest to wait", func() bool {
		return gaugeValue(t, sb.metrics.queuedRequest) == float64(fit*token) &&
			limitHits(t, sb.Broker, limitQueuedRequestBytes) == clients-float64(fit)
	})
}

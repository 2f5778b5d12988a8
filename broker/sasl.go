package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/xdg-go/scram"

	"github.com/factorywire/factorywire/internal/secret"
)

// SASLConfig configures authentication on the SASL listeners.
type SASLConfig struct {
	// FailedAuthenticationDelay delays the answer to a failed
	// authentication, after which the connection is closed, so that
	// guessing passwords is slow (Kafka's
	// connection.failed.authentication.delay.ms). Default 100ms.
	FailedAuthenticationDelay time.Duration `yaml:"failed_authentication_delay"`
	// BootstrapUsers are created at start if they have no credential
	// yet, as Kafka's `kafka-storage format --add-scram`: the way to the
	// first administrator, who then manages users with `broker users`
	// or AlterUserScramCredentials. An existing credential is never
	// changed from here.
	BootstrapUsers []BootstrapUser `yaml:"bootstrap_users"`
}

// BootstrapUser is a user created at start if absent.
type BootstrapUser struct {
	// Name is the user (principal User:<name>). Required.
	Name string `yaml:"name"`
	// Mechanisms are the SCRAM mechanisms to create credentials for.
	// Default both, SCRAM-SHA-256 and SCRAM-SHA-512.
	Mechanisms []string `yaml:"mechanisms"`
	// PasswordFile or PasswordEnv names where the password is: a file
	// (trailing line breaks dropped) or an environment variable. Exactly
	// one, unless Password is set.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// Password is the password itself, for programs that have it (the
	// demo, tests). Never in a config file.
	Password secret.Secret `yaml:"-"`
}

// saslMaxReceive bounds a request on a SASL listener before the client has
// authenticated (Kafka's sasl.server.max.receive.size), so an
// unauthenticated client cannot make the broker read large requests.
const saslMaxReceive = 512 << 10

func (s SASLConfig) validate() error {
	if s.FailedAuthenticationDelay < 0 || s.FailedAuthenticationDelay > time.Minute {
		return fmt.Errorf("sasl.failed_authentication_delay: %v must be within [0, 1m]", s.FailedAuthenticationDelay)
	}
	seen := map[string]bool{}
	for i, u := range s.BootstrapUsers {
		at := fmt.Sprintf("sasl.bootstrap_users[%d]", i)
		if u.Name == "" {
			return fmt.Errorf("%s.name: required", at)
		}
		if seen[u.Name] {
			return fmt.Errorf("%s.name: %q is listed twice", at, u.Name)
		}
		seen[u.Name] = true
		for _, m := range u.Mechanisms {
			if scramHash(m) == nil {
				return fmt.Errorf("%s.mechanisms: %q must be SCRAM-SHA-256 or SCRAM-SHA-512", at, m)
			}
		}
		n := 0
		for _, set := range []bool{u.PasswordFile != "", u.PasswordEnv != "", !u.Password.IsZero()} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: set exactly one of password_file and password_env", at)
		}
	}
	return nil
}

// password reads the bootstrap user's password.
func (u BootstrapUser) password() (secret.Secret, error) {
	switch {
	case !u.Password.IsZero():
		return u.Password, nil
	case u.PasswordFile != "":
		return secret.FromFile(u.PasswordFile)
	default:
		return secret.FromEnv(u.PasswordEnv)
	}
}

// bootstrapUsers creates the configured bootstrap users that have no
// credential for a mechanism yet.
func (b *Broker) bootstrapUsers() error {
	var changes []credChange
	for _, u := range b.cfg.SASL.BootstrapUsers {
		mechs := u.Mechanisms
		if len(mechs) == 0 {
			mechs = []string{mechScramSHA256, mechScramSHA512}
		}
		var pw secret.Secret
		for _, m := range mechs {
			if b.users.has(u.Name, m) {
				continue
			}
			if pw.IsZero() {
				var err error
				if pw, err = u.password(); err != nil {
					return fmt.Errorf("sasl.bootstrap_users %s: %w", u.Name, err)
				}
			}
			salt, salted := newSalted(m, pw.Reveal(), minScramIterations)
			changes = append(changes, credChange{user: u.Name, mech: m, iterations: minScramIterations, salt: salt, salted: salted})
			b.log.Info("bootstrap user created", "user", u.Name, "mechanism", m)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	return b.users.apply(changes)
}

// saslSession is a connection's progress through SASL authentication:
// SaslHandshake chooses the mechanism, SaslAuthenticate (or, after a v0
// handshake, raw frames) carries the exchange.
type saslSession struct {
	mech  string // chosen by SaslHandshake; "" before
	raw   bool   // a v0 handshake: the tokens come in raw frames
	scram *scram.ServerConversation
	done  bool // authenticated
	// failed is set once an authentication failed: the connection is
	// closed after the (delayed) answer.
	failed bool
}

// Errors that close a connection on a SASL listener.
var (
	errUnauthenticated = errors.New("request before SASL authentication")
	errAuthFailed      = errors.New("SASL authentication failed")
)

// authFailedMessage is what a client is told whatever the reason its
// credentials were refused (an unknown user, a wrong password), as Kafka
// does, so the answer does not reveal which users exist.
func authFailedMessage(mech string) string {
	return "Authentication failed during authentication due to invalid credentials with SASL mechanism " + mech
}

// gate checks that a request may be handled on this connection before it is
// decoded: on a SASL listener, an unauthenticated client may send only
// ApiVersions and SaslHandshake, then SaslAuthenticate, as Kafka's
// SaslServerAuthenticator allows. Anything else closes the connection.
func (c *conn) gate(key int16) error {
	if !c.lis.sasl() {
		return nil
	}
	s := &c.auth
	switch {
	case s.done && (key == int16(kmsg.SASLHandshake) || key == int16(kmsg.SASLAuthenticate)):
		// Re-authentication (KIP-368) is not offered: SaslAuthenticate
		// answers a session lifetime of 0.
		return fmt.Errorf("%w: %s after authentication (re-authentication is not enabled)", errUnauthenticated, kmsg.NameForKey(key))
	case s.done:
		return nil
	case s.mech == "" && (key == int16(kmsg.ApiVersions) || key == int16(kmsg.SASLHandshake)):
		return nil
	case s.mech != "" && !s.raw && key == int16(kmsg.SASLAuthenticate):
		return nil
	}
	return fmt.Errorf("%w: %s not allowed at this stage on SASL listener %s", errUnauthenticated, kmsg.NameForKey(key), c.lis.name)
}

// authenticate runs one step of the exchange with a client token. It
// returns the token to answer with; done once the client is authenticated.
// A failure error is what the client is told (it never says whether the
// user exists); the connection is then closed.
func (c *conn) authenticate(token []byte) (answer []byte, err error) {
	s := &c.auth
	switch s.mech {
	case mechPlain:
		user, err := c.checkPlain(token)
		if err != nil {
			return nil, c.authFailure(user, err)
		}
		c.authenticated(user)
		return nil, nil
	case mechScramSHA256, mechScramSHA512:
		step := "client-final"
		if s.scram == nil {
			s.scram = c.b.scramServer(s.mech).NewConversation()
			step = "client-first"
		}
		out, err := s.scram.Step(string(token))
		if err != nil {
			return nil, c.authFailure(scramUser(s.scram), scramCause(step, err))
		}
		if !s.scram.Done() {
			return []byte(out), nil
		}
		if !s.scram.Valid() {
			return nil, c.authFailure(scramUser(s.scram), errors.New("SCRAM: proof invalid"))
		}
		user := scramUser(s.scram)
		if z, _ := decodeSaslName(s.scram.AuthzID()); z != "" && z != user {
			return nil, c.authFailure(user, errors.New("SCRAM: the authorization id differs from the user name"))
		}
		c.authenticated(user)
		return []byte(out), nil
	}
	return nil, c.authFailure("", errors.New("no mechanism chosen"))
}

// scramCause is what the log says of a failed SCRAM step. The library's
// parse errors quote the client's message, which may hold a password (a
// PLAIN token sent on a SCRAM mechanism) or a proof, so only its messages
// known to quote nothing are kept; anything else is a malformed message.
func scramCause(step string, err error) error {
	switch msg := err.Error(); msg {
	case "challenge proof invalid", "nonce received did not match nonce sent", "SCRAM message extensions are not supported":
		return fmt.Errorf("SCRAM %s: %s", step, msg)
	}
	return fmt.Errorf("SCRAM: malformed %s message", step)
}

// checkPlain checks a SASL/PLAIN token (RFC 4616: authzid NUL authcid NUL
// password) against the user's stored SCRAM credentials.
func (c *conn) checkPlain(token []byte) (user string, err error) {
	parts := bytes.Split(token, []byte{0})
	if len(parts) != 3 {
		return "", errors.New("PLAIN: malformed token (want authzid NUL user NUL password)")
	}
	authz, user, pw := string(parts[0]), string(parts[1]), string(parts[2])
	switch {
	case user == "":
		return "", errors.New("PLAIN: no user name")
	case pw == "":
		return user, errors.New("PLAIN: no password")
	case authz != "" && authz != user:
		return user, errors.New("PLAIN: the authorization id differs from the user name")
	case !c.b.users.checkPassword(user, pw):
		return user, errors.New("PLAIN: unknown user or wrong password")
	}
	return user, nil
}

func (c *conn) authenticated(user string) {
	c.auth.done, c.auth.scram = true, nil
	c.principal = "User:" + user
	c.b.metrics.authentications.WithLabelValues(c.lis.name, c.auth.mech).Inc()
	c.log = c.log.With("principal", c.principal)
	c.log.Info("client authenticated", "listener", c.lis.name, "mechanism", c.auth.mech)
}

// authFailure counts and logs a failed authentication (the cause, the user
// tried; never the token) and returns the error the client is told.
func (c *conn) authFailure(user string, cause error) error {
	c.auth.failed = true
	c.b.metrics.authFailures.WithLabelValues(c.lis.name, c.auth.mech).Inc()
	c.log.Warn("authentication failed; connection closed after failed_authentication_delay",
		"listener", c.lis.name, "mechanism", c.auth.mech, "user", user, "cause", cause)
	return errors.New(authFailedMessage(c.auth.mech))
}

// scramServer returns the SCRAM server of mechanism mech. A user without a
// credential gets a made-up one (see userStore.fake), so the exchange fails
// at the proof as a wrong password does.
func (b *Broker) scramServer(mech string) *scram.Server {
	hash := scram.SHA256
	if mech == mechScramSHA512 {
		hash = scram.SHA512
	}
	srv, _ := hash.NewServer(func(saslName string) (scram.StoredCredentials, error) {
		user, valid := decodeSaslName(saslName)
		c, ok := b.users.lookup(user, mech)
		if !valid || !ok {
			c = b.users.fake(saslName, mech)
		}
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
			StoredKey:  c.StoredKey,
			ServerKey:  c.ServerKey,
		}, nil
	})
	return srv
}

// decodeSaslName decodes a SCRAM user name (RFC 5802 saslname: "=2C" for
// ',' and "=3D" for '='), as Kafka's ScramFormatter does; ok is false for
// any other '=' escape.
func decodeSaslName(s string) (name string, ok bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// scramUser is the user of a SCRAM exchange, decoded (as sent if it does
// not decode: it then never authenticates).
func scramUser(conv *scram.ServerConversation) string {
	if name, ok := decodeSaslName(conv.Username()); ok {
		return name
	}
	return conv.Username()
}

// supportsMechanism reports whether the connection's listener accepts mech.
func (c *conn) supportsMechanism(mech string) bool {
	return slices.Contains(c.lis.mechanisms, mech)
}

// readRawToken reads one SASL token sent after a v0 SaslHandshake (a
// 4-byte length and the token, no request header) and queues the answer
// in the same form. A failed exchange gets no answer (v0 has no way to say
// why): the connection closes after failed_authentication_delay.
func (c *conn) readRawToken(br *bufio.Reader) error {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
		return err
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	if size < 0 || size > saslMaxReceive {
		return fmt.Errorf("%w: SASL token of %d bytes (limit %d)", errRequestSize, size, saslMaxReceive)
	}
	// As a request's body: read only once the broker's request budget
	// grants its size, so that unauthenticated clients cannot hold more
	// than queued_max_request_bytes.
	g, ok := c.b.requestBudget.tryAcquire(int64(size), true)
	if !ok {
		c.b.limits.hit(limitQueuedRequestBytes, "SASL token waits for queued request bytes to be freed; connection not read meanwhile",
			"client", c.nc.RemoteAddr().String(), "bytes", size, "queued_max_request_bytes", c.b.cfg.QueuedMaxRequestBytes)
		var err error
		if g, err = c.b.requestBudget.acquire(c.ctx, int64(size), true); err != nil {
			return err
		}
		c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.RequestReadTimeout))
	}
	defer g.release()
	token, err := c.readBody(br, int(size))
	if err != nil {
		return err
	}
	answer, err := c.authenticate(token)
	r := reply{raw: &answer}
	if err != nil {
		delay := c.b.cfg.SASL.FailedAuthenticationDelay
		r = reply{none: true, finish: func(context.Context) kmsg.Response { time.Sleep(delay); return nil }}
	}
	c.pending <- inflight{key: int16(kmsg.SASLAuthenticate), r: r}
	if c.auth.failed {
		return errAuthFailed
	}
	return nil
}

// handshakeTLS runs the TLS handshake of a connection on a TLS listener,
// within request_read_timeout, and takes the principal from the client's
// certificate on an SSL listener. A failed handshake (a client that does
// not trust the broker, a missing or untrusted client certificate, a
// plaintext client) counts as a failed authentication, mechanism "TLS",
// and closes the connection after failed_authentication_delay.
func (c *conn) handshakeTLS() error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.b.cfg.RequestReadTimeout)
	defer cancel()
	err := tc.HandshakeContext(ctx)
	if err == nil && !c.lis.sasl() {
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			subject := certs[0].Subject.String()
			name, ok := mapPrincipal(c.lis.rules, subject)
			if !ok {
				err = fmt.Errorf("no principal_mapping_rules match the client certificate's subject %q", subject)
			} else {
				c.principal = "User:" + name
				c.log = c.log.With("principal", c.principal)
			}
		}
	}
	if err != nil {
		if c.ctx.Err() != nil {
			return err
		}
		c.b.metrics.authFailures.WithLabelValues(c.lis.name, "TLS").Inc()
		c.log.Warn("TLS handshake failed; connection closed after failed_authentication_delay", "listener", c.lis.name, "err", err)
		time.Sleep(c.b.cfg.SASL.FailedAuthenticationDelay)
		return err
	}
	return nil
}

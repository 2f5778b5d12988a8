package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AuthorizationConfig turns on Kafka's ACL authorization (StandardAuthorizer
// semantics). Every request is then checked against the ACLs with the
// operation Apache Kafka's KafkaApis checks (see docs/OPERATIONS.md, "Access
// control"), for the connection's principal (User:<name> once authenticated,
// User:ANONYMOUS before) and remote IP address. ACLs are managed with
// CreateAcls, DescribeAcls and DeleteAcls (kadm, kafka-acls.sh, `broker
// acls`) and stored in the data dir (acls.json).
type AuthorizationConfig struct {
	// Enabled checks every request against the ACLs, as Kafka with
	// authorizer.class.name set. Default false: every client may do
	// everything, and CreateAcls, DescribeAcls and DeleteAcls answer
	// SECURITY_DISABLED, as Kafka without an authorizer.
	Enabled bool `yaml:"enabled"`
	// SuperUsers may do everything whatever the ACLs (super.users), each
	// a principal "User:<name>". Create the first ACLs as one of them.
	SuperUsers []string `yaml:"super_users"`
	// AllowEveryoneIfNoACLFound allows every action on a resource that has
	// no ACL at all (allow.everyone.if.no.acl.found). Default false: only
	// super users may act on such a resource.
	AllowEveryoneIfNoACLFound bool `yaml:"allow_everyone_if_no_acl_found"`
}

func (a AuthorizationConfig) validate() error {
	if !a.Enabled {
		switch {
		case len(a.SuperUsers) > 0:
			return errors.New("authorization.super_users: set, but authorization.enabled is false, so nothing is checked; set enabled: true or remove super_users")
		case a.AllowEveryoneIfNoACLFound:
			return errors.New("authorization.allow_everyone_if_no_acl_found: set, but authorization.enabled is false, so nothing is checked; set enabled: true or remove it")
		}
	}
	for _, u := range a.SuperUsers {
		name, ok := strings.CutPrefix(u, "User:")
		switch {
		case strings.Contains(u, ";"):
			return fmt.Errorf("authorization.super_users: %q: list one principal per item (YAML list), not separated by ';' as in Kafka's super.users", u)
		case !ok || name == "":
			return fmt.Errorf("authorization.super_users: %q is not a principal of the form User:<name>", u)
		}
	}
	return nil
}

// authorizer decides requests against the ACLs. Decisions read an
// immutable index (lock-free); changes are serialised by mu, written to the
// store, and only then published as a new index, so a decision never sees
// an ACL that a crash could take back, nor one already deleted.
type authorizer struct {
	dir         string
	superUsers  map[string]bool
	allowIfNone bool
	log         *slog.Logger
	failures    *prometheus.CounterVec // principal, api, resource_type
	now         func() time.Time

	mu   sync.Mutex // serialises changes and their writes to the store
	acls atomic.Pointer[aclIndex]

	logMu    sync.Mutex
	logged   map[denialKey]*denialSeen
	prunedAt time.Time
}

// denialLogInterval is the least time between two log lines for denials of
// one principal, operation and resource; maxDenialKeys bounds the denials
// remembered for that.
const (
	denialLogInterval = time.Minute
	maxDenialKeys     = 4096
)

// overflowName stands for every resource name in the denial log once it
// remembers maxDenialKeys denials; it is no valid name.
const overflowName = "\x00"

type denialKey struct {
	principal string
	op        kmsg.ACLOperation
	typ       kmsg.ACLResourceType
	name      string
}

type denialSeen struct {
	at      time.Time
	skipped int
}

// openAuthorizer loads the ACL store when authorization is enabled.
func (b *Broker) openAuthorizer() error {
	cfg := b.cfg.Authorization
	if !cfg.Enabled {
		return nil
	}
	acls, err := loadACLs(b.cfg.DataDir)
	if err != nil {
		return err
	}
	a := &authorizer{
		dir: b.cfg.DataDir, superUsers: map[string]bool{}, allowIfNone: cfg.AllowEveryoneIfNoACLFound,
		log: b.log, failures: b.metrics.authorizationFailures, now: time.Now, logged: map[denialKey]*denialSeen{},
	}
	for _, u := range cfg.SuperUsers {
		a.superUsers[u] = true
	}
	a.acls.Store(newACLIndex(acls))
	b.authz = a
	b.log.Info("authorization enabled", "acls", len(acls), "super_users", cfg.SuperUsers,
		"allow_everyone_if_no_acl_found", cfg.AllowEveryoneIfNoACLFound)
	return nil
}

// allows decides one action: super users may do everything; otherwise the
// ACLs of the resource decide (aclIndex.decide), and a resource without any
// ACL is allowed only with allow_everyone_if_no_acl_found.
func (a *authorizer) allows(principal, host string, op kmsg.ACLOperation, typ kmsg.ACLResourceType, name string) bool {
	if a.superUsers[principal] {
		return true
	}
	switch a.acls.Load().decide(principal, canonicalHost(host), op, typ, name) {
	case allowed:
		return true
	case noACLs:
		return a.allowIfNone
	}
	return false
}

// allowsAnyOfType is Kafka's Authorizer.authorizeByResourceType.
func (a *authorizer) allowsAnyOfType(principal, host string, op kmsg.ACLOperation, typ kmsg.ACLResourceType) bool {
	// As Kafka, a made-up name first: super users, and resources
	// without ACLs under allow_everyone_if_no_acl_found.
	if a.allows(principal, host, op, typ, "hardcode") {
		return true
	}
	return a.acls.Load().allowsAnyOfType(principal, canonicalHost(host), op, typ)
}

// denied counts a denial and logs it, at most once per denialLogInterval
// for one principal, operation and resource, with the number not logged
// since, as Kafka's authorizer log line:
// "Principal = User:x is Denied operation = WRITE from host = ... on
// resource = Topic:LITERAL:t for request = Produce".
func (a *authorizer) denied(principal, host, api string, op kmsg.ACLOperation, typ kmsg.ACLResourceType, name string) {
	a.failures.WithLabelValues(principal, api, strings.ToLower(enumName(resourceTypeNames, typ))).Inc()
	k := denialKey{principal, op, typ, name}
	a.logMu.Lock()
	now := a.now()
	s := a.logged[k]
	if s == nil && len(a.logged) >= maxDenialKeys && now.Sub(a.prunedAt) >= denialLogInterval/4 {
		// Forget the denials whose interval is over (their unlogged
		// count is in the metric), at most four times an interval.
		a.prunedAt = now
		for k, s := range a.logged {
			if now.Sub(s.at) >= denialLogInterval {
				delete(a.logged, k)
			}
		}
	}
	if s == nil && len(a.logged) >= maxDenialKeys {
		if len(a.logged) >= maxDenialKeys {
			// Refusals of too many resources within an interval
			// (a client probing names): one line per principal,
			// operation and resource type.
			k.name = overflowName
			s = a.logged[k]
		}
	}
	if s != nil && now.Sub(s.at) < denialLogInterval {
		s.skipped++
		a.logMu.Unlock()
		return
	}
	skipped := 0
	if s != nil {
		skipped = s.skipped
	}
	a.logged[k] = &denialSeen{at: now}
	a.logMu.Unlock()
	attrs := []any{"principal", principal, "host", host, "operation", enumName(operationNames, op),
		"resource", resourceString(typ, name), "api", api}
	if skipped > 0 {
		attrs = append(attrs, "denials_not_logged", skipped)
	}
	a.log.Info("authorization failed: request denied by the ACLs", attrs...)
}

// resourceString writes a resource as Kafka's authorizer log does:
// Topic:LITERAL:plant-a.press.
func resourceString(typ kmsg.ACLResourceType, name string) string {
	return resourceTypeLogNames[typ] + ":LITERAL:" + name
}

// createACLs adds acls (valid) and stores them; an ACL that exists is not
// added twice.
func (a *authorizer) createACLs(acls []aclEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.acls.Load().acls
	next := sortACLs(append(append(make([]aclEntry, 0, len(cur)+len(acls)), cur...), acls...))
	if len(next) == len(cur) {
		return nil
	}
	if err := saveACLs(a.dir, next); err != nil {
		return err
	}
	a.acls.Store(newACLIndex(next))
	return nil
}

// deleteACLs removes the ACLs each filter matches and stores the rest. It
// returns the ACLs each filter matched (one ACL may be matched by several).
func (a *authorizer) deleteACLs(filters []aclFilter) ([][]aclEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.acls.Load().acls
	matched := make([][]aclEntry, len(filters))
	gone := make([]bool, len(cur))
	removed := 0
	for i, f := range filters {
		for j, e := range cur {
			if f.matches(e) {
				matched[i] = append(matched[i], e)
				if !gone[j] {
					gone[j] = true
					removed++
				}
			}
		}
	}
	if removed == 0 {
		return matched, nil
	}
	next := make([]aclEntry, 0, len(cur)-removed)
	for j, e := range cur {
		if !gone[j] {
			next = append(next, e)
		}
	}
	if err := saveACLs(a.dir, next); err != nil {
		return nil, err
	}
	a.acls.Store(newACLIndex(next))
	return matched, nil
}

// describeACLs returns the ACLs f matches, sorted.
func (a *authorizer) describeACLs(f aclFilter) []aclEntry {
	var out []aclEntry
	for _, e := range a.acls.Load().acls {
		if f.matches(e) {
			out = append(out, e)
		}
	}
	return out
}

// The checks handlers make. Each takes the request's key, for the log line
// and the metric of a denial.

// authorize reports whether c's principal, from c's address, may perform
// op on the resource typ:name; always true when authorization is disabled.
// A denial is counted (factorywire_broker_authorization_failures_total)
// and logged: use it where Kafka's KafkaApis logs a denial, and permits
// where a denial only leaves something out of a response. Handlers call it
// on the connection's reader goroutine (c.principal is read there).
func (b *Broker) authorize(c *conn, key int16, op kmsg.ACLOperation, typ kmsg.ACLResourceType, name string) bool {
	a := b.authz
	if a == nil || a.allows(c.principal, c.ip, op, typ, name) {
		return true
	}
	a.denied(c.principal, c.ip, kmsg.NameForKey(key), op, typ, name)
	return false
}

// authorizeCluster is authorize on the cluster resource (kafka-cluster):
// DescribeUserScramCredentials and DescribeLogDirs need DESCRIBE,
// AlterUserScramCredentials ALTER, and are answered
// CLUSTER_AUTHORIZATION_FAILED otherwise.
func (b *Broker) authorizeCluster(c *conn, key int16, op kmsg.ACLOperation) bool {
	return b.authorize(c, key, op, kmsg.ACLResourceTypeCluster, clusterResourceName)
}

// permits is authorize without counting or logging a denial (Kafka's
// logIfDenied=false).
func (b *Broker) permits(c *conn, op kmsg.ACLOperation, typ kmsg.ACLResourceType, name string) bool {
	return b.authz == nil || b.authz.allows(c.principal, c.ip, op, typ, name)
}

// permitsAnyOfType reports whether c may perform op on some resource of
// type typ (Kafka's authorizeByResourceType, KIP-679), without counting or
// logging a denial.
func (b *Broker) permitsAnyOfType(c *conn, op kmsg.ACLOperation, typ kmsg.ACLResourceType) bool {
	return b.authz == nil || b.authz.allowsAnyOfType(c.principal, c.ip, op, typ)
}

// refused counts and logs a denial that permits or permitsAnyOfType
// found, when the request fails for it.
func (b *Broker) refused(c *conn, key int16, op kmsg.ACLOperation, typ kmsg.ACLResourceType, name string) {
	if b.authz != nil {
		b.authz.denied(c.principal, c.ip, kmsg.NameForKey(key), op, typ, name)
	}
}

// authorizedOperations is the authorized-operations bit field of a
// resource (bit n set when operation code n is allowed), over the
// operations Kafka supports for its type; all of them when authorization
// is disabled, as Kafka without an authorizer.
func (b *Broker) authorizedOperations(c *conn, typ kmsg.ACLResourceType, name string) int32 {
	var bits int32
	for _, op := range supportedOperations[typ] {
		if b.permits(c, op, typ, name) {
			bits |= 1 << op
		}
	}
	return bits
}

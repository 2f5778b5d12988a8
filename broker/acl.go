package broker

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The ACL model is Kafka's (KIP-11, KIP-290): an ACL binds a resource
// pattern (resource type, name, LITERAL or PREFIXED) to an entry (principal,
// host, operation, ALLOW or DENY). aclIndex answers authorization questions
// from an immutable set of ACLs as Apache Kafka's StandardAuthorizer does;
// the authorizer (authz.go) swaps in a new index when the ACLs change.

const (
	// clusterResourceName is the only name of the cluster resource.
	clusterResourceName = "kafka-cluster"
	// aclWildcard is the LITERAL resource name, and the host, that match
	// any resource name and any host.
	aclWildcard = "*"
	// wildcardPrincipal matches every principal.
	wildcardPrincipal = "User:*"
	// opTwoPhaseCommit is Kafka 4's TWO_PHASE_COMMIT operation (KIP-939),
	// which kmsg v1.15 does not name yet.
	opTwoPhaseCommit kmsg.ACLOperation = 15
)

// Names as Kafka writes them: enum names in requests, files and kafka-acls
// output; resourceTypeLogNames as its authorizer log writes resources
// (SecurityUtils.resourceTypeName).
var (
	resourceTypeNames = map[kmsg.ACLResourceType]string{
		kmsg.ACLResourceTypeAny: "ANY", kmsg.ACLResourceTypeTopic: "TOPIC", kmsg.ACLResourceTypeGroup: "GROUP",
		kmsg.ACLResourceTypeCluster: "CLUSTER", kmsg.ACLResourceTypeTransactionalId: "TRANSACTIONAL_ID",
		kmsg.ACLResourceTypeDelegationToken: "DELEGATION_TOKEN", kmsg.ACLResourceTypeUser: "USER",
	}
	resourceTypeLogNames = map[kmsg.ACLResourceType]string{
		kmsg.ACLResourceTypeTopic: "Topic", kmsg.ACLResourceTypeGroup: "Group", kmsg.ACLResourceTypeCluster: "Cluster",
		kmsg.ACLResourceTypeTransactionalId: "TransactionalId", kmsg.ACLResourceTypeDelegationToken: "DelegationToken",
		kmsg.ACLResourceTypeUser: "User",
	}
	patternTypeNames = map[kmsg.ACLResourcePatternType]string{
		kmsg.ACLResourcePatternTypeAny: "ANY", kmsg.ACLResourcePatternTypeMatch: "MATCH",
		kmsg.ACLResourcePatternTypeLiteral: "LITERAL", kmsg.ACLResourcePatternTypePrefixed: "PREFIXED",
	}
	operationNames = map[kmsg.ACLOperation]string{
		kmsg.ACLOperationAny: "ANY", kmsg.ACLOperationAll: "ALL", kmsg.ACLOperationRead: "READ",
		kmsg.ACLOperationWrite: "WRITE", kmsg.ACLOperationCreate: "CREATE", kmsg.ACLOperationDelete: "DELETE",
		kmsg.ACLOperationAlter: "ALTER", kmsg.ACLOperationDescribe: "DESCRIBE",
		kmsg.ACLOperationClusterAction: "CLUSTER_ACTION", kmsg.ACLOperationDescribeConfigs: "DESCRIBE_CONFIGS",
		kmsg.ACLOperationAlterConfigs: "ALTER_CONFIGS", kmsg.ACLOperationIdempotentWrite: "IDEMPOTENT_WRITE",
		kmsg.ACLOperationCreateTokens: "CREATE_TOKENS", kmsg.ACLOperationDescribeTokens: "DESCRIBE_TOKENS",
		opTwoPhaseCommit: "TWO_PHASE_COMMIT",
	}
	permissionNames = map[kmsg.ACLPermissionType]string{
		kmsg.ACLPermissionTypeAny: "ANY", kmsg.ACLPermissionTypeDeny: "DENY", kmsg.ACLPermissionTypeAllow: "ALLOW",
	}
)

func enumName[T comparable](names map[T]string, v T) string {
	if n, ok := names[v]; ok {
		return n
	}
	return "UNKNOWN"
}

func enumParse[T comparable](names map[T]string, what, s string) (T, error) {
	for v, n := range names {
		if n == s {
			return v, nil
		}
	}
	var zero T
	return zero, fmt.Errorf("unknown %s %q", what, s)
}

// supportedOperations are the operations Kafka reports in authorized
// operations fields for each resource type (AclEntry.supportedOperations,
// Kafka 4.1).
var supportedOperations = map[kmsg.ACLResourceType][]kmsg.ACLOperation{
	kmsg.ACLResourceTypeTopic: {kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationCreate, kmsg.ACLOperationDescribe,
		kmsg.ACLOperationDelete, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs},
	kmsg.ACLResourceTypeGroup: {kmsg.ACLOperationRead, kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete,
		kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs},
	kmsg.ACLResourceTypeCluster: {kmsg.ACLOperationCreate, kmsg.ACLOperationClusterAction, kmsg.ACLOperationDescribeConfigs,
		kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationIdempotentWrite, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe},
}

// aclEntry is one ACL, Kafka's AclBinding.
type aclEntry struct {
	ResourceType kmsg.ACLResourceType
	Name         string
	Pattern      kmsg.ACLResourcePatternType
	Principal    string
	Host         string
	Operation    kmsg.ACLOperation
	Permission   kmsg.ACLPermissionType
}

// String writes the ACL as Kafka's AclBinding prints it, shortened.
func (e aclEntry) String() string {
	return fmt.Sprintf("(%s:%s:%s, principal=%s, host=%s, operation=%s, permission=%s)",
		enumName(resourceTypeNames, e.ResourceType), enumName(patternTypeNames, e.Pattern), e.Name,
		e.Principal, e.Host, enumName(operationNames, e.Operation), enumName(permissionNames, e.Permission))
}

// compare orders ACLs by resource, then principal, host, operation and
// permission: the order of the store file and of DescribeAcls.
func (e aclEntry) compare(o aclEntry) int {
	if c := int(e.ResourceType) - int(o.ResourceType); c != 0 {
		return c
	}
	if c := strings.Compare(e.Name, o.Name); c != 0 {
		return c
	}
	if c := int(e.Pattern) - int(o.Pattern); c != 0 {
		return c
	}
	if c := strings.Compare(e.Principal, o.Principal); c != 0 {
		return c
	}
	if c := strings.Compare(e.Host, o.Host); c != 0 {
		return c
	}
	if c := int(e.Operation) - int(o.Operation); c != 0 {
		return c
	}
	return int(e.Permission) - int(o.Permission)
}

// validateNewACL checks an ACL to be created as Kafka does (AclApis and
// AclControlManager.validateNewAcl), returning the message of an
// INVALID_REQUEST, or "" when the ACL is valid. Deviation: the host must
// be * or an IP address; Kafka stores any string, and one that is not an
// address never matches a client.
func validateNewACL(e aclEntry) string {
	switch {
	case e.ResourceType < kmsg.ACLResourceTypeAny || e.ResourceType > kmsg.ACLResourceTypeUser ||
		e.Pattern < kmsg.ACLResourcePatternTypeAny || e.Pattern > kmsg.ACLResourcePatternTypePrefixed ||
		e.Operation < kmsg.ACLOperationAny || e.Operation > opTwoPhaseCommit ||
		e.Permission < kmsg.ACLPermissionTypeAny || e.Permission > kmsg.ACLPermissionTypeAllow:
		return fmt.Sprintf("Invalid ACL creation: %s contains UNKNOWN elements", e)
	case e.ResourceType == kmsg.ACLResourceTypeCluster && e.Name != clusterResourceName:
		return "The only valid name for the CLUSTER resource is " + clusterResourceName
	case e.Name == "":
		return "Invalid empty resource name"
	case e.ResourceType == kmsg.ACLResourceTypeAny:
		return "Invalid resourceType ANY"
	case e.Pattern != kmsg.ACLResourcePatternTypeLiteral && e.Pattern != kmsg.ACLResourcePatternTypePrefixed:
		return "Invalid patternType " + enumName(patternTypeNames, e.Pattern)
	case e.Operation == kmsg.ACLOperationAny:
		return "Invalid operation ANY"
	case e.Permission == kmsg.ACLPermissionTypeAny:
		return "Invalid permissionType ANY"
	}
	if typ, name, ok := strings.Cut(e.Principal, ":"); !ok || typ == "" || name == "" {
		return fmt.Sprintf("Could not parse principal from `%s` (expected principalType:principalName, as User:alice)", e.Principal)
	}
	if e.Host != aclWildcard {
		if _, err := netip.ParseAddr(e.Host); err != nil {
			return fmt.Sprintf("Invalid host %q: the host of an ACL is * or an IP address", e.Host)
		}
	}
	return ""
}

// aclFilter selects ACLs, as Kafka's AclBindingFilter: a nil string and the
// ANY values match everything; pattern type MATCH matches the ACLs that
// apply to the named resource (a LITERAL ACL of that name or "*", a
// PREFIXED ACL whose name is a prefix of it).
type aclFilter struct {
	ResourceType kmsg.ACLResourceType
	Name         *string
	Pattern      kmsg.ACLResourcePatternType
	Principal    *string
	Host         *string
	Operation    kmsg.ACLOperation
	Permission   kmsg.ACLPermissionType
}

// unknown reports whether the filter has an element Kafka reads as UNKNOWN
// (a code it does not know), which it refuses with INVALID_REQUEST.
func (f aclFilter) unknown() bool {
	return f.ResourceType < kmsg.ACLResourceTypeAny || f.ResourceType > kmsg.ACLResourceTypeUser ||
		f.Pattern < kmsg.ACLResourcePatternTypeAny || f.Pattern > kmsg.ACLResourcePatternTypePrefixed ||
		f.Operation < kmsg.ACLOperationAny || f.Operation > opTwoPhaseCommit ||
		f.Permission < kmsg.ACLPermissionTypeAny || f.Permission > kmsg.ACLPermissionTypeAllow
}

// matches is Kafka's AclBindingFilter.matches.
func (f aclFilter) matches(e aclEntry) bool {
	if f.ResourceType != kmsg.ACLResourceTypeAny && f.ResourceType != e.ResourceType {
		return false
	}
	anyPattern := f.Pattern == kmsg.ACLResourcePatternTypeAny
	if !anyPattern && f.Pattern != kmsg.ACLResourcePatternTypeMatch && f.Pattern != e.Pattern {
		return false
	}
	if f.Name != nil {
		switch {
		case anyPattern || f.Pattern == e.Pattern:
			if *f.Name != e.Name {
				return false
			}
		case e.Pattern == kmsg.ACLResourcePatternTypeLiteral:
			if *f.Name != e.Name && e.Name != aclWildcard {
				return false
			}
		case e.Pattern == kmsg.ACLResourcePatternTypePrefixed:
			if !strings.HasPrefix(*f.Name, e.Name) {
				return false
			}
		default:
			return false
		}
	}
	switch {
	case f.Principal != nil && *f.Principal != e.Principal,
		f.Host != nil && *f.Host != e.Host,
		f.Operation != kmsg.ACLOperationAny && f.Operation != e.Operation,
		f.Permission != kmsg.ACLPermissionTypeAny && f.Permission != e.Permission:
		return false
	}
	return true
}

// aclRule is an ACL as the index matches it: the host in canonical form,
// so that ::ffff:10.0.0.1 and 10.0.0.1 are one address.
type aclRule struct {
	entry *aclEntry
	host  string
}

// aclIndex is an immutable set of ACLs indexed for authorization: per
// resource type, LITERAL ACLs by name and PREFIXED ACLs by prefix, with the
// distinct prefix lengths, so that a decision costs a few map lookups
// whatever the number of ACLs.
type aclIndex struct {
	acls  []aclEntry // sorted by compare, no duplicates
	types map[kmsg.ACLResourceType]*typeIndex
}

type typeIndex struct {
	literal    map[string][]aclRule
	prefixed   map[string][]aclRule
	prefixLens []int // ascending
}

// newACLIndex indexes acls, which must be sorted and free of duplicates.
func newACLIndex(acls []aclEntry) *aclIndex {
	x := &aclIndex{acls: acls, types: map[kmsg.ACLResourceType]*typeIndex{}}
	for i := range acls {
		e := &acls[i]
		t := x.types[e.ResourceType]
		if t == nil {
			t = &typeIndex{literal: map[string][]aclRule{}, prefixed: map[string][]aclRule{}}
			x.types[e.ResourceType] = t
		}
		r := aclRule{entry: e, host: canonicalHost(e.Host)}
		if e.Pattern == kmsg.ACLResourcePatternTypePrefixed {
			if len(t.prefixed[e.Name]) == 0 && !slices.Contains(t.prefixLens, len(e.Name)) {
				t.prefixLens = append(t.prefixLens, len(e.Name))
			}
			t.prefixed[e.Name] = append(t.prefixed[e.Name], r)
		} else {
			t.literal[e.Name] = append(t.literal[e.Name], r)
		}
	}
	for _, t := range x.types {
		slices.Sort(t.prefixLens)
	}
	return x
}

// canonicalHost is an IP address in Go's canonical form (an IPv4-mapped
// IPv6 address as IPv4), or the string itself if it is not an address. A
// dotted IPv4 address is returned as it is (without parsing: it is called
// on every decision): the only form netip accepts is the canonical one.
func canonicalHost(h string) string {
	if !strings.Contains(h, ":") {
		return h
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return h
}

// implies reports whether an ALLOW ACL for granted also allows op: ALL
// allows everything, READ, WRITE, DELETE and ALTER imply DESCRIBE, and
// ALTER_CONFIGS implies DESCRIBE_CONFIGS (StandardAuthorizerData.findResult).
func implies(granted, op kmsg.ACLOperation) bool {
	switch {
	case granted == op, granted == kmsg.ACLOperationAll:
		return true
	case op == kmsg.ACLOperationDescribe:
		return granted == kmsg.ACLOperationRead || granted == kmsg.ACLOperationWrite ||
			granted == kmsg.ACLOperationDelete || granted == kmsg.ACLOperationAlter
	case op == kmsg.ACLOperationDescribeConfigs:
		return granted == kmsg.ACLOperationAlterConfigs
	}
	return false
}

// decision is what the ACLs of a resource say about one action.
type decision int8

const (
	noACLs  decision = iota // the resource has no ACL at all
	denied                  // a DENY matched, or ACLs exist and no ALLOW matched
	allowed                 // an ALLOW matched and no DENY
)

// decide applies the ACLs of resource typ:name to principal (from host)
// performing op, as StandardAuthorizerData.findAclRule: every ACL whose
// pattern matches the name (LITERAL of that name or "*", PREFIXED with a
// prefix of it) is considered; one matching the principal (or User:*), the
// host (or *) and the operation (DENY: the operation or ALL; ALLOW: also an
// operation implying it) decides, DENY first.
func (x *aclIndex) decide(principal, host string, op kmsg.ACLOperation, typ kmsg.ACLResourceType, name string) decision {
	t := x.types[typ]
	if t == nil {
		return noACLs
	}
	d := noACLs
	// check applies rules and reports whether a DENY matched.
	check := func(rules []aclRule) bool {
		for _, r := range rules {
			if d == noACLs {
				d = denied
			}
			e := r.entry
			if e.Principal != principal && e.Principal != wildcardPrincipal || r.host != host && e.Host != aclWildcard {
				continue
			}
			if e.Permission == kmsg.ACLPermissionTypeDeny {
				if e.Operation == op || e.Operation == kmsg.ACLOperationAll {
					return true
				}
			} else if implies(e.Operation, op) {
				d = allowed
			}
		}
		return false
	}
	if check(t.literal[name]) {
		return denied
	}
	if name != aclWildcard && check(t.literal[aclWildcard]) {
		return denied
	}
	for _, n := range t.prefixLens {
		if n > len(name) {
			break
		}
		if check(t.prefixed[name[:n]]) {
			return denied
		}
	}
	return d
}

// allowsAnyOfType answers Kafka's authorizeByResourceType (KIP-679) for
// principal from host: whether some resource of type typ allows op, by an
// ALLOW ACL for op or ALL (no implied operations) that no DENY covers (a
// LITERAL DENY of the same name, or a PREFIXED DENY of a prefix of the
// allowed name); a LITERAL "*" DENY refuses all, a LITERAL "*" ALLOW
// allows. The caller first asks about a made-up resource name, as Kafka
// does, for super users and resources without ACLs.
func (x *aclIndex) allowsAnyOfType(principal, host string, op kmsg.ACLOperation, typ kmsg.ACLResourceType) bool {
	t := x.types[typ]
	if t == nil {
		return false
	}
	denyLiteral, denyPrefixed := map[string]bool{}, map[string]bool{}
	var allowLiteral, allowPrefixed []string
	wildcardAllow := false
	add := func(rules map[string][]aclRule, prefixed bool) bool {
		for name, rs := range rules {
			for _, r := range rs {
				e := r.entry
				if e.Principal != principal && e.Principal != wildcardPrincipal || r.host != host && e.Host != aclWildcard ||
					e.Operation != op && e.Operation != kmsg.ACLOperationAll {
					continue
				}
				deny := e.Permission == kmsg.ACLPermissionTypeDeny
				switch {
				case !prefixed && name == aclWildcard && deny:
					return true
				case !prefixed && name == aclWildcard:
					wildcardAllow = true
				case prefixed && deny:
					denyPrefixed[name] = true
				case deny:
					denyLiteral[name] = true
				case prefixed:
					allowPrefixed = append(allowPrefixed, name)
				default:
					allowLiteral = append(allowLiteral, name)
				}
			}
		}
		return false
	}
	if add(t.literal, false) || add(t.prefixed, true) {
		return false
	}
	if wildcardAllow {
		return true
	}
	dominated := func(name string) bool {
		for i := 1; i <= len(name); i++ {
			if denyPrefixed[name[:i]] {
				return true
			}
		}
		return false
	}
	for _, n := range allowLiteral {
		if !denyLiteral[n] && !dominated(n) {
			return true
		}
	}
	for _, n := range allowPrefixed {
		if !dominated(n) {
			return true
		}
	}
	return false
}

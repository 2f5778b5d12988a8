package broker

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// mustACL parses "TYPE PATTERN name principal host OPERATION PERMISSION".
func mustACL(t testing.TB, s string) aclEntry {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != 7 {
		t.Fatalf("ACL %q: want 7 fields", s)
	}
	e, err := aclJSONItem{ResourceType: f[0], PatternType: f[1], Name: f[2], Principal: f[3], Host: f[4], Operation: f[5], Permission: f[6]}.entry()
	if err != nil {
		t.Fatalf("ACL %q: %v", s, err)
	}
	if msg := validateNewACL(e); msg != "" {
		t.Fatalf("ACL %q: %s", s, msg)
	}
	return e
}

func testAuthorizer(t testing.TB, superUsers []string, allowIfNone bool, acls ...string) *authorizer {
	t.Helper()
	a := &authorizer{superUsers: map[string]bool{}, allowIfNone: allowIfNone}
	for _, u := range superUsers {
		a.superUsers[u] = true
	}
	var es []aclEntry
	for _, s := range acls {
		es = append(es, mustACL(t, s))
	}
	a.acls.Store(newACLIndex(sortACLs(es)))
	return a
}

// TestAuthorizerDecisions checks the decision rules of Kafka's
// StandardAuthorizer: super users, DENY before ALLOW, implied operations
// (for ALLOW only), LITERAL, wildcard and PREFIXED patterns, principal and
// host wildcards, and the default for resources without any ACL.
func TestAuthorizerDecisions(t *testing.T) {
	acls := []string{
		"TOPIC PREFIXED plant-a. User:gw * WRITE ALLOW",
		"TOPIC LITERAL plant-a.secret User:gw * ALL DENY",
		"TOPIC LITERAL plant-b.press User:sink 10.0.0.7 READ ALLOW",
		"TOPIC LITERAL plant-b.press User:sink * WRITE DENY",
		"TOPIC LITERAL * User:auditor * DESCRIBE ALLOW",
		"TOPIC PREFIXED plant-c. User:* * READ ALLOW",
		"TOPIC PREFIXED plant-c.hidden User:* * DESCRIBE DENY",
		"TOPIC LITERAL cfg User:ops * ALTER_CONFIGS ALLOW",
		"TOPIC LITERAL altered User:ops * ALTER ALLOW",
		"TOPIC LITERAL readdeny User:ops * READ DENY",
		"GROUP LITERAL factorywire-sink User:sink * READ ALLOW",
		"CLUSTER LITERAL kafka-cluster User:gw * IDEMPOTENT_WRITE ALLOW",
		"TOPIC LITERAL v6 User:ops ::ffff:192.0.2.1 READ ALLOW",
	}
	cases := []struct {
		name      string
		principal string
		host      string
		op        kmsg.ACLOperation
		typ       kmsg.ACLResourceType
		resource  string
		allowIf   bool
		want      bool
	}{
		{"prefixed allow", "User:gw", "127.0.0.1", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, "plant-a.press", false, true},
		{"write implies describe", "User:gw", "127.0.0.1", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "plant-a.press", false, true},
		{"write does not imply read", "User:gw", "127.0.0.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, "plant-a.press", false, false},
		{"prefix is not the name", "User:gw", "127.0.0.1", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, "plant-a", false, false},
		{"other factory", "User:gw", "127.0.0.1", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, "plant-b.press", false, false},
		{"deny all beats prefixed allow", "User:gw", "127.0.0.1", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, "plant-a.secret", false, false},
		{"deny all covers describe", "User:gw", "127.0.0.1", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "plant-a.secret", false, false},
		{"host must match", "User:sink", "127.0.0.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, "plant-b.press", false, false},
		{"host matches", "User:sink", "10.0.0.7", kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, "plant-b.press", false, true},
		{"deny write does not deny describe", "User:sink", "10.0.0.7", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "plant-b.press", false, true},
		{"deny write", "User:sink", "10.0.0.7", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, "plant-b.press", false, false},
		{"literal wildcard name", "User:auditor", "127.0.0.1", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "anything", false, true},
		{"wildcard principal", "User:anyone", "127.0.0.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, "plant-c.press", false, true},
		{"longer prefixed deny", "User:anyone", "127.0.0.1", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "plant-c.hidden-1", false, false},
		{"read implies describe under wildcard principal", "User:anyone", "127.0.0.1", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "plant-c.press", false, true},
		{"alter configs implies describe configs", "User:ops", "127.0.0.1", kmsg.ACLOperationDescribeConfigs, kmsg.ACLResourceTypeTopic, "cfg", false, true},
		{"describe configs does not imply describe", "User:ops", "127.0.0.1", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "cfg", false, false},
		{"alter implies describe", "User:ops", "127.0.0.1", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "altered", false, true},
		{"deny read does not deny describe", "User:ops", "127.0.0.1", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "readdeny", true, false},
		{"mapped IPv6 host", "User:ops", "192.0.2.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, "v6", false, true},
		{"group read", "User:sink", "127.0.0.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, "factorywire-sink", false, true},
		{"group of another name", "User:sink", "127.0.0.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, "other", false, false},
		{"cluster", "User:gw", "127.0.0.1", kmsg.ACLOperationIdempotentWrite, kmsg.ACLResourceTypeCluster, "kafka-cluster", false, true},
		{"no ACL on resource, default deny", "User:gw", "127.0.0.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeTransactionalId, "tx", false, false},
		{"no ACL on resource, allow everyone", "User:gw", "127.0.0.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeTransactionalId, "tx", true, true},
		{"ACLs on resource for others, allow everyone", "User:gw", "127.0.0.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, "factorywire-sink", true, false},
		{"wildcard ACL counts as an ACL on the resource", "User:gw", "127.0.0.1", kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, "zzz", true, false},
		{"super user", "User:admin", "127.0.0.1", kmsg.ACLOperationAlter, kmsg.ACLResourceTypeCluster, "kafka-cluster", false, true},
		{"super user despite deny", "User:admin", "127.0.0.1", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, "plant-a.secret", false, true},
		{"anonymous", anonymousPrincipal, "127.0.0.1", kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, "x", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := testAuthorizer(t, []string{"User:admin"}, tc.allowIf, acls...)
			if got := a.allows(tc.principal, tc.host, tc.op, tc.typ, tc.resource); got != tc.want {
				t.Fatalf("%s %s on %s:%s from %s: allowed %v, want %v", tc.principal, enumName(operationNames, tc.op),
					enumName(resourceTypeNames, tc.typ), tc.resource, tc.host, got, tc.want)
			}
		})
	}
}

// TestAuthorizeByResourceType checks Kafka's authorizeByResourceType (used
// by InitProducerId, KIP-679): an ALLOW for the operation on any topic not
// covered by a DENY.
func TestAuthorizeByResourceType(t *testing.T) {
	cases := []struct {
		name    string
		acls    []string
		allowIf bool
		want    bool
	}{
		{"none", nil, false, false},
		{"none, allow everyone", nil, true, true},
		{"literal allow", []string{"TOPIC LITERAL t User:p * WRITE ALLOW"}, false, true},
		{"all allows", []string{"TOPIC PREFIXED t User:p * ALL ALLOW"}, false, true},
		{"read is not write", []string{"TOPIC LITERAL t User:p * READ ALLOW"}, false, false},
		{"other principal", []string{"TOPIC LITERAL t User:q * WRITE ALLOW"}, false, false},
		{"wildcard principal", []string{"TOPIC LITERAL t User:* * WRITE ALLOW"}, false, true},
		{"other host", []string{"TOPIC LITERAL t User:p 10.1.1.1 WRITE ALLOW"}, false, false},
		{"literal deny of same name", []string{"TOPIC LITERAL t User:p * WRITE ALLOW", "TOPIC LITERAL t User:p * WRITE DENY"}, false, false},
		{"prefixed deny covers literal", []string{"TOPIC LITERAL tx User:p * WRITE ALLOW", "TOPIC PREFIXED t User:p * WRITE DENY"}, false, false},
		{"prefixed deny covers longer prefix", []string{"TOPIC PREFIXED tx. User:p * WRITE ALLOW", "TOPIC PREFIXED tx User:p * ALL DENY"}, false, false},
		{"deny elsewhere", []string{"TOPIC LITERAL a User:p * WRITE ALLOW", "TOPIC PREFIXED b User:p * WRITE DENY"}, false, true},
		{"wildcard allow", []string{"TOPIC LITERAL * User:p * WRITE ALLOW"}, false, true},
		{"wildcard deny", []string{"TOPIC LITERAL a User:p * WRITE ALLOW", "TOPIC LITERAL * User:* * WRITE DENY"}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := testAuthorizer(t, []string{"User:admin"}, tc.allowIf, tc.acls...)
			if got := a.allowsAnyOfType("User:p", "127.0.0.1", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic); got != tc.want {
				t.Fatalf("allowed %v, want %v", got, tc.want)
			}
			if !a.allowsAnyOfType("User:admin", "127.0.0.1", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic) {
				t.Fatal("a super user is refused")
			}
		})
	}
}

// aclFilterCase is a filter and the indexes of the ACLs (of
// aclFilterACLs) it matches.
type aclFilterCase struct {
	name string
	f    aclFilter
	want []int
}

var aclFilterACLs = []string{
	"TOPIC LITERAL plant-a.press User:a * READ ALLOW",
	"TOPIC LITERAL * User:a * DESCRIBE ALLOW",
	"TOPIC PREFIXED plant-a. User:b * WRITE ALLOW",
	"TOPIC PREFIXED plant-b. User:b * WRITE ALLOW",
	"GROUP LITERAL plant-a.press User:a * READ DENY",
	"TOPIC PREFIXED plant-a.pr User:c 10.0.0.1 ALL DENY",
}

func aclFilterCases() []aclFilterCase {
	name := func(s string) *string { return &s }
	filter := func(typ kmsg.ACLResourceType, n *string, pattern kmsg.ACLResourcePatternType) aclFilter {
		return aclFilter{ResourceType: typ, Name: n, Pattern: pattern, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	}
	return []aclFilterCase{
		{"everything", filter(kmsg.ACLResourceTypeAny, nil, kmsg.ACLResourcePatternTypeAny), []int{0, 1, 2, 3, 4, 5}},
		{"topic literal by name", filter(kmsg.ACLResourceTypeTopic, name("plant-a.press"), kmsg.ACLResourcePatternTypeLiteral), []int{0}},
		{"any pattern by name is exact", filter(kmsg.ACLResourceTypeAny, name("plant-a.press"), kmsg.ACLResourcePatternTypeAny), []int{0, 4}},
		{"match", filter(kmsg.ACLResourceTypeTopic, name("plant-a.press"), kmsg.ACLResourcePatternTypeMatch), []int{0, 1, 2, 5}},
		{"match of any type", filter(kmsg.ACLResourceTypeAny, name("plant-a.press"), kmsg.ACLResourcePatternTypeMatch), []int{0, 1, 2, 4, 5}},
		{"match without a name", filter(kmsg.ACLResourceTypeTopic, nil, kmsg.ACLResourcePatternTypeMatch), []int{0, 1, 2, 3, 5}},
		{"match of the wildcard name", filter(kmsg.ACLResourceTypeTopic, name("*"), kmsg.ACLResourcePatternTypeMatch), []int{1}},
		{"prefixed by name is exact", filter(kmsg.ACLResourceTypeTopic, name("plant-a."), kmsg.ACLResourcePatternTypePrefixed), []int{2}},
		{"literal of a prefix name", filter(kmsg.ACLResourceTypeTopic, name("plant-a."), kmsg.ACLResourcePatternTypeLiteral), nil},
		{"principal and operation", aclFilter{ResourceType: kmsg.ACLResourceTypeAny, Pattern: kmsg.ACLResourcePatternTypeAny, Principal: name("User:b"), Operation: kmsg.ACLOperationWrite, Permission: kmsg.ACLPermissionTypeAllow}, []int{2, 3}},
		{"permission", aclFilter{ResourceType: kmsg.ACLResourceTypeAny, Pattern: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeDeny}, []int{4, 5}},
		{"host", aclFilter{ResourceType: kmsg.ACLResourceTypeAny, Pattern: kmsg.ACLResourcePatternTypeAny, Host: name("10.0.0.1"), Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, []int{5}},
		{"operation ALL is not any", aclFilter{ResourceType: kmsg.ACLResourceTypeAny, Pattern: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAny}, []int{0, 4}},
	}
}

// TestACLFilterMatch checks Kafka's ACL filter semantics, MATCH included.
func TestACLFilterMatch(t *testing.T) {
	for _, tc := range aclFilterCases() {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			for i, s := range aclFilterACLs {
				if tc.f.matches(mustACL(t, s)) {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("matched %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAuthorizationConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  AuthorizationConfig
		err  string
	}{
		{"off", AuthorizationConfig{}, ""},
		{"on", AuthorizationConfig{Enabled: true, SuperUsers: []string{"User:admin"}}, ""},
		{"super users while off", AuthorizationConfig{SuperUsers: []string{"User:admin"}}, "authorization.enabled is false"},
		{"not a principal", AuthorizationConfig{Enabled: true, SuperUsers: []string{"admin"}}, `"admin" is not a principal`},
		{"empty name", AuthorizationConfig{Enabled: true, SuperUsers: []string{"User:"}}, "is not a principal"},
		{"kafka list", AuthorizationConfig{Enabled: true, SuperUsers: []string{"User:a;User:b"}}, "one principal per item"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.DataDir = t.TempDir()
			cfg.Authorization = tc.cfg
			err := cfg.Validate()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

// BenchmarkAuthorize measures one produce-path decision among the ACLs of
// 500 factories (a gateway and a sink each), plus wildcard and cluster
// ACLs.
//
//	go test -run '^$' -bench BenchmarkAuthorize -benchtime 1s ./broker/
func BenchmarkAuthorize(b *testing.B) {
	var acls []string
	for i := range 500 {
		f := fmt.Sprintf("plant-%d.", i)
		acls = append(acls,
			"TOPIC PREFIXED "+f+" User:gw-"+f+" * WRITE ALLOW",
			"TOPIC PREFIXED "+f+" User:gw-"+f+" * DESCRIBE ALLOW",
			"TOPIC PREFIXED "+f+" User:sink * READ ALLOW",
			"TOPIC LITERAL "+f+"press.dlq User:sink * WRITE ALLOW",
		)
	}
	acls = append(acls, "TOPIC LITERAL * User:auditor * DESCRIBE ALLOW", "CLUSTER LITERAL kafka-cluster User:sink * IDEMPOTENT_WRITE ALLOW")
	a := testAuthorizer(b, []string{"User:admin"}, false, acls...)
	b.ResetTimer()
	for b.Loop() {
		if !a.allows("User:gw-plant-250.", "10.1.2.3", kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, "plant-250.press") {
			b.Fatal("denied")
		}
	}
}

package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// withAuthorization enables authorization with the given super users.
func withAuthorization(superUsers ...string) func(*Config) {
	return func(cfg *Config) {
		cfg.Authorization = AuthorizationConfig{Enabled: true, SuperUsers: superUsers}
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// describeAll lists every ACL through kadm.
func describeAll(t testing.TB, adm *kadm.Client) kadm.DescribedACLs {
	t.Helper()
	res, err := adm.DescribeACLs(testCtx(t), kadm.NewACLs().AnyResource().Allow().Deny().AllowHosts().DenyHosts().
		ResourcePatternType(kadm.ACLPatternAny).Operations())
	if err != nil {
		t.Fatal(err)
	}
	var out kadm.DescribedACLs
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("describe ACLs: %v (%s)", r.Err, r.ErrMessage)
		}
		out = append(out, r.Described...)
	}
	return out
}

// TestACLAPIs creates, lists and deletes ACLs through kadm as a super user,
// and checks that they survive a restart.
func TestACLAPIs(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, withAuthorization(anonymousPrincipal))
	adm := kadm.NewClient(newClient(t, b.Addr().String()))
	ctx := testCtx(t)

	create := kadm.NewACLs().Allow("User:gw").Topics("plant-a.").ResourcePatternType(kadm.ACLPatternPrefixed).
		Operations(kadm.OpWrite, kadm.OpDescribe)
	res, err := adm.CreateACLs(ctx, create)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("create %v: %v (%s)", r, r.Err, r.ErrMessage)
		}
	}
	res, err = adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:gw").Clusters().Operations(kadm.OpIdempotentWrite).
		Deny("User:gw").DenyHosts("10.0.0.9"))
	if err != nil || len(res) != 2 || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("create cluster ACLs: %v %+v", err, res)
	}
	// Creating an existing ACL again changes nothing.
	if res, err := adm.CreateACLs(ctx, create); err != nil || res[0].Err != nil {
		t.Fatalf("create again: %v %+v", err, res)
	}
	if got := describeAll(t, adm); len(got) != 4 {
		t.Fatalf("described %d ACLs, want 4: %+v", len(got), got)
	}

	// MATCH finds the prefixed ACLs that apply to a topic.
	match, err := adm.DescribeACLs(ctx, kadm.NewACLs().Topics("plant-a.press").ResourcePatternType(kadm.ACLPatternMatch).
		Allow().Deny().AllowHosts().DenyHosts().Operations())
	if err != nil || len(match) != 1 || match[0].Err != nil || len(match[0].Described) != 2 {
		t.Fatalf("describe MATCH plant-a.press: %v %+v", err, match)
	}
	for _, d := range match[0].Described {
		if d.Name != "plant-a." || d.Pattern != kadm.ACLPatternPrefixed || d.Principal != "User:gw" || d.Host != "*" {
			t.Fatalf("described %+v", d)
		}
	}

	// Restart: the ACLs are durable.
	b.Close()
	b = startBroker(t, dir, withAuthorization(anonymousPrincipal))
	adm = kadm.NewClient(newClient(t, b.Addr().String()))
	if got := describeAll(t, adm); len(got) != 4 {
		t.Fatalf("after restart described %d ACLs, want 4: %+v", len(got), got)
	}

	del, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:gw").Topics().ResourcePatternType(kadm.ACLPatternAny).
		Operations(kadm.OpWrite).AllowHosts())
	if err != nil || len(del) != 1 || del[0].Err != nil || len(del[0].Deleted) != 1 || del[0].Deleted[0].Operation != kadm.OpWrite {
		t.Fatalf("delete WRITE: %v %+v", err, del)
	}
	if got := describeAll(t, adm); len(got) != 3 {
		t.Fatalf("after delete described %d ACLs, want 3: %+v", len(got), got)
	}
	b.Close()
	b = startBroker(t, dir, withAuthorization(anonymousPrincipal))
	adm = kadm.NewClient(newClient(t, b.Addr().String()))
	if got := describeAll(t, adm); len(got) != 3 {
		t.Fatalf("after delete and restart described %d ACLs, want 3: %+v", len(got), got)
	}
}

// aclCreation is a CreateAcls creation and the INVALID_REQUEST message it
// gets ("" when valid); kafkaDiffers marks those Apache Kafka 4.1.1 answers
// otherwise: it stores a host that is not an address, and answers
// UNKNOWN_SERVER_ERROR (failing every creation of the request) for the
// ANY and MATCH values and an unknown code, which its controller means to
// refuse with INVALID_REQUEST.
type aclCreation struct {
	name         string
	c            kmsg.CreateACLsRequestCreation
	msg          string
	kafkaDiffers bool
}

func aclCreationCases() []aclCreation {
	creation := func(mut func(*kmsg.CreateACLsRequestCreation)) kmsg.CreateACLsRequestCreation {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host, c.Operation, c.PermissionType = "User:a", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
		mut(&c)
		return c
	}
	return []aclCreation{
		{"valid", creation(func(*kmsg.CreateACLsRequestCreation) {}), "", false},
		{"valid prefixed", creation(func(c *kmsg.CreateACLsRequestCreation) { c.ResourcePatternType = kmsg.ACLResourcePatternTypePrefixed }), "", false},
		{"valid cluster", creation(func(c *kmsg.CreateACLsRequestCreation) {
			c.ResourceType, c.ResourceName, c.Operation = kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLOperationIdempotentWrite
		}), "", false},
		{"valid transactional id", creation(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = kmsg.ACLResourceTypeTransactionalId }), "", false},
		{"valid delegation token", creation(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = kmsg.ACLResourceTypeDelegationToken }), "", false},
		{"valid user", creation(func(c *kmsg.CreateACLsRequestCreation) {
			c.ResourceType, c.Operation = kmsg.ACLResourceTypeUser, kmsg.ACLOperationCreateTokens
		}), "", false},
		{"valid IPv4 host", creation(func(c *kmsg.CreateACLsRequestCreation) { c.Host = "10.0.0.7" }), "", false},
		{"cluster name", creation(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = kmsg.ACLResourceTypeCluster }), "only valid name for the CLUSTER resource", false},
		{"empty name", creation(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceName = "" }), "empty resource name", false},
		{"any type", creation(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = kmsg.ACLResourceTypeAny }), "Invalid resourceType ANY", true},
		{"match pattern", creation(func(c *kmsg.CreateACLsRequestCreation) { c.ResourcePatternType = kmsg.ACLResourcePatternTypeMatch }), "Invalid patternType MATCH", true},
		{"any operation", creation(func(c *kmsg.CreateACLsRequestCreation) { c.Operation = kmsg.ACLOperationAny }), "Invalid operation ANY", true},
		{"any permission", creation(func(c *kmsg.CreateACLsRequestCreation) { c.PermissionType = kmsg.ACLPermissionTypeAny }), "Invalid permissionType ANY", true},
		{"principal", creation(func(c *kmsg.CreateACLsRequestCreation) { c.Principal = "alice" }), "Could not parse principal", false},
		{"unknown type", creation(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = 42 }), "UNKNOWN", true},
		{"host", creation(func(c *kmsg.CreateACLsRequestCreation) { c.Host = "gateway.local" }), "Invalid host", true},
	}
}

// TestCreateACLsValidation sends creations Kafka refuses, each answered
// INVALID_REQUEST with a message, while the valid one in the same request
// is created.
func TestCreateACLsValidation(t *testing.T) {
	b := startBroker(t, "", withAuthorization(anonymousPrincipal))
	cl := newClient(t, b.Addr().String())
	cases := aclCreationCases()
	req := kmsg.NewPtrCreateACLsRequest()
	for _, tc := range cases {
		req.Creations = append(req.Creations, tc.c)
	}
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != len(cases) {
		t.Fatalf("%d results for %d creations", len(resp.Results), len(cases))
	}
	for i, tc := range cases {
		r := resp.Results[i]
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		switch {
		case tc.msg == "" && r.ErrorCode != 0:
			t.Errorf("%s: error %d %s", tc.name, r.ErrorCode, msg)
		case tc.msg != "" && (r.ErrorCode != kerr.InvalidRequest.Code || !strings.Contains(msg, tc.msg)):
			t.Errorf("%s: error %d %q, want INVALID_REQUEST %q", tc.name, r.ErrorCode, msg, tc.msg)
		}
	}
	valid := 0
	for _, tc := range cases {
		if tc.msg == "" {
			valid++
		}
	}
	if got := describeAll(t, kadm.NewClient(cl)); len(got) != valid {
		t.Fatalf("described %+v, want the %d valid ACLs", got, valid)
	}

	// A filter with an unknown element is INVALID_REQUEST.
	dreq := kmsg.NewPtrDescribeACLsRequest()
	dreq.ResourceType, dreq.ResourcePatternType, dreq.Operation, dreq.PermissionType = kmsg.ACLResourceTypeAny, 0, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	dresp, err := dreq.RequestWith(testCtx(t), cl)
	if err != nil || dresp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("describe with an UNKNOWN pattern type: %v %+v", err, dresp)
	}
}

// TestACLAPIsRefused: without authorization the ACL APIs answer
// SECURITY_DISABLED; with it, a principal without ALTER (DESCRIBE) on the
// cluster gets CLUSTER_AUTHORIZATION_FAILED.
func TestACLAPIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		want error
	}{
		{"disabled", func(*Config) {}, kerr.SecurityDisabled},
		{"not authorized", withAuthorization("User:admin"), kerr.ClusterAuthorizationFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, "", tc.cfg)
			adm := kadm.NewClient(newClient(t, b.Addr().String()))
			ctx := testCtx(t)
			cres, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:a").Topics("t").Operations(kadm.OpRead))
			if err != nil || len(cres) != 1 || !errors.Is(cres[0].Err, tc.want) {
				t.Fatalf("create: %v %+v, want %v", err, cres, tc.want)
			}
			dres, err := adm.DescribeACLs(ctx, kadm.NewACLs().Topics().Allow().AllowHosts().Operations())
			if err != nil || len(dres) != 1 || !errors.Is(dres[0].Err, tc.want) {
				t.Fatalf("describe: %v %+v, want %v", err, dres, tc.want)
			}
			xres, err := adm.DeleteACLs(ctx, kadm.NewACLs().Topics().Allow().AllowHosts().Operations())
			if err != nil || len(xres) != 1 || !errors.Is(xres[0].Err, tc.want) {
				t.Fatalf("delete: %v %+v, want %v", err, xres, tc.want)
			}
		})
	}
}

// TestACLStoreCorrupt: a damaged ACL store stops the start-up with an error
// naming the file; with authorization disabled it is not read.
func TestACLStoreCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, aclFile)
	for _, content := range []string{"{not json", `{"version": 1, "acls": [{"resource_type": "TOPIC", "name": "", "pattern_type": "LITERAL", "principal": "User:a", "host": "*", "operation": "READ", "permission": "ALLOW"}]}`} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.Listen, cfg.DataDir, cfg.Authorization = "127.0.0.1:0", dir, AuthorizationConfig{Enabled: true}
		b, err := New(cfg)
		if err == nil {
			b.Close()
			t.Fatalf("started over %q", content)
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("error %q does not name %s", err, path)
		}
	}
	startBroker(t, dir) // disabled: the file is not read
}

package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSCRAMCredentialAPIs manages users through kadm (Describe- and
// AlterUserScramCredentials): a user created there authenticates, loses
// access once deleted, and each refusal carries Kafka's error code.
func TestSCRAMCredentialAPIs(t *testing.T) {
	sb := startSecureBroker(t)
	adm := kadm.NewClient(sb.saslClient(t, mechScramSHA512, "admin", adminPassword))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	described, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(described) != 3 || len(described["admin"].CredInfos) != 2 {
		t.Fatalf("described users: %+v; want admin, gateway-plant-a and sink with two mechanisms each", described)
	}
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "operator", Mechanism: kadm.ScramSha256, Iterations: 8192, Password: "operator-pw"}})
	if err != nil || altered.Error() != nil {
		t.Fatalf("create operator: %v %v", err, altered.Error())
	}
	operator := func() error {
		return ping(newClient(t, sb.addr("SASL_PLAIN"), kgo.SASL(mechanism(mechScramSHA256, "operator", "operator-pw")), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second)))
	}
	if err := operator(); err != nil {
		t.Fatalf("operator, just created: %v", err)
	}
	if err := ping(newClient(t, sb.addr("SASL_PLAIN"), kgo.SASL(mechanism(mechScramSHA512, "operator", "operator-pw")), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("operator with SCRAM-SHA-512, which it has no credential for: %v", err)
	}
	if d, _ := adm.DescribeUserSCRAMs(ctx, "operator"); len(d["operator"].CredInfos) != 1 || d["operator"].CredInfos[0].Iterations != 8192 {
		t.Fatalf("operator described as %+v", d["operator"])
	}

	raw := func(req *kmsg.AlterUserSCRAMCredentialsRequest) map[string]int16 {
		resp, err := req.RequestWith(ctx, sb.saslClient(t, mechScramSHA512, "admin", adminPassword))
		if err != nil {
			t.Fatal(err)
		}
		codes := map[string]int16{}
		for _, r := range resp.Results {
			codes[r.User] = r.ErrorCode
		}
		return codes
	}
	up := func(user string, mech int8, iterations int32, salt, salted []byte) kmsg.AlterUserSCRAMCredentialsRequestUpsertion {
		u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = user, mech, iterations, salt, salted
		return u
	}
	del := func(user string, mech int8) kmsg.AlterUserSCRAMCredentialsRequestDeletion {
		d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
		d.Name, d.Mechanism = user, mech
		return d
	}
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{
		up("weak", 1, 100, []byte("salt"), []byte("salted")),
		up("strong", 2, 20000, []byte("salt"), []byte("salted")),
		up("nosalt", 1, 4096, nil, []byte("salted")),
		up("", 1, 4096, []byte("salt"), []byte("salted")),
		up("unknown-mech", 3, 4096, []byte("salt"), []byte("salted")),
		up("twice", 1, 4096, []byte("salt"), []byte("salted")),
		up("good", 1, 4096, []byte("salt"), []byte("salted")),
	}
	req.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{del("nobody", 1), del("twice", 1)}
	codes := raw(req)
	for user, want := range map[string]*kerr.Error{
		"weak": kerr.UnacceptableCredential, "strong": kerr.UnacceptableCredential, "nosalt": kerr.UnacceptableCredential,
		"": kerr.UnacceptableCredential, "unknown-mech": kerr.UnsupportedSaslMechanism, "nobody": kerr.ResourceNotFound,
		"twice": kerr.DuplicateResource,
	} {
		if codes[user] != want.Code {
			t.Errorf("user %q: %v, want %v", user, kerr.ErrorForCode(codes[user]), want)
		}
	}
	if codes["good"] != 0 {
		t.Errorf("user good: %v; one user's error must not fail another's change", kerr.ErrorForCode(codes["good"]))
	}
	if d, _ := adm.DescribeUserSCRAMs(ctx, "twice", "weak"); d["twice"].Err == nil || d["weak"].Err == nil {
		t.Errorf("refused users were stored: %+v", d)
	}
	dreq := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	for _, name := range []string{"admin", "admin", "ghost"} {
		u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
		u.Name = name
		dreq.Users = append(dreq.Users, u)
	}
	dresp, err := dreq.RequestWith(ctx, sb.saslClient(t, mechScramSHA512, "admin", adminPassword))
	if err != nil {
		t.Fatal(err)
	}
	dcodes := map[string]int16{}
	for _, r := range dresp.Results {
		dcodes[r.User] = r.ErrorCode
	}
	if len(dresp.Results) != 2 || dcodes["admin"] != kerr.DuplicateResource.Code || dcodes["ghost"] != kerr.ResourceNotFound.Code {
		t.Errorf("describe admin twice and ghost: %+v", dresp.Results)
	}

	altered, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "operator", Mechanism: kadm.ScramSha256}}, nil)
	if err != nil || altered.Error() != nil {
		t.Fatalf("delete operator: %v %v", err, altered.Error())
	}
	if err := operator(); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("operator after deletion: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

// TestSCRAMUserNameEscapes: a user whose name holds ',' and '=' (sent
// escaped as =2C and =3D, RFC 5802) authenticates with SCRAM, and its
// principal is the name itself; a name with another '=' escape does not.
func TestSCRAMUserNameEscapes(t *testing.T) {
	sb := startSecureBroker(t)
	adm := kadm.NewClient(sb.saslClient(t, mechScramSHA512, "admin", adminPassword))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const odd = "line=1,press"
	if altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: odd, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "odd-pw"}}); err != nil || altered.Error() != nil {
		t.Fatalf("create %q: %v %v", odd, err, altered.Error())
	}
	if err := ping(newClient(t, sb.addr("SASL_PLAIN"), kgo.SASL(mechanism(mechScramSHA256, odd, "odd-pw")), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))); err != nil {
		t.Fatalf("SCRAM as %q: %v", odd, err)
	}
	for _, bad := range []string{"a=2", "a=ZZb", "x="} {
		if name, ok := decodeSaslName(bad); ok {
			t.Errorf("decodeSaslName(%q) = %q, accepted", bad, name)
		}
	}
	if name, ok := decodeSaslName("line=3D1=2Cpress"); !ok || name != odd {
		t.Errorf("decodeSaslName: %q %v", name, ok)
	}
}

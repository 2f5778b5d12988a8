package broker

import (
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterUserScramCredentials v0.
//
// Creates, replaces and deletes SASL users' SCRAM credentials. An upsertion
// carries the salt and the salted password (the client salts the password;
// it never crosses the network), from which the broker derives and stores
// the keys. Each user's changes are checked as Kafka checks them (4096 to
// 16384 iterations, a salt, a known mechanism, a credential altered once
// per request, a deletion of an existing credential) and applied together,
// durably, or not at all; other users' changes do not depend on them.
//
// Authorization: ALTER on the cluster, else every user named is answered
// CLUSTER_AUTHORIZATION_FAILED (once each, sorted, as Kafka).

func init() {
	regKey(int16(kmsg.AlterUserSCRAMCredentials), 0, 0, handleAlterUserSCRAMCredentials)
}

func handleAlterUserSCRAMCredentials(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	if !b.authorizeCluster(c, req.Key(), kmsg.ACLOperationAlter) {
		var names []string
		for _, d := range req.Deletions {
			names = append(names, d.Name)
		}
		for _, up := range req.Upsertions {
			names = append(names, up.Name)
		}
		slices.Sort(names)
		for _, n := range slices.Compact(names) {
			r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
			r.User, r.ErrorCode, r.ErrorMessage = n, kerr.ClusterAuthorizationFailed.Code, kmsg.StringPtr(msgClusterAuthorizationFailed)
			resp.Results = append(resp.Results, r)
		}
		return reply{resp: resp}, nil
	}
	type userChanges struct {
		changes []credChange
		code    int16
		msg     string
	}
	users := map[string]*userChanges{}
	var order []string
	fail := func(u *userChanges, code int16, msg string) {
		if u.code == 0 {
			u.code, u.msg = code, msg
		}
	}
	// A credential named twice (deleted and set, or set twice) is
	// refused whatever else is wrong with it, as Kafka checks first.
	named := map[[2]string]int{}
	for _, d := range req.Deletions {
		named[[2]string{d.Name, scramMechanismName(d.Mechanism)}]++
	}
	for _, up := range req.Upsertions {
		named[[2]string{up.Name, scramMechanismName(up.Mechanism)}]++
	}
	add := func(user string, mech int8, ch credChange, check func() error) {
		u := users[user]
		if u == nil {
			u = &userChanges{}
			users[user] = u
			order = append(order, user)
		}
		name := scramMechanismName(mech)
		key := [2]string{user, name}
		switch {
		case user == "":
			fail(u, kerr.UnacceptableCredential.Code, "Username must not be empty")
		case name == "":
			fail(u, kerr.UnsupportedSaslMechanism.Code, "Unknown SCRAM mechanism")
		case named[key] > 1:
			fail(u, kerr.DuplicateResource.Code, "A user credential cannot be altered twice in the same request")
		default:
			if err := check(); err != nil {
				code := kerr.UnacceptableCredential.Code
				if errors.Is(err, errNotFound) {
					code = kerr.ResourceNotFound.Code
				}
				fail(u, code, err.Error())
				return
			}
			ch.user, ch.mech = user, name
			u.changes = append(u.changes, ch)
		}
	}
	for _, d := range req.Deletions {
		add(d.Name, d.Mechanism, credChange{}, func() error {
			if !b.users.has(d.Name, scramMechanismName(d.Mechanism)) {
				return errNotFound
			}
			return nil
		})
	}
	for _, up := range req.Upsertions {
		add(up.Name, up.Mechanism, credChange{iterations: int(up.Iterations), salt: up.Salt, salted: up.SaltedPassword}, func() error {
			return validateUpsert(up.Name, scramMechanismName(up.Mechanism), int(up.Iterations), up.Salt, up.SaltedPassword)
		})
	}
	var apply []credChange
	for _, user := range order {
		if u := users[user]; u.code == 0 {
			apply = append(apply, u.changes...)
		}
	}
	var storeErr error
	if len(apply) > 0 {
		storeErr = b.users.apply(apply)
		if storeErr != nil {
			b.log.Error("SCRAM credentials not changed: the users file could not be written", "err", storeErr)
		}
	}
	for _, user := range order {
		u := users[user]
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = user
		switch {
		case u.code != 0:
			r.ErrorCode, r.ErrorMessage = u.code, kmsg.StringPtr(u.msg)
		case storeErr != nil:
			r.ErrorCode, r.ErrorMessage = kerr.KafkaStorageError.Code, kmsg.StringPtr("the broker could not store the credentials")
		default:
			for _, ch := range u.changes {
				if ch.salted == nil {
					b.log.Info("SCRAM credential deleted", "user", user, "mechanism", ch.mech, "by", c.principal)
				} else {
					b.log.Info("SCRAM credential set", "user", user, "mechanism", ch.mech, "iterations", ch.iterations, "by", c.principal)
				}
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return reply{resp: resp}, nil
}

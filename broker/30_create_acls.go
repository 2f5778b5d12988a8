package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateAcls v1–3 (Kafka 4 removed v0, KIP-896).
//
// Needs ALTER on the cluster (else every creation is
// CLUSTER_AUTHORIZATION_FAILED); without authorization enabled every
// creation is SECURITY_DISABLED. Each creation is validated as Kafka
// validates it (INVALID_REQUEST with Kafka's message); deviation: the host
// must be * or an IP address. The valid ones are stored (acls.json,
// fsynced) before the answer and take effect at once; creating an ACL that
// exists succeeds without a change. A failed write answers
// KAFKA_STORAGE_ERROR and changes nothing.

func init() { regKey(int16(kmsg.CreateACLs), 1, 3, handleCreateACLs) }

func handleCreateACLs(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	code, msg := b.refuseACLChange(c, req.Key())
	var valid []aclEntry
	var validAt []int
	for i, cr := range req.Creations {
		r := &resp.Results[i]
		*r = kmsg.NewCreateACLsResponseResult()
		if code != 0 {
			r.ErrorCode, r.ErrorMessage = code, &msg
			continue
		}
		e := aclOfCreation(cr)
		if m := validateNewACL(e); m != "" {
			r.ErrorCode, r.ErrorMessage = kerr.InvalidRequest.Code, &m
			continue
		}
		valid, validAt = append(valid, e), append(validAt, i)
	}
	if len(valid) == 0 {
		return reply{resp: resp}, nil
	}
	if err := b.authz.createACLs(valid); err != nil {
		b.log.Error("ACLs not created: the ACL store could not be written", "err", err)
		m := "ACLs not created: " + err.Error()
		for _, i := range validAt {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.KafkaStorageError.Code, &m
		}
		return reply{resp: resp}, nil
	}
	for _, e := range valid {
		b.log.Info("ACL created", "acl", e.String(), "by", c.principal)
	}
	return reply{resp: resp}, nil
}

// refuseACLChange is why a CreateAcls or DeleteAcls request is refused as a
// whole: CLUSTER_AUTHORIZATION_FAILED without ALTER on the cluster,
// SECURITY_DISABLED without authorization enabled; 0 if it is not.
func (b *Broker) refuseACLChange(c *conn, key int16) (int16, string) {
	switch {
	case !b.authorizeCluster(c, key, kmsg.ACLOperationAlter):
		return kerr.ClusterAuthorizationFailed.Code, msgClusterAuthorizationFailed
	case b.authz == nil:
		return kerr.SecurityDisabled.Code, "No Authorizer is configured."
	}
	return 0, ""
}

package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteAcls v1–3 (Kafka 4 removed v0, KIP-896).
//
// Needs ALTER on the cluster (else every filter is
// CLUSTER_AUTHORIZATION_FAILED); without authorization enabled every filter
// is SECURITY_DISABLED. Each filter (Kafka's AclBindingFilter: ANY and MATCH
// pattern types included) deletes the ACLs it matches and lists them; a
// filter with an element Kafka reads as UNKNOWN is INVALID_REQUEST. The
// remaining ACLs are stored (fsynced) before the answer; a failed write
// answers KAFKA_STORAGE_ERROR and deletes nothing.

func init() { regKey(int16(kmsg.DeleteACLs), 1, 3, handleDeleteACLs) }

func handleDeleteACLs(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	code, msg := b.refuseACLChange(c, req.Key())
	var filters []aclFilter
	var filterAt []int
	for i, rf := range req.Filters {
		r := &resp.Results[i]
		*r = kmsg.NewDeleteACLsResponseResult()
		if code != 0 {
			r.ErrorCode, r.ErrorMessage = code, &msg
			continue
		}
		f := aclFilter{
			ResourceType: rf.ResourceType, Name: rf.ResourceName, Pattern: rf.ResourcePatternType,
			Principal: rf.Principal, Host: rf.Host, Operation: rf.Operation, Permission: rf.PermissionType,
		}
		if f.unknown() {
			m := "Filters contain UNKNOWN elements"
			r.ErrorCode, r.ErrorMessage = kerr.InvalidRequest.Code, &m
			continue
		}
		filters, filterAt = append(filters, f), append(filterAt, i)
	}
	if len(filters) == 0 {
		return reply{resp: resp}, nil
	}
	matched, err := b.authz.deleteACLs(filters)
	if err != nil {
		b.log.Error("ACLs not deleted: the ACL store could not be written", "err", err)
		m := "ACLs not deleted: " + err.Error()
		for _, i := range filterAt {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.KafkaStorageError.Code, &m
		}
		return reply{resp: resp}, nil
	}
	for k, i := range filterAt {
		for _, e := range matched[k] {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = e.ResourceType, e.Name, e.Pattern
			m.Principal, m.Host, m.Operation, m.PermissionType = e.Principal, e.Host, e.Operation, e.Permission
			resp.Results[i].MatchingACLs = append(resp.Results[i].MatchingACLs, m)
			b.log.Info("ACL deleted", "acl", e.String(), "by", c.principal)
		}
	}
	return reply{resp: resp}, nil
}

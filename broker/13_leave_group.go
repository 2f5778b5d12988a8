package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup v0–5.
//
// v3+ removes a batch of members, by member id or by group.instance.id
// (static members), with a code per member; the rest of the group
// rebalances.
//
// Authorization: READ on the group, else GROUP_AUTHORIZATION_FAILED (for
// the request, with no member listed).

func init() { regKey(int16(kmsg.LeaveGroup), 0, 5, handleLeaveGroup) }

func handleLeaveGroup(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if !b.authorize(c, req.Key(), kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	ids, instances := []string{req.MemberID}, []*string{nil}
	if req.Version >= 3 {
		ids, instances = nil, nil
		for _, m := range req.Members {
			ids, instances = append(ids, m.MemberID), append(instances, m.InstanceID)
		}
	}
	codes := make([]int16, len(ids))
	g := b.groups.group(req.Group, false)
	switch {
	case !validGroupID(req.Group):
		resp.ErrorCode = kerr.InvalidGroupID.Code
	case g == nil:
		for i := range codes {
			codes[i] = kerr.UnknownMemberID.Code
		}
	case !g.do(func() { codes = g.leave(ids, instances) }):
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	}
	if req.Version < 3 {
		if resp.ErrorCode == 0 {
			resp.ErrorCode = codes[0]
		}
		return reply{resp: resp}, nil
	}
	for i, id := range ids {
		m := kmsg.NewLeaveGroupResponseMember()
		m.MemberID, m.InstanceID, m.ErrorCode = id, instances[i], codes[i]
		resp.Members = append(resp.Members, m)
	}
	return reply{resp: resp}, nil
}

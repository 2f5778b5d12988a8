package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat v0–4.
//
// REBALANCE_IN_PROGRESS while the group rebalances (the member must
// rejoin), ILLEGAL_GENERATION for an old generation, UNKNOWN_MEMBER_ID for
// a member the group does not have (also after a broker restart),
// FENCED_INSTANCE_ID for a replaced static member.
//
// Authorization: READ on the group, else GROUP_AUTHORIZATION_FAILED.

func init() { regKey(int16(kmsg.Heartbeat), 0, 4, handleHeartbeat) }

func handleHeartbeat(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if !b.authorize(c, req.Key(), kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	g := b.groups.group(req.Group, false)
	switch {
	case !validGroupID(req.Group):
		resp.ErrorCode = kerr.InvalidGroupID.Code
	case g == nil:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	case !g.do(func() { resp.ErrorCode = g.heartbeat(req) }):
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	}
	return reply{resp: resp}, nil
}

package broker

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup v0–9 (classic protocol).
//
// v4+ members without an id get MEMBER_ID_REQUIRED with one (KIP-394); v5+
// static members (group.instance.id) replace their previous incarnation,
// which is fenced. Deviation: the group then rebalances, where Kafka
// (KIP-345) hands a returning static member its old assignment without a
// rebalance when its protocols are unchanged. The coordinator carries protocol metadata untouched, so
// eager and cooperative assignors both work (they run in the client). A new
// group's first rebalance waits GroupInitialRebalanceDelay for more members.
// The response's SkipAssignment (v9) is always false. A member whose
// protocol metadata exceeds 1 MiB is refused with INVALID_REQUEST.
//
// Authorization: READ on the group, else GROUP_AUTHORIZATION_FAILED.

func init() { regKey(int16(kmsg.JoinGroup), 0, 9, handleJoinGroup) }

// maxMemberMetadata bounds one member's protocol names and metadata.
const maxMemberMetadata = 1 << 20

func handleJoinGroup(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.JoinGroupRequest)
	fail := func(code int16) (reply, error) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.MemberID, resp.Generation = code, req.MemberID, -1
		return reply{resp: resp}, nil
	}
	if !b.authorize(c, req.Key(), kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.Generation = kerr.GroupAuthorizationFailed.Code, -1
		return reply{resp: resp}, nil
	}
	if !validGroupID(req.Group) {
		return fail(kerr.InvalidGroupID.Code)
	}
	if req.InstanceID != nil && (*req.InstanceID == "" || len(*req.InstanceID) > maxGroupIDLength) {
		return fail(kerr.InvalidRequest.Code)
	}
	size := 0
	for _, p := range req.Protocols {
		size += len(p.Name) + len(p.Metadata)
	}
	if size > maxMemberMetadata {
		// The coordinator keeps every member's metadata in memory and
		// sends all of it to the leader: refuse what no assignor needs.
		b.log.Warn("join group refused: protocol metadata too large", "group", req.Group, "bytes", size, "max_bytes", maxMemberMetadata)
		return fail(kerr.InvalidRequest.Code)
	}
	g := b.groups.group(req.Group, true)
	answer := make(chan *kmsg.JoinGroupResponse, 1)
	host, _, _ := net.SplitHostPort(c.nc.RemoteAddr().String())
	clientID := c.clientID
	if !g.post(func() { g.join(req, clientID, "/"+host, func(r *kmsg.JoinGroupResponse) { answer <- r }) }) {
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
	return reply{finish: func(ctx context.Context) kmsg.Response {
		select {
		case r := <-answer:
			return r
		case <-ctx.Done():
		case <-g.done:
			// The group was deleted (DeleteGroups, or expired while
			// Empty) before it ran this request: the client retries.
			select {
			case r := <-answer:
				return r
			default:
			}
		}
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.Generation = kerr.CoordinatorNotAvailable.Code, -1
		return resp
	}}, nil
}

package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup v0–5.
//
// Followers wait until the leader's SyncGroup brings the assignment; a
// rebalance starting meanwhile answers them REBALANCE_IN_PROGRESS. v5
// checks the protocol type and name against the group's, and requires them
// (INCONSISTENT_GROUP_PROTOCOL without, before authorization, as Kafka).
//
// Authorization: READ on the group, else GROUP_AUTHORIZATION_FAILED.

func init() { regKey(int16(kmsg.SyncGroup), 0, 5, handleSyncGroup) }

func handleSyncGroup(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	fail := func(code int16) (reply, error) {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = code
		return reply{resp: resp}, nil
	}
	if req.Version >= 5 && (req.ProtocolType == nil || req.Protocol == nil) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if !b.authorize(c, req.Key(), kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		return fail(kerr.GroupAuthorizationFailed.Code)
	}
	if !validGroupID(req.Group) {
		return fail(kerr.InvalidGroupID.Code)
	}
	g := b.groups.group(req.Group, false)
	if g == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	answer := make(chan *kmsg.SyncGroupResponse, 1)
	if !g.post(func() { g.sync(req, func(r *kmsg.SyncGroupResponse) { answer <- r }) }) {
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
	return reply{finish: func(ctx context.Context) kmsg.Response {
		select {
		case r := <-answer:
			r.Version = req.Version
			return r
		case <-ctx.Done():
		case <-g.done:
			// The group was deleted (DeleteGroups, or expired while
			// Empty) before it ran this request: the client retries.
			select {
			case r := <-answer:
				r.Version = req.Version
				return r
			default:
			}
		}
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}}, nil
}

package broker

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A group is one consumer group of the classic protocol. Its state is owned
// by one goroutine (run): handlers and timers post closures to it, so no
// lock guards the fields below. The state machine follows Kafka's group
// coordinator:
//
//	Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//	  ▲                  ▲                                             │ leader's SyncGroup
//	  └── last member ───┴──── join, leave, session expiry ◀── Stable ◀┘
//
// Membership is not persisted: after a broker restart members get
// UNKNOWN_MEMBER_ID and rejoin, as after a Kafka coordinator change.
// Committed offsets are persisted by the offset store, and expire after
// OffsetsRetention (coordinator.expire); an Empty group without offsets is
// then deleted: it goes Dead and its goroutine ends.
type group struct {
	c  *coordinator
	id string

	state        groupState
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	static       map[string]string    // group.instance.id -> member id
	pendingIDs   map[string]time.Time // ids handed out with MEMBER_ID_REQUIRED -> expiry
	rebalance    *time.Timer
	rebalanceGen int  // invalidates an old rebalance timer
	initialDelay bool // a new group's first rebalance waits for its timer
	// emptySince is when the group last became Empty, in Unix ms (Kafka's
	// currentStateTimestamp while Empty): its offsets expire
	// OffsetsRetention after it. It is 0 for a group that never had
	// members (standalone consumers and tools that only commit), whose
	// offsets expire each OffsetsRetention after its commit; a group
	// restored from the offset store starts Empty since its latest commit.
	emptySince int64

	ops  chan func()
	kill chan struct{} // closed when the group is deleted
	done chan struct{} // closed when run returns
}

type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
	groupDead
)

func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

type member struct {
	id               string
	instanceID       *string
	clientID, host   string
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	assignment       []byte

	joinVersion int16
	joinReply   func(*kmsg.JoinGroupResponse) // set while the member waits in a rebalance
	syncReply   func(*kmsg.SyncGroupResponse) // set while it waits for the leader's assignment
	expiry      *time.Timer
	expiryGen   int
}

func newGroup(c *coordinator, id string, emptySince int64) *group {
	g := &group{
		c: c, id: id, emptySince: emptySince,
		members:    map[string]*member{},
		static:     map[string]string{},
		pendingIDs: map[string]time.Time{},
		ops:        make(chan func(), 64),
		kill:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	go g.run()
	return g
}

func (g *group) run() {
	defer close(g.done)
	for {
		select {
		case fn := <-g.ops:
			fn()
		case <-g.c.quit:
			g.stopTimers()
			return
		case <-g.kill:
			g.stopTimers()
			return
		}
	}
}

// post runs fn on the group's goroutine. It returns false when the
// coordinator is shutting down.
func (g *group) post(fn func()) bool {
	select {
	case g.ops <- fn:
		return true
	case <-g.c.quit:
		return false
	case <-g.done:
		return false
	}
}

func (g *group) stopTimers() {
	if g.rebalance != nil {
		g.rebalance.Stop()
	}
	for _, m := range g.members {
		if m.expiry != nil {
			m.expiry.Stop()
		}
	}
}

func newMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	if len(clientID) > 64 {
		clientID = clientID[:64]
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}

// join handles a JoinGroup on the group goroutine.
func (g *group) join(req *kmsg.JoinGroupRequest, clientID, host string, reply func(*kmsg.JoinGroupResponse)) {
	fail := func(code int16, memberID string) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.MemberID, resp.Generation = code, memberID, -1
		reply(resp)
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	rebalance := session
	if req.Version >= 1 {
		rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	switch {
	case g.state == groupDead:
		fail(kerr.CoordinatorNotAvailable.Code, req.MemberID)
		return
	case session < g.c.cfg.GroupMinSessionTimeout || session > g.c.cfg.GroupMaxSessionTimeout:
		fail(kerr.InvalidSessionTimeout.Code, req.MemberID)
		return
	case req.ProtocolType == "" || len(req.Protocols) == 0 || !g.supports(req.ProtocolType, req.Protocols):
		fail(kerr.InconsistentGroupProtocol.Code, req.MemberID)
		return
	}
	if req.MemberID == "" {
		id := newMemberID(clientID)
		if req.InstanceID != nil {
			if old, ok := g.static[*req.InstanceID]; ok {
				// A restarted static member takes its old place;
				// the old member id is fenced from now on.
				g.removeMember(g.members[old], kerr.FencedInstanceID.Code)
			}
		} else if req.Version >= 4 {
			// KIP-394: hand out the id first, so a client that
			// never comes back leaves no member behind; ids not
			// used within the session timeout expire.
			g.expirePendingIDs()
			if len(g.pendingIDs) >= g.c.cfg.GroupMaxSize {
				g.maxSizeReached(clientID, host)
				fail(kerr.GroupMaxSizeReached.Code, "")
				return
			}
			g.pendingIDs[id] = time.Now().Add(session)
			fail(kerr.MemberIDRequired.Code, id)
			return
		}
		if len(g.members) >= g.c.cfg.GroupMaxSize {
			g.maxSizeReached(clientID, host)
			fail(kerr.GroupMaxSizeReached.Code, "")
			return
		}
		m := &member{id: id, instanceID: req.InstanceID}
		g.updateMember(m, req, clientID, host, session, rebalance, reply)
		g.addMember(m)
		g.prepareRebalance()
		return
	}
	m := g.members[req.MemberID]
	if m == nil {
		expiry, pending := g.pendingIDs[req.MemberID]
		if !pending || time.Now().After(expiry) {
			delete(g.pendingIDs, req.MemberID)
			fail(kerr.UnknownMemberID.Code, req.MemberID)
			return
		}
		delete(g.pendingIDs, req.MemberID)
		if len(g.members) >= g.c.cfg.GroupMaxSize {
			g.maxSizeReached(clientID, host)
			fail(kerr.GroupMaxSizeReached.Code, req.MemberID)
			return
		}
		m = &member{id: req.MemberID, instanceID: req.InstanceID}
		g.updateMember(m, req, clientID, host, session, rebalance, reply)
		g.addMember(m)
		g.prepareRebalance()
		return
	}
	if code := g.checkInstance(m, req.InstanceID); code != 0 {
		fail(code, req.MemberID)
		return
	}
	changed := !sameProtocols(m.protocols, req.Protocols)
	g.updateMember(m, req, clientID, host, session, rebalance, reply)
	switch g.state {
	case groupPreparingRebalance:
		g.tryCompleteJoin()
	case groupCompletingRebalance, groupStable:
		if changed || m.id == g.leader || g.state == groupCompletingRebalance {
			g.prepareRebalance()
			return
		}
		// A follower rejoining with nothing new: tell it the current
		// generation without disturbing the others.
		m.joinReply = nil
		reply(g.joinResponse(m, req.Version))
		g.touch(m)
	case groupEmpty:
		g.prepareRebalance()
	}
}

func (g *group) expirePendingIDs() {
	now := time.Now()
	for id, expiry := range g.pendingIDs {
		if now.After(expiry) {
			delete(g.pendingIDs, id)
		}
	}
}

func (g *group) updateMember(m *member, req *kmsg.JoinGroupRequest, clientID, host string, session, rebalance time.Duration, reply func(*kmsg.JoinGroupResponse)) {
	m.clientID, m.host = clientID, host
	// Copy what the group keeps: kmsg decodes byte fields as slices of
	// the request's body, which must not stay pinned (its bytes count
	// against queued_max_request_bytes only until it is handled).
	protocols := slices.Clone(req.Protocols)
	for i := range protocols {
		protocols[i].Metadata = bytes.Clone(protocols[i].Metadata)
	}
	m.protocolType, m.protocols = req.ProtocolType, protocols
	m.sessionTimeout, m.rebalanceTimeout = session, rebalance
	m.joinVersion, m.joinReply = req.Version, reply
	if m.expiry != nil {
		m.expiry.Stop() // a member waiting in a join does not expire
	}
}

func (g *group) addMember(m *member) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	g.members[m.id] = m
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
}

// removeMember drops m, answering its parked requests with code.
func (g *group) removeMember(m *member, code int16) {
	if m == nil {
		return
	}
	if m.expiry != nil {
		m.expiry.Stop()
	}
	if m.joinReply != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version = m.joinVersion
		resp.ErrorCode, resp.MemberID, resp.Generation = code, m.id, -1
		m.joinReply(resp)
	}
	if m.syncReply != nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = code
		m.syncReply(resp)
	}
	delete(g.members, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if m.id == g.leader {
		g.leader = ""
	}
}

// checkInstance fences a request whose group.instance.id now belongs to
// another member id.
func (g *group) checkInstance(m *member, instanceID *string) int16 {
	if instanceID != nil {
		if id, ok := g.static[*instanceID]; ok && id != m.id {
			return kerr.FencedInstanceID.Code
		}
	}
	return 0
}

// supports reports whether a joining member can live in the group: same
// protocol type, and at least one protocol every member supports.
func (g *group) supports(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		if g.allSupport(p.Name, "") {
			return true
		}
	}
	return false
}

// allSupport reports whether every member but except supports protocol.
func (g *group) allSupport(protocol, except string) bool {
	for _, m := range g.members {
		if m.id == except {
			continue
		}
		found := false
		for _, p := range m.protocols {
			if p.Name == protocol {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || string(a[i].Metadata) != string(b[i].Metadata) {
			return false
		}
	}
	return true
}

// prepareRebalance starts a rebalance (or keeps the one under way) and
// completes it at once if every member has already joined.
func (g *group) prepareRebalance() {
	if g.state == groupCompletingRebalance {
		// Members waiting for the leader's assignment must rejoin.
		for _, m := range g.members {
			if m.syncReply != nil {
				resp := kmsg.NewPtrSyncGroupResponse()
				resp.ErrorCode = kerr.RebalanceInProgress.Code
				m.syncReply(resp)
				m.syncReply = nil
			}
		}
	}
	if g.state != groupPreparingRebalance {
		initial := g.state == groupEmpty
		g.state = groupPreparingRebalance
		wait := time.Duration(0)
		for _, m := range g.members {
			wait = max(wait, m.rebalanceTimeout)
		}
		// Kafka's group.initial.rebalance.delay.ms: a new group waits
		// for the other members starting with it, so they do not
		// each cause a rebalance.
		g.initialDelay = initial && g.c.cfg.GroupInitialRebalanceDelay > 0
		if g.initialDelay {
			wait = min(wait, g.c.cfg.GroupInitialRebalanceDelay)
		}
		g.startRebalanceTimer(wait)
	}
	g.tryCompleteJoin()
}

func (g *group) startRebalanceTimer(d time.Duration) {
	if g.rebalance != nil {
		g.rebalance.Stop()
	}
	g.rebalanceGen++
	gen := g.rebalanceGen
	g.rebalance = time.AfterFunc(d, func() {
		g.post(func() {
			if g.rebalanceGen == gen && g.state == groupPreparingRebalance {
				g.initialDelay = false
				g.completeJoin()
			}
		})
	})
}

// tryCompleteJoin completes the rebalance once every member has rejoined.
// During a new group's initial delay only the timer completes it.
func (g *group) tryCompleteJoin() {
	if g.state != groupPreparingRebalance || g.initialDelay {
		return
	}
	for _, m := range g.members {
		if m.joinReply == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin ends the join phase: members that did not rejoin are removed,
// the generation advances, and every joined member gets its answer (the
// leader with every member's metadata).
func (g *group) completeJoin() {
	if g.rebalance != nil {
		g.rebalance.Stop()
	}
	g.rebalanceGen++
	g.initialDelay = false
	for _, m := range g.members {
		if m.joinReply == nil {
			g.removeMember(m, kerr.UnknownMemberID.Code)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader, g.protocolType = groupEmpty, "", "", ""
		g.emptySince = time.Now().UnixMilli()
		return
	}
	g.protocol = g.chooseProtocol()
	if _, ok := g.members[g.leader]; !ok {
		for id := range g.members {
			g.leader = id
			break
		}
	}
	g.state = groupCompletingRebalance
	for _, m := range g.members {
		m.assignment = nil
		reply := m.joinReply
		m.joinReply = nil
		reply(g.joinResponse(m, m.joinVersion))
		g.touch(m)
	}
}

// chooseProtocol picks the protocol most members list first among those all
// support, as Kafka's vote.
func (g *group) chooseProtocol() string {
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if g.allSupport(p.Name, "") {
				votes[p.Name]++
				break
			}
		}
	}
	best, n := "", -1
	for _, m := range g.members { // deterministic tie-break by a member's preference
		for _, p := range m.protocols {
			if votes[p.Name] > n {
				best, n = p.Name, votes[p.Name]
			}
		}
	}
	return best
}

func (g *group) joinResponse(m *member, version int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = version
	resp.Generation = g.generation
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	resp.LeaderID, resp.MemberID = g.leader, m.id
	if m.id == g.leader {
		for _, o := range g.members {
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID, jm.InstanceID = o.id, o.instanceID
			for _, proto := range o.protocols {
				if proto.Name == g.protocol {
					jm.ProtocolMetadata = proto.Metadata
				}
			}
			resp.Members = append(resp.Members, jm)
		}
	}
	return resp
}

// touch restarts m's session timer.
func (g *group) touch(m *member) {
	if m.expiry != nil {
		m.expiry.Stop()
	}
	m.expiryGen++
	gen := m.expiryGen
	m.expiry = time.AfterFunc(m.sessionTimeout, func() {
		g.post(func() {
			if g.members[m.id] != m || m.expiryGen != gen || m.joinReply != nil {
				return
			}
			g.c.log.Info("group member session expired", "group", g.id, "member", m.id)
			g.removeMember(m, kerr.UnknownMemberID.Code)
			g.afterDeparture()
		})
	})
}

// afterDeparture rebalances the rest of the group after members left.
func (g *group) afterDeparture() {
	switch g.state {
	case groupPreparingRebalance:
		g.tryCompleteJoin()
	case groupCompletingRebalance, groupStable:
		g.prepareRebalance()
	}
	if len(g.members) == 0 && g.state == groupPreparingRebalance {
		g.completeJoin()
	}
}

// sync handles a SyncGroup on the group goroutine.
func (g *group) sync(req *kmsg.SyncGroupRequest, reply func(*kmsg.SyncGroupResponse)) {
	respond := func(code int16, assignment []byte) {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode, resp.MemberAssignment = code, assignment
		pt, p := g.protocolType, g.protocol
		resp.ProtocolType, resp.Protocol = &pt, &p
		reply(resp)
	}
	m := g.members[req.MemberID]
	switch {
	case g.state == groupDead:
		respond(kerr.CoordinatorNotAvailable.Code, nil)
		return
	case m == nil:
		respond(kerr.UnknownMemberID.Code, nil)
		return
	}
	if code := g.checkInstance(m, req.InstanceID); code != 0 {
		respond(code, nil)
		return
	}
	switch {
	case req.Generation != g.generation:
		respond(kerr.IllegalGeneration.Code, nil)
		return
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType, req.Protocol != nil && *req.Protocol != g.protocol:
		respond(kerr.InconsistentGroupProtocol.Code, nil)
		return
	}
	g.touch(m)
	switch g.state {
	case groupPreparingRebalance:
		respond(kerr.RebalanceInProgress.Code, nil)
	case groupStable:
		respond(0, m.assignment)
	case groupCompletingRebalance:
		m.syncReply = func(r *kmsg.SyncGroupResponse) {
			r.Version = req.Version
			reply(r)
		}
		if m.id != g.leader {
			return
		}
		for _, a := range req.GroupAssignment {
			if o := g.members[a.MemberID]; o != nil {
				o.assignment = bytes.Clone(a.MemberAssignment) // not a slice of the request body
			}
		}
		g.state = groupStable
		for _, o := range g.members {
			if o.syncReply != nil {
				r := o.syncReply
				o.syncReply = nil
				resp := kmsg.NewPtrSyncGroupResponse()
				resp.MemberAssignment = o.assignment
				pt, p := g.protocolType, g.protocol
				resp.ProtocolType, resp.Protocol = &pt, &p
				r(resp)
			}
		}
	default:
		respond(kerr.UnknownMemberID.Code, nil)
	}
}

// heartbeat handles a Heartbeat on the group goroutine.
func (g *group) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	m := g.members[req.MemberID]
	switch {
	case g.state == groupDead:
		return kerr.CoordinatorNotAvailable.Code
	case m == nil:
		return kerr.UnknownMemberID.Code
	}
	if code := g.checkInstance(m, req.InstanceID); code != 0 {
		return code
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	g.touch(m)
	switch g.state {
	case groupPreparingRebalance, groupCompletingRebalance:
		return kerr.RebalanceInProgress.Code
	case groupStable:
		return 0
	}
	return kerr.UnknownMemberID.Code
}

// leave removes members (by member id, or by instance id for static
// members); it returns a code per member.
func (g *group) leave(ids []string, instances []*string) []int16 {
	codes := make([]int16, len(ids))
	left := false
	for i, id := range ids {
		var inst *string
		if i < len(instances) {
			inst = instances[i]
		}
		if inst != nil {
			owner, ok := g.static[*inst]
			switch {
			case !ok:
				codes[i] = kerr.UnknownMemberID.Code
				continue
			case id != "" && owner != id:
				codes[i] = kerr.FencedInstanceID.Code
				continue
			}
			id = owner
		}
		m := g.members[id]
		if m == nil {
			codes[i] = kerr.UnknownMemberID.Code
			continue
		}
		g.removeMember(m, kerr.UnknownMemberID.Code)
		left = true
	}
	if left {
		g.afterDeparture()
	}
	return codes
}

// commitCheck validates an OffsetCommit's group fields.
func (g *group) commitCheck(generation int32, memberID string, instanceID *string) int16 {
	switch {
	case g.state == groupDead:
		return kerr.CoordinatorNotAvailable.Code
	case generation < 0 && memberID == "" && g.state == groupEmpty:
		return 0 // a commit by a tool or a consumer that assigns partitions itself
	case g.state == groupCompletingRebalance:
		return kerr.RebalanceInProgress.Code
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	if code := g.checkInstance(m, instanceID); code != 0 {
		return code
	}
	if generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	g.touch(m)
	return 0
}

// maxSizeReached logs and counts a JoinGroup refused with
// GROUP_MAX_SIZE_REACHED.
func (g *group) maxSizeReached(clientID, host string) {
	if g.c.limits != nil {
		g.c.limits.hit(limitGroupMaxSize, "join refused: the group has group_max_size members",
			"group", g.id, "client_id", clientID, "client", host, "group_max_size", g.c.cfg.GroupMaxSize)
	}
}

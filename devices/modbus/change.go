package modbus

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Change is a change of the devices a Poller polls (Poller.Change).
type Change struct {
	// Remove are the ids of the devices to stop polling.
	Remove []string
	// Add are the devices to start polling. A device whose id is in
	// Remove too is restarted: it stops, then starts again as given
	// (another connection, unit, schedule, class or plan).
	Add []Device
}

// Change stops polling the devices of ch.Remove and starts polling those
// of ch.Add, while Run runs or before it starts. The other devices are not
// disturbed: they keep their scheduling goroutine, due times, state and
// connection, and a change that touches devices of their connection is
// applied between two polls.
//
// Seq: an added device whose id the Poller polled before (removed by this
// Change or an earlier one) continues from that device's next seq, or from
// its Device.Seq if that is higher, so a device's seqs never repeat nor
// leave a gap across a restart. The samples a removed device has taken
// but not yet emitted are emitted before Change returns, and before the
// first poll of the device that replaces it, so a device's samples reach
// Emit in seq order. An added device's first poll is its first due time
// after the change; on an interval schedule it joins the scan of its
// connection's devices of the same interval (their phase), or, the first
// of its interval there, takes its connection's place among the
// connections with devices of that interval (ScanPhases). Its health
// starts anew (Polls, Samples... from 0), and its Report sees only its own
// samples.
//
// Change checks ch first (an id to remove that is not polled, an id added
// twice or already polled and not removed, an invalid device: the errors
// wrap ErrInvalidConfig) and changes nothing when it refuses it. Changes
// are serialised. While Run runs, Change returns once every affected
// scheduling goroutine has applied its part; it waits for a poll or an
// Emit in progress on their connections (Emit may block: backpressure),
// and returns ErrStopped if Run ends first, with the change partly
// applied. After Run has returned it returns ErrStopped. A Conn that no
// device uses any more after Change has returned is the caller's to
// close; Conns of added devices need not be new.
func (p *Poller) Change(ch Change) error {
	p.changeMu.Lock()
	defer p.changeMu.Unlock()
	p.mu.Lock()
	stopped := p.stopped
	p.mu.Unlock()
	if stopped {
		return ErrStopped
	}

	// Check everything before changing anything.
	byID := make(map[string]*device, len(p.devs))
	for _, d := range p.devs {
		byID[d.ID] = d
	}
	removing := make(map[string]*device, len(ch.Remove))
	for _, id := range ch.Remove {
		d := byID[id]
		switch {
		case d == nil:
			return fmt.Errorf("%w: remove %q: no device has that id", ErrInvalidConfig, id)
		case removing[id] != nil:
			return fmt.Errorf("%w: remove %q: listed twice", ErrInvalidConfig, id)
		}
		removing[id] = d
	}
	placed := make([]*device, 0, len(p.devs)+len(ch.Add)) // polled after the change
	for _, d := range p.devs {
		if removing[d.ID] == nil {
			placed = append(placed, d)
		}
	}
	kept := slices.Clone(placed)
	adds := make([]*device, 0, len(ch.Add))
	added := map[string]bool{}
	for i := range ch.Add {
		d := &device{Device: ch.Add[i]}
		if err := d.check(); err != nil {
			return fmt.Errorf("%w: add[%d] (%q): %v", ErrInvalidConfig, i, d.ID, err)
		}
		if added[d.ID] || (byID[d.ID] != nil && removing[d.ID] == nil) {
			return fmt.Errorf("%w: add[%d]: id %q is used twice", ErrInvalidConfig, i, d.ID)
		}
		added[d.ID] = true
		sched, err := d.Schedule.compile()
		if err != nil {
			return fmt.Errorf("device %q: %w", d.ID, err)
		}
		if s, ok := sched.(intervalSchedule); ok {
			s.phase = phaseFor(placed, d.Conn, s.every)
			sched = s
		}
		d.sched = sched
		placed = append(placed, d)
		adds = append(adds, d)
	}

	// Stop the removed devices, connection by connection, and collect
	// their next seqs: a device that moves to another connection must not
	// poll there before its samples here are emitted.
	seqs := map[string]uint64{}
	p.mu.Lock()
	if p.run == nil { // nothing runs: change the heaps here
		for _, d := range removing {
			g := p.group(d.Conn)
			g.due.remove(d) // init follows with the adds below, or in Run
			seqs[d.ID] = d.Seq
		}
		p.mu.Unlock()
	} else {
		p.mu.Unlock()
		byGroup := map[*group]groupChange{}
		for _, d := range removing {
			g := p.group(d.Conn)
			c, ok := byGroup[g]
			if !ok {
				c = groupChange{applied: make(chan struct{}), seqs: map[string]uint64{}}
			}
			c.remove = append(c.remove, d)
			byGroup[g] = c
		}
		if err := send(byGroup, kept); err != nil {
			return err
		}
		for _, c := range byGroup {
			maps.Copy(seqs, c.seqs)
		}
	}

	// Start the added devices.
	p.mu.Lock()
	for id, seq := range seqs {
		p.seqs[id] = seq
	}
	p.devs = slices.DeleteFunc(p.devs, func(d *device) bool { return removing[d.ID] != nil })
	p.groups = slices.DeleteFunc(p.groups, func(g *group) bool {
		return !slices.ContainsFunc(p.devs, func(d *device) bool { return d.Conn == g.conn })
	})
	now := p.now()
	fresh := map[*group]bool{} // no goroutine yet
	byGroup := map[*group]groupChange{}
	for _, d := range adds {
		if seq, ok := p.seqs[d.ID]; ok {
			d.Seq = max(d.Seq, seq)
			delete(p.seqs, d.ID)
		}
		d.due = d.sched.next(now)
		d.initHealth()
		p.devs = append(p.devs, d)
		g := p.group(d.Conn)
		if g == nil {
			g = &group{conn: d.Conn}
			p.groups = append(p.groups, g)
			fresh[g] = true
		}
		if p.run == nil || fresh[g] {
			g.due.push(d)
			continue
		}
		c, ok := byGroup[g]
		if !ok {
			c = groupChange{applied: make(chan struct{})}
		}
		c.add = append(c.add, d)
		byGroup[g] = c
	}
	for _, g := range p.groups {
		if p.run == nil || fresh[g] {
			g.due.init()
		}
	}
	slices.SortFunc(p.devs, func(a, b *device) int { return cmp.Compare(a.ID, b.ID) })
	if p.stopped {
		p.mu.Unlock()
		return ErrStopped
	}
	if p.run != nil {
		for g := range fresh {
			p.startGroup(g)
		}
	}
	p.mu.Unlock()
	return send(byGroup, placed)
}

// send sends each running group its change and waits until every one has
// applied it, and until those left without a device (none of kept on
// their connection) have returned. It returns ErrStopped if a goroutine
// returns first (Run is ending).
func send(changes map[*group]groupChange, kept []*device) error {
	for g, c := range changes {
		g.changes <- c // buffered: Change sends one change at a time
	}
	for g, c := range changes {
		select {
		case <-c.applied:
		case <-g.done:
			select {
			case <-c.applied: // then it returned, left without device
			default:
				return ErrStopped
			}
		}
		if !slices.ContainsFunc(kept, func(d *device) bool { return d.Conn == g.conn }) {
			<-g.done // it returns at once: its end of scan is done when Change returns
		}
	}
	return nil
}

// applyChange applies c on g's goroutine: it emits the batch before
// removing devices (their samples taken go out before any of their
// replacements'), removes and adds devices, drops the spare Values, then
// closes c.applied. An
// Emit error is returned; a ctx that ends returns nil, c not applied.
func (p *Poller) applyChange(ctx context.Context, g *group, b *batch, c groupChange) error {
	if len(c.remove) > 0 && len(b.samples) > 0 {
		if err := p.emitBatch(ctx, g, b); err != nil || ctx.Err() != nil {
			return err
		}
	}
	for _, d := range c.remove {
		g.due.remove(d)
		c.seqs[d.ID] = d.Seq
	}
	if len(c.add) > 0 {
		now := p.now()
		p.mu.Lock()
		for _, d := range c.add {
			d.due = d.sched.next(now)
			d.health.NextDue = d.due
			g.due.push(d)
		}
		p.mu.Unlock()
	}
	g.due.init()
	// A change may replace devices' classes (a reload): spares of the
	// old ones would never be taken again.
	b.free = nil
	close(c.applied)
	return nil
}

// phaseFor is the phase of a device polled every interval on conn, given
// the devices placed already: that of conn's devices of the same interval
// (their scan), else conn's among the connections with devices of that
// interval (ScanPhases).
func phaseFor(placed []*device, conn *Conn, every time.Duration) time.Duration {
	names := []string{conn.Name()}
	for _, d := range placed {
		s, ok := d.sched.(intervalSchedule)
		if !ok || s.every != every {
			continue
		}
		if d.Conn == conn {
			return s.phase
		}
		names = append(names, d.Conn.Name())
	}
	return ScanPhases(names, every)[conn.Name()]
}

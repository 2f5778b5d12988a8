package modbus

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// Device is one device a Poller polls.
type Device struct {
	ID      string         // record key of its samples; devices.ValidateDevice
	Factory string         // devices.ValidateName
	Class   *devices.Class // the register map; its Name and Units go into samples
	// Tags are the device's static tags (devices.ValidateTag), put into
	// every sample as they are: shared, never modified. nil: none.
	Tags map[string]string
	// Plan is the read plan, if the Conn's devices need limits other
	// than Modbus's own (devices.Class.Compile); empty means Class.Plan.
	// Reads run in its order.
	Plan     devices.Plan
	Conn     *Conn // the connection the device is reached through
	Unit     uint8 // the device's unit id on Conn
	Schedule Schedule
	// Seq is the seq of the device's next sample. The caller recovers it
	// (from the gateway's spool: the last seq written plus one), so seq
	// stays continuous across restarts.
	Seq uint64
	// Report, if not nil, decides whether a poll's sample is emitted
	// (report by exception): a sample it refuses is counted in
	// DeviceHealth.Suppressed and takes no seq, so the seqs emitted stay
	// consecutive. It is called on the device's connection goroutine, one
	// sample at a time, in poll order, and must not keep s's maps for
	// writing (it may keep them for reading: the Poller does not change a
	// sample's maps after the poll). s is a copy: what Report changes in
	// it is not emitted.
	Report func(s *devices.Sample) bool
}

// EmitFunc receives the samples of a Poller, from the goroutine of their
// connection, in poll order. A call carries the samples of consecutive
// polls of one connection (a scan: see the package documentation): they
// are emitted before the connection's goroutine waits for its next due
// time, or once EmitBatch samples are waiting or the first of them is
// EmitDelay old. While Emit blocks, that connection's devices are not
// polled (backpressure: their due times pass and are skipped, not queued).
// A nil error means the samples are taken and their seqs used; an error
// stops the Poller (Run returns it): samples the caller cannot take must
// not be dropped silently. Emit must honour ctx, and must not keep the
// slice after it returns (the Poller reuses it), nor, with WithValues,
// the samples' Values.
type EmitFunc func(ctx context.Context, samples []devices.Sample) error

const (
	// EmitBatch is the most samples one Emit call carries.
	EmitBatch = 256
	// EmitDelay bounds how long a sample waits in the Poller for the rest
	// of its scan: a batch is emitted at the first poll that ends this
	// long after its first sample's poll started.
	EmitDelay = 100 * time.Millisecond
)

// DeviceHealth is a snapshot of one device's polling state.
type DeviceHealth struct {
	ID       string
	Factory  string
	Class    string
	Conn     string // ConnConfig.Name
	Unit     uint8
	Schedule string // Schedule.String

	LastAttempt         time.Time     // start of the last poll; zero before the first
	LastSuccess         time.Time     // start of the last poll that produced a sample
	ConsecutiveFailures int           // polls without a sample since the last one with
	LastError           string        // first error of the last poll that had one (also of a partial sample); "" if none yet
	LastRoundTrip       time.Duration // duration of the last poll's reads, first request to last reply
	NextDue             time.Time     // when the next poll is due
	SlowedDown          bool          // ConsecutiveFailures reached PollerConfig.FailureThreshold
	NextSeq             uint64        // seq of the next sample

	Polls      uint64 // polls attempted
	Samples    uint64 // samples emitted
	Suppressed uint64 // samples Device.Report refused (no seq used)
	Failures   uint64 // polls without a sample
	Overruns   uint64 // polls after which at least one due time had passed unpolled
}

// Poller polls devices on their schedules and emits one sample per poll.
// Devices are grouped by Conn; each Conn gets one scheduling goroutine with
// a timer heap of its devices' due times, so a dead device delays only the
// devices sharing its connection (whose requests are serial anyway). See
// the package documentation for the sample and backoff rules.
type Poller struct {
	cfg     PollerConfig
	log     *slog.Logger
	now     func() time.Time
	values  bool // WithValues
	emit    EmitFunc
	running atomic.Bool

	// changeMu serialises Change. The device set (groups, devs, seqs)
	// changes only under changeMu and mu together, so Change reads it
	// under changeMu alone.
	changeMu sync.Mutex

	mu      sync.Mutex
	groups  []*group
	devs    []*device         // sorted by ID, for Health
	seqs    map[string]uint64 // next seq of the devices Change removed, by id
	run     *runState         // set while Run runs
	stopped bool              // Run has returned, or is returning
	wg      sync.WaitGroup    // the scheduling goroutines
}

// runState is what Run shares with the scheduling goroutines it starts,
// and with those Change starts while it runs.
type runState struct {
	ctx  context.Context
	fail func(error) // records the first error and ends Run
}

// group is the devices of one Conn, owned by its scheduling goroutine.
type group struct {
	conn    *Conn
	due     dueHeap
	changes chan groupChange // Change to the running goroutine; buffered, one at a time
	done    chan struct{}    // closed when the goroutine has returned
}

// groupChange is Change's message to a running scheduling goroutine.
type groupChange struct {
	remove  []*device
	add     []*device         // their sched and health set, due not yet
	applied chan struct{}     // closed once applied; not closed if the goroutine stops first
	seqs    map[string]uint64 // filled before applied: the next seq of each removed device
}

// device is a Device and its state. The scheduling goroutine owns the
// fields; Poller.mu guards health for Health.
type device struct {
	Device
	plan   devices.Plan // Plan or Class.Plan
	sched  schedule
	due    time.Time
	health DeviceHealth
}

// NewPoller validates cfg (after WithDefaults) and the devices. Health
// shows each device's first due time as if Run started now; Run computes
// them again when it starts. Options: WithLogger, WithClock, WithValues.
// NewPoller starts nothing: call Run. The Conns stay the caller's: close
// them after Run has returned.
func NewPoller(cfg PollerConfig, devs []Device, emit EmitFunc, opts ...Option) (*Poller, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if emit == nil {
		return nil, fmt.Errorf("%w: emit function is nil", ErrInvalidConfig)
	}
	o := buildOptions(opts)
	p := &Poller{cfg: cfg, log: o.log, now: o.now, values: o.values, emit: emit, seqs: map[string]uint64{}}
	seen := map[string]bool{}
	now := p.now()
	for i := range devs {
		d := &device{Device: devs[i]}
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("%w: devices[%d] (%q): %v", ErrInvalidConfig, i, d.ID, err)
		}
		if seen[d.ID] {
			return nil, fmt.Errorf("%w: devices[%d]: id %q is used twice", ErrInvalidConfig, i, d.ID)
		}
		seen[d.ID] = true
		sched, err := d.Schedule.compile()
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", d.ID, err)
		}
		d.sched = sched
		p.devs = append(p.devs, d)
	}
	// Phases: per interval, over the connections with devices of it.
	conns := map[time.Duration][]string{}
	for _, d := range p.devs {
		if s, ok := d.sched.(intervalSchedule); ok {
			conns[s.every] = append(conns[s.every], d.Conn.Name())
		}
	}
	phases := map[time.Duration]map[string]time.Duration{}
	for every, names := range conns {
		phases[every] = ScanPhases(names, every)
	}
	for _, d := range p.devs {
		if s, ok := d.sched.(intervalSchedule); ok {
			s.phase = phases[s.every][d.Conn.Name()]
			d.sched = s
		}
		d.due = d.sched.next(now)
		d.initHealth()
		g := p.group(d.Conn)
		if g == nil {
			g = &group{conn: d.Conn}
			p.groups = append(p.groups, g)
		}
		g.due.push(d)
	}
	for _, g := range p.groups {
		g.due.init()
	}
	slices.SortFunc(p.devs, func(a, b *device) int { return cmp.Compare(a.ID, b.ID) })
	return p, nil
}

// group returns conn's group, nil if it has none.
func (p *Poller) group(conn *Conn) *group {
	for _, g := range p.groups {
		if g.conn == conn {
			return g
		}
	}
	return nil
}

// initHealth sets d's health as it is before its first poll.
func (d *device) initHealth() {
	d.health = DeviceHealth{
		ID: d.ID, Factory: d.Factory, Class: d.Class.Name, Conn: d.Conn.Name(), Unit: d.Unit,
		Schedule: d.Schedule.String(), NextDue: d.due, NextSeq: d.Seq,
	}
}

// check validates a device's identity, tags, class, plan and unit.
func (d *device) check() error {
	if err := devices.ValidateDevice(d.ID); err != nil {
		return fmt.Errorf("id: %v", err)
	}
	if err := devices.ValidateName(d.Factory); err != nil {
		return fmt.Errorf("factory: %v", err)
	}
	if len(d.Tags) > devices.MaxTags {
		return fmt.Errorf("tags: %d, at most %d", len(d.Tags), devices.MaxTags)
	}
	for k, v := range d.Tags {
		if err := devices.ValidateTag(k, v); err != nil {
			return fmt.Errorf("tags.%s: %v", k, err)
		}
	}
	if d.Class == nil {
		return fmt.Errorf("class: nil")
	}
	if d.Conn == nil {
		return fmt.Errorf("conn: nil")
	}
	d.plan = d.Plan
	if len(d.plan.Reads) == 0 {
		d.plan = d.Class.Plan
	}
	if len(d.plan.Reads) == 0 {
		return fmt.Errorf("plan: class %q has no reads (no fields?)", d.Class.Name)
	}
	for i, r := range d.plan.Reads {
		req := readRequest{unit: d.Unit, table: r.Table, address: r.Address, quantity: r.Quantity}
		if err := req.check(d.Conn.Config().Transport.Bus()); err != nil {
			return fmt.Errorf("plan read %d (%s): %v", i, r.String(), err)
		}
	}
	return nil
}

// Run polls until ctx ends, then returns nil, or until Emit fails, then
// returns its error. Run may be called once. Each device's first poll is
// its first due time after Run starts.
func (p *Poller) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errOnce sync.Once
		runErr  error
	)
	p.mu.Lock()
	p.run = &runState{ctx: ctx, fail: func(err error) {
		errOnce.Do(func() { runErr = err })
		cancel()
	}}
	now := p.now()
	for _, g := range p.groups {
		for _, e := range g.due {
			e.d.due = e.d.sched.next(now)
			e.d.health.NextDue = e.d.due
		}
		g.due.init()
		p.startGroup(g)
	}
	p.mu.Unlock()

	<-ctx.Done()
	// No goroutine starts after this (Change checks stopped), so the
	// wait below sees them all.
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.wg.Wait()
	return runErr
}

// startGroup starts g's scheduling goroutine. p.mu is held and Run runs.
func (p *Poller) startGroup(g *group) {
	g.changes = make(chan groupChange, 1)
	g.done = make(chan struct{})
	run := p.run
	p.wg.Go(func() {
		defer close(g.done)
		if err := p.runGroup(run.ctx, g); err != nil {
			run.fail(err)
		}
	})
}

// Health returns a snapshot of every device's state, sorted by id. It is
// safe to call concurrently with Run.
func (p *Poller) Health() []DeviceHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]DeviceHealth, len(p.devs))
	for i, d := range p.devs {
		out[i] = d.health
	}
	return out
}

// runGroup is the scheduling loop of one connection: wait for the earliest
// due device, poll it, reschedule it; end the scan (the Conn's
// CloseAfterScan) and emit the samples taken before waiting again (or
// emit when the batch is full or old). Between two polls it applies the
// changes Change sends; it returns nil once a change leaves it no device.
func (p *Poller) runGroup(ctx context.Context, g *group) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var b batch
	scanning := false // a poll ran since the last end of a scan
	defer func() {
		if scanning {
			g.conn.endScan() // a scan cut short by Run's end ends too
		}
	}()
	// scratch holds each reply's data while it is decoded: the largest
	// read's (125 registers or 2000 bits) fits.
	scratch := make([]byte, 0, 2*devices.MaxReadRegisters)
	// now is the end of the last poll when nothing but that poll's
	// bookkeeping has run since (the scan's next poll is due then, or not),
	// zero when the clock must be read again: one clock read per poll
	// saved of the three, a fifth of the clock reads of a poll of four.
	var now time.Time
	for {
		select {
		case c := <-g.changes:
			now = time.Time{}
			if err := p.applyChange(ctx, g, &b, c); err != nil || ctx.Err() != nil || len(g.due) == 0 {
				return err
			}
		default:
		}
		d := g.due[0].d
		if now.IsZero() {
			now = p.now()
		}
		if wait := d.due.Sub(now); wait > 0 {
			now = time.Time{}
			if scanning {
				// Before the emit, which may block: the connection is
				// not held idle meanwhile.
				g.conn.endScan()
				scanning = false
			}
			if len(b.samples) > 0 {
				// Emit before sleeping; it may block (backpressure), so
				// look at the clock again afterwards.
				if err := p.emitBatch(ctx, g, &b); err != nil || ctx.Err() != nil {
					return err
				}
				continue
			}
			if wait >= spareValuesWait {
				b.free = nil
			}
			timer.Reset(wait)
			select {
			case <-timer.C:
			case c := <-g.changes:
				if err := p.applyChange(ctx, g, &b, c); err != nil || ctx.Err() != nil || len(g.due) == 0 {
					return err
				}
				continue
			case <-ctx.Done():
				return nil
			}
		}
		sample, ok, end := p.pollOnce(ctx, d, scratch, &b.free)
		if ctx.Err() != nil {
			return nil
		}
		now = end
		scanning = true
		g.due.rescheduled() // d, at the top
		if !ok {
			if sample.Values != nil {
				b.free.put(d.Class, sample.Values)
			}
			continue
		}
		if d.Report != nil && !report(d, sample) {
			p.mu.Lock()
			d.health.Suppressed++
			p.mu.Unlock()
			continue
		}
		b.add(d, sample)
		if len(b.samples) >= EmitBatch || now.Sub(b.samples[0].Time) >= EmitDelay {
			now = time.Time{}
			if err := p.emitBatch(ctx, g, &b); err != nil || ctx.Err() != nil {
				return err
			}
		}
	}
}

// report asks d.Report whether to emit s. It takes s by value: a Sample
// whose address goes to a function value is on the heap, and runGroup's
// would be, for every poll of every device.
func report(d *device, s devices.Sample) bool { return d.Report(&s) }

// batch is the samples of one connection waiting to be emitted, and the
// device of each, and the Values of samples already emitted (WithValues),
// for the connection's next polls.
type batch struct {
	samples []devices.Sample
	devs    []*device
	free    valuesFree
}

// spareValuesWait is the wait for a next poll from which a connection
// gives its spare Values (valuesFree) to the garbage collector. A
// connection polling back to back, or nearly, keeps them: allocating and
// collecting one per poll was a third of a poll's own work. One that
// scans once a second would keep one per device for nothing: at 10,000
// devices that was 9 MiB more resident and no CPU saved.
const spareValuesWait = 100 * time.Millisecond

// valuesFree holds Values for reuse, by class (a connection's devices
// are of a few classes, most often one: a list, not a map), at most
// EmitBatch each.
type valuesFree []classValues

type classValues struct {
	class *devices.Class
	free  []*devices.Values
}

// get returns an empty Values for a sample of class c.
func (f *valuesFree) get(c *devices.Class) *devices.Values {
	for i := range *f {
		if cv := &(*f)[i]; cv.class == c {
			if n := len(cv.free); n > 0 {
				v := cv.free[n-1]
				cv.free = cv.free[:n-1]
				return v
			}
			break
		}
	}
	return devices.NewValues(c)
}

// put takes back v, of a sample of class c nobody uses any more.
func (f *valuesFree) put(c *devices.Class, v *devices.Values) {
	i := 0
	for i < len(*f) && (*f)[i].class != c {
		i++
	}
	if i == len(*f) {
		*f = append(*f, classValues{class: c})
	}
	if cv := &(*f)[i]; len(cv.free) < EmitBatch {
		v.Reset()
		cv.free = append(cv.free, v)
	}
}

// add takes d's sample into the batch and moves d's seq past it.
func (b *batch) add(d *device, s devices.Sample) {
	b.samples = append(b.samples, s)
	b.devs = append(b.devs, d)
	d.Seq++
}

// reset empties the batch, keeping its arrays and taking back its
// samples' Values: Emit has returned.
func (b *batch) reset() {
	for i := range b.samples {
		if v := b.samples[i].Values; v != nil {
			b.free.put(b.devs[i].Class, v)
		}
	}
	clear(b.samples) // let the garbage collector have the field maps
	b.samples, b.devs = b.samples[:0], b.devs[:0]
}

// emitBatch emits b and records the samples in their devices' health. On
// an error the batch's seqs go back unused. A canceled ctx drops the batch
// (those polls' samples are not taken) and returns nil.
func (p *Poller) emitBatch(ctx context.Context, g *group, b *batch) error {
	defer b.reset()
	if err := p.emit(ctx, b.samples); err != nil {
		for i := len(b.devs) - 1; i >= 0; i-- {
			b.devs[i].Seq = b.samples[i].Seq
		}
		if ctx.Err() != nil {
			return nil
		}
		first := b.samples[0]
		more := ""
		if n := len(b.samples); n > 1 {
			more = fmt.Sprintf(" and %d more", n-1)
		}
		return fmt.Errorf("modbus: emit samples of connection %s (device %s seq %d%s): %w", g.conn.Name(), first.Device, first.Seq, more, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, d := range b.devs {
		d.health.Samples++
		d.health.NextSeq = b.samples[i].Seq + 1
	}
	return nil
}

// pollOnce polls d, sets its next due time and health, and returns its
// sample, whether there is one and when the poll ended. A canceled ctx
// leaves d as it was. scratch and free are poll's.
func (p *Poller) pollOnce(ctx context.Context, d *device, scratch []byte, free *valuesFree) (devices.Sample, bool, time.Time) {
	start := p.now()
	sample, ok, firstErr := p.poll(ctx, d, start, scratch, free)
	if ctx.Err() != nil {
		return devices.Sample{}, false, time.Time{}
	}
	end := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	h := &d.health
	h.Polls++
	h.LastAttempt = start
	h.LastRoundTrip = end.Sub(start)
	if firstErr != nil {
		h.LastError = firstErr.Error()
	}
	if ok {
		if h.ConsecutiveFailures >= p.cfg.FailureThreshold {
			p.log.Info("modbus: device answers again; back to its schedule",
				"device", d.ID, "conn", d.Conn.Name(), "unit", d.Unit, "failures", h.ConsecutiveFailures)
		}
		h.LastSuccess = start
		h.ConsecutiveFailures = 0
	} else {
		h.Failures++
		h.ConsecutiveFailures++
		if h.ConsecutiveFailures == p.cfg.FailureThreshold {
			p.log.Warn("modbus: device failing; polling it less often until it answers",
				"device", d.ID, "conn", d.Conn.Name(), "unit", d.Unit, "failures", h.ConsecutiveFailures, "err", h.LastError)
		}
	}
	next, overrun := p.nextDue(d.sched, d.due, end, h.ConsecutiveFailures)
	if overrun {
		h.Overruns++
	}
	h.SlowedDown = h.ConsecutiveFailures >= p.cfg.FailureThreshold
	h.NextDue = next
	d.due = next
	return sample, ok, end
}

// nextDue is the due time after the poll of due time due that ended at
// end, with failures consecutive failed polls. Due times that passed
// during the poll (or its emit) are skipped; overrun reports that some
// were. From FailureThreshold failures on, the wait is the schedule's
// period times 2, 4, 8... up to MaxBackoff (never less than the period),
// rounded up to the schedule's next due time.
func (p *Poller) nextDue(sched schedule, due, end time.Time, failures int) (next time.Time, overrun bool) {
	regular := sched.next(due)
	next = sched.next(maxTime(end, due))
	overrun = next.After(regular)
	if failures < p.cfg.FailureThreshold {
		return next, overrun
	}
	period := sched.period(due)
	if period <= 0 || period >= p.cfg.MaxBackoff {
		return next, overrun
	}
	delay := p.cfg.MaxBackoff
	if shift := failures - p.cfg.FailureThreshold + 1; shift < 30 {
		delay = min(period<<shift, p.cfg.MaxBackoff)
	}
	if later := sched.next(due.Add(delay - time.Nanosecond)); later.After(next) {
		next = later
	}
	return next, overrun
}

// poll runs d's plan once. It returns the sample and whether it is to be
// emitted (at least one read succeeded), and the poll's first error.
// scratch (capacity for the largest read's data, or nil) holds each reply
// while it is decoded; free has the Values to reuse (WithValues).
func (p *Poller) poll(ctx context.Context, d *device, start time.Time, scratch []byte, free *valuesFree) (devices.Sample, bool, error) {
	s := devices.Sample{
		Factory: d.Factory,
		Device:  d.ID,
		Class:   d.Class.Name,
		Time:    start,
		Seq:     d.Seq,
		Tags:    d.Tags,
		Units:   d.Class.Units,
	}
	if p.values && d.Report == nil {
		s.Values = free.get(d.Class)
	} else {
		s.Fields = make(map[string]devices.Value, len(d.Class.Fields))
	}
	succeeded, firstErr := readPlan(ctx, d.Conn, d.Unit, d.plan, &s, scratch, nil)
	if ctx.Err() != nil {
		return devices.Sample{}, false, nil
	}
	return s, succeeded > 0, firstErr
}

// readPlan runs plan's reads on unit of conn in order, decoding each
// reply into s or recording its error there, as one poll does: after a
// connection-level error the later reads are not tried (a dead device
// costs one timeout per poll, not one per read) and their fields get a
// "not read" error. each, if not nil, sees every read with its reply's
// data (valid during the call) or its error. Each reply's data is put in
// scratch, whose capacity is for the largest read or which is nil. readPlan
// returns how many reads succeeded and the first error; it stops early,
// with s incomplete, when ctx ends. It holds the Conn's turn for the whole
// plan: another caller's Read waits for the poll, not just for a request
// (a Close does not: the reads after it fail as closed).
func readPlan(ctx context.Context, conn *Conn, unit uint8, plan devices.Plan, s *devices.Sample, scratch []byte, each func(r devices.Read, data []byte, err error)) (succeeded int, firstErr error) {
	reads := plan.Reads
	if len(reads) == 0 {
		return 0, nil
	}
	// One turn for the poll (the Conn's requests are serial anyway): the
	// poll's reads go out back to back, and its channel operations are
	// one pair instead of one per read.
	first := reads[0]
	held := conn.acquire(ctx, readRequest{unit: unit, table: first.Table, address: first.Address, quantity: first.Quantity})
	if held == nil {
		defer conn.release()
	}
	for i, r := range reads {
		req := readRequest{unit: unit, table: r.Table, address: r.Address, quantity: r.Quantity}
		var data []byte
		err := held
		if err == nil {
			if err = conn.check(req); err == nil {
				data, err = conn.serve(ctx, req, scratch[:0])
			}
		}
		if err == nil {
			err = s.DecodeRead(r, data)
		}
		if each != nil {
			each(r, data, err)
		}
		if err == nil {
			succeeded++
			continue
		}
		if ctx.Err() != nil {
			return succeeded, firstErr
		}
		if firstErr == nil {
			firstErr = err
		}
		s.FailRead(r, err)
		if KindOf(err).ConnectionLevel() {
			notRead := fmt.Errorf("not read: %w", err)
			for _, later := range reads[i+1:] {
				s.FailRead(later, notRead)
				if each != nil {
					each(later, nil, notRead)
				}
			}
			break
		}
	}
	return succeeded, firstErr
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

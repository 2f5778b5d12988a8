package simulator

import (
	"fmt"
	"github.com/factorywire/factorywire/devices"
	"math/rand/v2"
	"sync"
	"time"
)

// FaultKind is what a fault does to the reply of a request it fires on.
// doc.go shows the bytes each kind puts on the wire.
type FaultKind uint8

// The fault kinds.
const (
	// FaultDelay sends the correct reply after Fault.Delay. A delay longer
	// than the client's timeout is a late reply: the client has given up
	// and may already have sent its next request, which the simulator
	// answers only after the late reply (replies stay in request order).
	FaultDelay FaultKind = iota + 1

	// FaultException answers with Fault.Exception instead of executing the
	// request. With Exception = devices.ExceptionServerDeviceBusy and Times = N it
	// is a device that is busy N times, then answers normally.
	FaultException

	// FaultShortReply executes a read (functions 1 to 4) and sends its
	// reply one register short (one byte short for coils and discrete
	// inputs): byte count and data shortened together, MBAP length
	// consistent with the short PDU. It matches read requests only. A read
	// that fails with an exception is answered with that exception.
	FaultShortReply

	// FaultWrongTransactionID executes the request and sends the correct
	// reply with the top bit of the transaction id flipped (id ^ 0x8000).
	FaultWrongTransactionID

	// FaultDrop closes the connection without executing or answering the
	// request. Replies to earlier requests are sent first.
	FaultDrop

	// FaultNoReply swallows the request: not executed, not answered, the
	// connection stays open and the next request is served normally.
	FaultNoReply
)

// String returns the kind's name as in this package's constants, without
// the Fault prefix.
func (k FaultKind) String() string {
	switch k {
	case FaultDelay:
		return "Delay"
	case FaultException:
		return "Exception"
	case FaultShortReply:
		return "ShortReply"
	case FaultWrongTransactionID:
		return "WrongTransactionID"
	case FaultDrop:
		return "Drop"
	case FaultNoReply:
		return "NoReply"
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(k))
}

// Fault describes one injected fault: which requests it matches, when it
// fires among them, and what it does. The zero values of the optional
// fields mean "any" and "always".
//
// A request matches when its function is Function (or Function is 0) and,
// if Count > 0, the addresses it touches overlap Address..Address+Count-1
// (requests without an address, such as unknown functions, then never
// match). FaultShortReply matches read requests only.
//
// A matching request fires the fault when it is the Every-th match (every
// match if Every is 0 or 1), the seeded draw succeeds (always if
// Probability is 0), and the fault has fired fewer than Times times (no
// limit if Times is 0). The draws come from a PCG generator seeded with
// Seed, so a test that sends the same requests sees the same faults.
type Fault struct {
	Kind FaultKind

	Function uint8  // function code to match; 0 matches every function
	Address  uint16 // first address of the matched range, if Count > 0
	Count    int    // number of addresses in the matched range; 0 matches any address

	Every       int     // fire on every Every-th matching request; 0 or 1 fires on all
	Probability float64 // chance, in 0..1, that an eligible request fires; 0 means 1
	Seed        uint64  // seed of the Probability draws
	Times       int     // fire at most this many times; 0 means no limit

	Delay     time.Duration     // FaultDelay: how late the reply is; other kinds: wait this long first
	Exception devices.Exception // FaultException: the code to answer
}

// validate checks the fault's fields, naming the first bad one.
func (f Fault) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("fault %s: %s: %w", f.Kind, fmt.Sprintf(format, args...), ErrFault)
	}
	switch {
	case f.Kind < FaultDelay || f.Kind > FaultNoReply:
		return fmt.Errorf("fault kind %d: unknown kind (use one of the Fault constants): %w", uint8(f.Kind), ErrFault)
	case f.Count < 0 || int(f.Address)+f.Count > 65536:
		return bad("Address %d + Count %d must stay within 0..65536", f.Address, f.Count)
	case f.Every < 0:
		return bad("Every %d is negative", f.Every)
	case f.Times < 0:
		return bad("Times %d is negative", f.Times)
	case !(f.Probability >= 0 && f.Probability <= 1):
		return bad("Probability %v is outside 0..1", f.Probability)
	case f.Delay < 0:
		return bad("Delay %v is negative", f.Delay)
	case f.Kind == FaultDelay && f.Delay == 0:
		return bad("Delay must be positive")
	case f.Kind == FaultException && f.Exception == 0:
		return bad("Exception must be set (for example devices.ExceptionServerDeviceBusy)")
	case f.Kind != FaultException && f.Exception != 0:
		return bad("Exception is set but only FaultException sends one")
	case f.Kind == FaultShortReply && f.Function != 0 && !isRead(f.Function):
		return bad("Function %d is not a read (1 to 4), so no reply could be shortened", f.Function)
	}
	return nil
}

// matches reports whether a request PDU matches the fault's filters.
func (f *Fault) matches(pdu []byte) bool {
	fc := pdu[0]
	if f.Function != 0 && fc != f.Function {
		return false
	}
	if f.Kind == FaultShortReply && !isRead(fc) {
		return false
	}
	if f.Count > 0 {
		addr, n, ok := requestRange(pdu)
		if !ok || addr >= int(f.Address)+f.Count || addr+max(n, 1) <= int(f.Address) {
			return false
		}
	}
	return true
}

// faultState is a fault and its counters.
type faultState struct {
	Fault
	matched int
	fired   int
	rng     *rand.Rand
}

// faultSet is the faults of a server or a unit, consulted in order.
type faultSet struct {
	mu   sync.Mutex
	list []*faultState
}

// set replaces the faults after validating all of them; on error the old
// faults stay.
func (fs *faultSet) set(faults []Fault) error {
	list := make([]*faultState, 0, len(faults))
	for i, f := range faults {
		if err := f.validate(); err != nil {
			return fmt.Errorf("faults[%d]: %w", i, err)
		}
		list = append(list, &faultState{Fault: f, rng: rand.New(rand.NewPCG(f.Seed, 0x9e3779b97f4a7c15))})
	}
	fs.mu.Lock()
	fs.list = list
	fs.mu.Unlock()
	return nil
}

// fire returns the first fault in the set that fires for the request. Only
// the faults consulted (up to and including the one that fires) advance
// their counters.
func (fs *faultSet) fire(pdu []byte) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, st := range fs.list {
		if !st.matches(pdu) || (st.Times > 0 && st.fired >= st.Times) {
			continue
		}
		st.matched++
		if st.Every > 1 && st.matched%st.Every != 0 {
			continue
		}
		if st.Probability > 0 && st.rng.Float64() >= st.Probability {
			continue
		}
		st.fired++
		return st.Fault, true
	}
	return Fault{}, false
}

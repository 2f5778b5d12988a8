package topics

import (
	"errors"
	"fmt"
	"strings"
)

// MaxSegmentLen is the longest prefix, factory or class name, in bytes: with
// three segments, the dots and ".dlq" a name stays well under Kafka's
// 249-character topic limit.
const MaxSegmentLen = 64

// MaxTopicLen is Kafka's limit on a topic name's length.
const MaxTopicLen = 249

// dlqSuffix marks a dead-letter topic; "dlq" is reserved as a segment so
// that a name parses one way only.
const dlqSuffix = "dlq"

// ErrInvalidName matches every error Parse, New, Validate and
// ValidateSegment return (errors.Is).
var ErrInvalidName = errors.New("topics: invalid name")

// NameError is an invalid segment: What is "prefix", "factory", "class"
// (or the caller's word for it), Value the segment, Reason the rule broken.
type NameError struct {
	What, Value, Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.What, e.Value, e.Reason)
}

// Is makes a NameError match ErrInvalidName.
func (e *NameError) Is(target error) bool { return target == ErrInvalidName }

// Name is a factorywire topic name, [<prefix>.]<factory>.<class>[.dlq]:
// samples of one device class in one factory, optionally under a
// deployment prefix, or their dead letters.
type Name struct {
	Prefix  string // optional deployment prefix
	Factory string
	Class   string
	DLQ     bool // the dead-letter topic of <prefix>.<factory>.<class>
}

// New returns the samples topic of class in factory under prefix (empty
// for none), validated.
func New(prefix, factory, class string) (Name, error) {
	n := Name{Prefix: prefix, Factory: factory, Class: class}
	return n, n.Validate()
}

// Parse parses and validates a topic name: two segments are factory and
// class, three are prefix, factory and class, and a last segment "dlq"
// marks a dead-letter topic.
func Parse(s string) (Name, error) {
	if len(s) > MaxTopicLen {
		return Name{}, fmt.Errorf("%w: topic %.40q… is %d characters; Kafka allows %d", ErrInvalidName, s, len(s), MaxTopicLen)
	}
	parts := strings.Split(s, ".")
	var n Name
	if len(parts) > 2 && parts[len(parts)-1] == dlqSuffix {
		n.DLQ = true
		parts = parts[:len(parts)-1]
	}
	switch len(parts) {
	case 2:
		n.Factory, n.Class = parts[0], parts[1]
	case 3:
		n.Prefix, n.Factory, n.Class = parts[0], parts[1], parts[2]
		if err := ValidateSegment("prefix", n.Prefix); err != nil { // Validate skips an empty one
			return Name{}, fmt.Errorf("topic %q: %w", s, err)
		}
	default:
		return Name{}, fmt.Errorf("%w: topic %q: want <factory>.<class> or <prefix>.<factory>.<class>, optionally followed by .dlq", ErrInvalidName, s)
	}
	if err := n.Validate(); err != nil {
		return Name{}, fmt.Errorf("topic %q: %w", s, err)
	}
	return n, nil
}

// Validate checks every segment with ValidateSegment.
func (n Name) Validate() error {
	if n.Prefix != "" {
		if err := ValidateSegment("prefix", n.Prefix); err != nil {
			return err
		}
	}
	if err := ValidateSegment("factory", n.Factory); err != nil {
		return err
	}
	return ValidateSegment("class", n.Class)
}

// String returns the topic name.
func (n Name) String() string {
	var b strings.Builder
	if n.Prefix != "" {
		b.WriteString(n.Prefix)
		b.WriteByte('.')
	}
	b.WriteString(n.Factory)
	b.WriteByte('.')
	b.WriteString(n.Class)
	if n.DLQ {
		b.WriteString("." + dlqSuffix)
	}
	return b.String()
}

// DeadLetter returns the dead-letter topic of n's samples topic.
func (n Name) DeadLetter() Name {
	n.DLQ = true
	return n
}

// Samples returns the samples topic n's dead letters come from (n itself
// if it is one).
func (n Name) Samples() Name {
	n.DLQ = false
	return n
}

// Collection is the MongoDB time-series collection the sink writes n's
// samples to: the samples topic's name.
func (n Name) Collection() string { return n.Samples().String() }

// ValidateSegment checks one segment of a topic name (what says which:
// "prefix", "factory" or "class"): 1 to MaxSegmentLen lower-case letters,
// digits and '-', not starting or ending with '-', and not "dlq". Segments
// never hold '.' or '_', so names never mix the two (Kafka maps both to '_'
// in metric names, where such topics would collide).
func ValidateSegment(what, s string) error {
	ok := s != "" && len(s) <= MaxSegmentLen && s[0] != '-' && s[len(s)-1] != '-'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-'
	}
	if !ok {
		return &NameError{what, s, fmt.Sprintf("use 1 to %d lower-case letters, digits and '-', not starting or ending with '-'", MaxSegmentLen)}
	}
	if s == dlqSuffix {
		return &NameError{what, s, "reserved for dead-letter topics"}
	}
	return nil
}

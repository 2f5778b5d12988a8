package sink

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/topics"
)

// Headers of a dead letter, beside the original record's own headers.
const (
	HeaderTopic      = "dlq.original.topic"     // the topic the record came from
	HeaderPartition  = "dlq.original.partition" // its partition, decimal
	HeaderOffset     = "dlq.original.offset"    // its offset, decimal
	HeaderErrorClass = "dlq.error.class"        // one of the Class… constants
	HeaderError      = "dlq.error.message"      // what is wrong, for people
)

// Error classes of dead letters (the dlq.error.class header and the class
// label of factorywire_sink_dead_letters_total).
const (
	// ClassDecode: the value is not a sample: not JSON, a missing,
	// unknown or malformed key (devices.ErrMalformedSample).
	ClassDecode = "decode"
	// ClassSchemaVersion: a sample of a schema version this sink does not
	// read (devices.ErrSchemaVersion): upgrade the sink, then replay the
	// dead-letter topic.
	ClassSchemaVersion = "schema-version"
	// ClassTimestamp: ts before 1970-01-01, after 2038-01-19T03:14:07Z, or
	// more than max_future_skew ahead of the reference time. MongoDB does
	// not expire a time-series bucket holding such a date, so one bad
	// clock would keep a whole bucket forever.
	ClassTimestamp = "timestamp"
	// ClassTopicMismatch: the sample's factory or class is not the
	// topic's, or the topic's name does not parse as [<prefix>.]<factory>.<class>.
	ClassTopicMismatch = "topic-mismatch"
	// ClassKeyMismatch: the record key is not the sample's device id, so
	// the device's samples may be spread over partitions and lose their
	// order.
	ClassKeyMismatch = "key-mismatch"
	// ClassWriteRejected: MongoDB refused the document for good.
	ClassWriteRejected = "write-rejected"
	// ClassTooOld: ts is older than the collection's expire_after (MongoDB
	// would delete the sample at the TTL monitor's next pass, without a
	// trace) or than max_past_skew, by the sink's clock.
	ClassTooOld = "too-old"
	// ClassTooLarge: the sample's document exceeds the 4 MB MongoDB allows
	// a time-series measurement (mongots.MaxDocBytes).
	ClassTooLarge = "too-large"
)

// timeLimits are the bounds of a sample's ts besides the fixed ones.
type timeLimits struct {
	ref     time.Time     // what ts may not lie more than skew ahead of
	refName string        // what ref is, for the message
	skew    time.Duration // max_future_skew
	oldest  time.Time     // ts may not lie before it; zero: no bound
	why     string        // what sets oldest, for the message
}

// The timestamps a sample may carry: MongoDB expires time-series buckets
// only between the Unix epoch and the largest 32-bit Unix time.
var (
	minSampleTime = time.Unix(0, 0).UTC()
	maxSampleTime = time.Unix(1<<31-1, 0).UTC() // 2038-01-19T03:14:07Z
)

// deadLetter is a record the sink cannot store, and why.
type deadLetter struct {
	rec   *kgo.Record
	class string
	err   error
}

// referenceTime is what a record's ts may not lie more than
// max_future_skew ahead of: the broker's LogAppendTime when the topic uses
// it, else now, the sink's clock (the record's CreateTime is the sample's
// own time, set by the gateway).
func referenceTime(r *kgo.Record, now time.Time) (time.Time, string) {
	if r.Attrs.TimestampType() == 1 {
		return r.Timestamp, "the broker's LogAppendTime"
	}
	return now, "the sink's clock"
}

// classify decodes one record with dec and checks it against its topic's
// name; it returns the sample, or the dead letter the record becomes.
// ref, named refName in messages, is the record's reference time
// (referenceTime).
func classify(dec *devices.Decoder, r *kgo.Record, name topics.Name, nameErr error, lim timeLimits) (devices.Sample, *deadLetter) {
	ref, refName, skew := lim.ref, lim.refName, lim.skew
	s, err := dec.Decode(r.Value)
	if err != nil {
		class := ClassDecode
		if errors.Is(err, devices.ErrSchemaVersion) {
			class = ClassSchemaVersion
		}
		return s, &deadLetter{rec: r, class: class, err: err}
	}
	if nameErr != nil {
		return s, &deadLetter{rec: r, class: ClassTopicMismatch, err: fmt.Errorf("topic %q: %w", r.Topic, nameErr)}
	}
	if s.Factory != name.Factory || s.Class != name.Class {
		return s, &deadLetter{rec: r, class: ClassTopicMismatch,
			err: fmt.Errorf("sample of factory %q, class %q in topic %s, which holds factory %q, class %q", s.Factory, s.Class, r.Topic, name.Factory, name.Class)}
	}
	if string(r.Key) != s.Device {
		return s, &deadLetter{rec: r, class: ClassKeyMismatch,
			err: fmt.Errorf("record key %q is not the sample's device %q: produce with key = device id", r.Key, s.Device)}
	}
	switch {
	case s.Time.Before(minSampleTime):
		return s, &deadLetter{rec: r, class: ClassTimestamp, err: fmt.Errorf("ts %s is before 1970-01-01", s.Time.Format(time.RFC3339Nano))}
	case s.Time.After(maxSampleTime):
		return s, &deadLetter{rec: r, class: ClassTimestamp, err: fmt.Errorf("ts %s is after 2038-01-19T03:14:07Z", s.Time.Format(time.RFC3339Nano))}
	case s.Time.After(ref.Add(skew)):
		return s, &deadLetter{rec: r, class: ClassTimestamp, err: fmt.Errorf("ts %s is %s ahead of %s (%s), more than max_future_skew %s",
			s.Time.Format(time.RFC3339Nano), s.Time.Sub(ref).Round(time.Millisecond), refName, ref.UTC().Format(time.RFC3339Nano), skew)}
	case s.Time.Before(lim.oldest):
		return s, &deadLetter{rec: r, class: ClassTooOld, err: fmt.Errorf("ts %s is before %s, %s",
			s.Time.Format(time.RFC3339Nano), lim.oldest.UTC().Format(time.RFC3339Nano), lim.why)}
	}
	return s, nil
}

// deadLetterTopic is the dead-letter topic of the topic a record came
// from: <topic>.dlq.
func deadLetterTopic(topic string) string { return topic + ".dlq" }

// record returns the dead letter to produce: the original key, value,
// timestamp and headers, and the dlq.* headers.
func (d *deadLetter) record() *kgo.Record {
	r := d.rec
	headers := make([]kgo.RecordHeader, 0, len(r.Headers)+5)
	headers = append(headers, r.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
		kgo.RecordHeader{Key: HeaderErrorClass, Value: []byte(d.class)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(d.err.Error())},
	)
	return &kgo.Record{
		Topic:     deadLetterTopic(r.Topic),
		Key:       r.Key,
		Value:     r.Value,
		Headers:   headers,
		Timestamp: r.Timestamp,
	}
}

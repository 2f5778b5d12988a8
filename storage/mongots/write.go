package mongots

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/factorywire/factorywire/devices"
)

// Field names of a stored document (see the package documentation).
const (
	fieldTS      = "ts"
	fieldMeta    = "meta"
	fieldSeq     = "seq"
	fieldSrc     = "src"
	fieldFields  = "fields"
	fieldErrors  = "errors"
	fieldNErrors = "error_count"
	metaFactory  = "factory"
	metaClass    = "class"
	metaDevice   = "device"
	metaTags     = "tags"
	metaUnits    = "units"
	srcPartition = "p"
	srcOffset    = "o"
)

// Doc is one sample to store, with the Kafka coordinates of the record it
// came from.
type Doc struct {
	Sample    devices.Sample
	Partition int32 // the record's partition, 0 or more
	Offset    int64 // the record's offset, 0 or more
}

// DocError is one document Write did not store, and why.
type DocError struct {
	Index   int    // the document's index in the docs passed to Write
	Doc     Doc    // the document
	Code    int    // the server's write error code; 0 when Write refused it before sending
	Message string // the server's message, or why Write refused it
	// Err is ErrInvalidDoc or ErrTooLarge when Write refused the document
	// before sending it (Code 0); ErrTooLarge for the server's
	// BSONObjectTooLarge (10334: the measurement would grow its bucket
	// past 16 MB); nil for any other write error.
	Err error
	// Transient is true when writing the document again may succeed (see
	// IsTransient); false when it never will: send it to the dead-letter
	// topic.
	Transient bool
}

func (e DocError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("document %d (device %s, partition %d, offset %d): %s", e.Index, e.Doc.Sample.Device, e.Doc.Partition, e.Doc.Offset, e.Message)
	}
	return fmt.Sprintf("document %d (device %s, partition %d, offset %d): server error %d: %s", e.Index, e.Doc.Sample.Device, e.Doc.Partition, e.Doc.Offset, e.Code, e.Message)
}

// WriteResult is what Write did with a batch.
type WriteResult struct {
	Inserted int        // documents stored
	Failed   []DocError // documents not stored, by Index
}

// Write inserts docs into the collection coll, one document per Doc (see
// the package documentation for its shape).
//
// Documents are sorted by device and time, which fills time-series
// buckets best, and sent in unordered insert commands of at most
// Options.MaxBatchDocs documents and Options.MaxBatchBytes bytes. A
// document the server refuses (a write error) or that Write refuses
// before sending (ErrInvalidDoc) does not stop the others: it is reported
// in WriteResult.Failed, and the error is nil.
//
// A returned error is about the batch, not a document: a network error, a
// write concern error, a command error, ctx's end. Then the result counts
// what earlier commands stored, but which documents of the failing command
// were stored is unknown: retry the whole batch after dropping the
// documents already stored (UnstoredSamples), because a time-series collection
// stores a document twice if it is inserted twice. IsTransient tells a
// retry from a give-up.
func (s *Store) Write(ctx context.Context, coll string, docs []Doc) (WriteResult, error) {
	var res WriteResult
	if err := checkCollection(coll); err != nil {
		return res, err
	}
	order := make([]int, len(docs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, y := &docs[a], &docs[b]
		return cmp.Or(
			strings.Compare(x.Sample.Device, y.Sample.Device),
			x.Sample.Time.Compare(y.Sample.Time),
			cmp.Compare(x.Partition, y.Partition),
			cmp.Compare(x.Offset, y.Offset),
		)
	})

	c := s.collection(coll)
	var (
		batch     []bson.Raw
		batchIdx  []int // docs index of each batch entry
		batchSize int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, failed, err := s.insertChunk(ctx, c, coll, batch)
		res.Inserted += n
		for _, f := range failed {
			f.Index = batchIdx[f.Index]
			f.Doc = docs[f.Index]
			res.Failed = append(res.Failed, f)
		}
		batch, batchIdx, batchSize = batch[:0], batchIdx[:0], 0
		return err
	}
	var buf []byte
	for _, i := range order {
		start := len(buf)
		var err error
		buf, err = appendDoc(buf, &docs[i])
		if err == nil && len(buf)-start > MaxDocBytes {
			err = fmt.Errorf("%w: %d bytes of BSON, more than the %d a time-series measurement may have", ErrTooLarge, len(buf)-start, MaxDocBytes)
		}
		if err != nil {
			buf = buf[:start]
			kind := ErrInvalidDoc
			if errors.Is(err, ErrTooLarge) {
				kind = ErrTooLarge
			}
			res.Failed = append(res.Failed, DocError{Index: i, Doc: docs[i], Message: err.Error(), Err: kind})
			continue
		}
		raw := bson.Raw(buf[start:len(buf):len(buf)])
		if len(batch) > 0 && (len(batch) >= s.opts.MaxBatchDocs || batchSize+len(raw) > s.opts.MaxBatchBytes) {
			if err := flush(); err != nil {
				return res, err
			}
			// The flushed documents are sent: their bytes can be reused.
			buf = append(buf[:0], raw...)
			raw = bson.Raw(buf[:len(raw):len(raw)])
		}
		batch = append(batch, raw)
		batchIdx = append(batchIdx, i)
		batchSize += len(raw)
	}
	if err := flush(); err != nil {
		return res, err
	}
	slices.SortFunc(res.Failed, func(a, b DocError) int { return cmp.Compare(a.Index, b.Index) })
	return res, nil
}

// MaxDocBytes bounds the BSON size of one document: MongoDB refuses a
// time-series measurement over 4 MB. Write refuses a larger one before
// sending it (ErrTooLarge).
const MaxDocBytes = 4 << 20

// insertChunk sends one unordered insert command. It returns the
// documents stored and the write errors (Index: into batch), or an error
// about the whole command (a *CommandError when retrying cannot help).
func (s *Store) insertChunk(ctx context.Context, c *mongo.Collection, coll string, batch []bson.Raw) (int, []DocError, error) {
	_, err := c.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
	if err == nil {
		return len(batch), nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return 0, nil, s.commandError(coll, "insert", fmt.Sprintf("insert %d documents", len(batch)), err)
	}
	failed := make([]DocError, 0, len(bwe.WriteErrors))
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(batch) {
			return 0, nil, fmt.Errorf("server reported a write error for document %d of %d: %w", we.Index, len(batch), err)
		}
		var kind error
		if we.Code == codeBSONObjectTooLarge {
			kind = ErrTooLarge
		}
		failed = append(failed, DocError{Index: we.Index, Code: we.Code, Message: we.Message, Transient: transientCodes[we.Code], Err: kind})
	}
	return len(batch) - len(failed), failed, nil
}

// sampleField is one field of a sample with a value.
type sampleField struct {
	name string
	v    devices.Value
}

// stackFields is how many fields, errors, tags or units a sample may have
// for encoding it to use buffers on the stack only: beyond, they are
// allocated.
const stackFields = 64

// checkSample appends s's fields to fs, sorted by name, and returns fs,
// or why Write refuses s (ErrInvalidDoc).
func checkSample(s *devices.Sample, fs []sampleField) ([]sampleField, error) {
	if err := devices.ValidateName(s.Factory); err != nil {
		return nil, fmt.Errorf("%w: factory: %v", ErrInvalidDoc, err)
	}
	if err := devices.ValidateName(s.Class); err != nil {
		return nil, fmt.Errorf("%w: class: %v", ErrInvalidDoc, err)
	}
	if err := devices.ValidateDevice(s.Device); err != nil {
		return nil, fmt.Errorf("%w: device: %v", ErrInvalidDoc, err)
	}
	if s.Time.IsZero() {
		return nil, fmt.Errorf("%w: ts is the zero time", ErrInvalidDoc)
	}
	if s.Seq > math.MaxInt64 {
		return nil, fmt.Errorf("%w: seq %d exceeds the int64 range MongoDB stores", ErrInvalidDoc, s.Seq)
	}
	for name, v := range s.Fields {
		if err := checkFieldName(name); err != nil {
			return nil, err
		}
		if _, both := s.Errors[name]; both {
			return nil, fmt.Errorf("%w: field %q is under both fields and errors", ErrInvalidDoc, name)
		}
		if v.Kind() == devices.KindInvalid {
			return nil, fmt.Errorf("%w: field %q has no value (the zero devices.Value)", ErrInvalidDoc, name)
		}
		fs = append(fs, sampleField{name, v})
	}
	for name := range s.Errors {
		if err := checkFieldName(name); err != nil {
			return nil, err
		}
	}
	if len(s.Tags) > devices.MaxTags {
		return nil, fmt.Errorf("%w: %d tags, at most %d", ErrInvalidDoc, len(s.Tags), devices.MaxTags)
	}
	for k, v := range s.Tags {
		if err := devices.ValidateTag(k, v); err != nil {
			return nil, fmt.Errorf("%w: tag %q: %v", ErrInvalidDoc, k, err)
		}
	}
	for name := range s.Units {
		if err := checkFieldName(name); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(fs, func(a, b sampleField) int { return strings.Compare(a.name, b.name) })
	return fs, nil
}

// appendStrings appends m as the document key, its keys sorted, or
// nothing when m is empty: the tags and units of meta.
func appendStrings(dst []byte, key string, m map[string]string) []byte {
	if len(m) == 0 {
		return dst
	}
	var buf [stackFields][2]string
	kvs := buf[:0]
	for k, v := range m {
		kvs = append(kvs, [2]string{k, v})
	}
	slices.SortFunc(kvs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	sub, dst := bsoncore.AppendDocumentElementStart(dst, key)
	for _, kv := range kvs {
		dst = bsoncore.AppendStringElement(dst, kv[0], kv[1])
	}
	dst, _ = bsoncore.AppendDocumentEnd(dst, sub)
	return dst
}

// appendDoc appends d's document to dst. On error dst holds a partial
// document after its original length.
func appendDoc(dst []byte, d *Doc) ([]byte, error) {
	s := &d.Sample
	var buf [stackFields]sampleField
	fs, err := checkSample(s, buf[:0])
	if err != nil {
		return dst, err
	}
	if d.Partition < 0 || d.Offset < 0 {
		return dst, fmt.Errorf("%w: negative source partition %d or offset %d", ErrInvalidDoc, d.Partition, d.Offset)
	}
	idx, dst := bsoncore.AppendDocumentStart(dst)
	dst = bsoncore.AppendDateTimeElement(dst, fieldTS, s.Time.UnixMilli())
	var sub int32
	sub, dst = bsoncore.AppendDocumentElementStart(dst, fieldMeta)
	dst = bsoncore.AppendStringElement(dst, metaFactory, s.Factory)
	dst = bsoncore.AppendStringElement(dst, metaClass, s.Class)
	dst = bsoncore.AppendStringElement(dst, metaDevice, s.Device)
	dst = appendStrings(dst, metaTags, s.Tags)
	dst = appendStrings(dst, metaUnits, s.Units)
	dst, _ = bsoncore.AppendDocumentEnd(dst, sub)
	dst = bsoncore.AppendInt64Element(dst, fieldSeq, int64(s.Seq))
	sub, dst = bsoncore.AppendDocumentElementStart(dst, fieldSrc)
	dst = bsoncore.AppendInt32Element(dst, srcPartition, d.Partition)
	dst = bsoncore.AppendInt64Element(dst, srcOffset, d.Offset)
	dst, _ = bsoncore.AppendDocumentEnd(dst, sub)

	dst, _ = appendValues(dst, s, fs)
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst, nil
}

// appendValues appends the fields document of s (fs: its fields, sorted
// by name, as checkSample returns them), error_count, and the errors document, as Write stores them. A
// value with no faithful BSON form goes under errors instead, with why
// (see the package documentation): a uint64 beyond the int64 range, a NaN
// or infinite float64. fields is left out when no field has a value,
// errors when none failed.
//
// It returns dst and the number of errors entries.
func appendValues(dst []byte, s *devices.Sample, fs []sampleField) ([]byte, int) {
	var moved map[string]string
	move := func(name, msg string) {
		if moved == nil {
			moved = map[string]string{}
		}
		moved[name] = msg
	}
	fieldsAt := len(dst)
	sub, dst := bsoncore.AppendDocumentElementStart(dst, fieldFields)
	for _, f := range fs {
		name, v := f.name, f.v
		switch v.Kind() {
		case devices.KindBool:
			dst = bsoncore.AppendBooleanElement(dst, name, v.Bool())
		case devices.KindInt64:
			dst = bsoncore.AppendInt64Element(dst, name, v.Int64())
		case devices.KindUint64:
			if u := v.Uint64(); u <= math.MaxInt64 {
				dst = bsoncore.AppendInt64Element(dst, name, int64(u))
			} else {
				move(name, OverflowPrefix+strconv.FormatUint(u, 10))
			}
		case devices.KindFloat64:
			if f := v.Float64(); !math.IsNaN(f) && !math.IsInf(f, 0) {
				dst = bsoncore.AppendDoubleElement(dst, name, f)
			} else {
				move(name, fmt.Sprintf("%v: %v", devices.ErrNotFinite, f))
			}
		case devices.KindString:
			dst = bsoncore.AppendStringElement(dst, name, v.String())
		}
	}
	dst, _ = bsoncore.AppendDocumentEnd(dst, sub)
	if len(dst)-int(sub) == 5 {
		dst = dst[:fieldsAt] // no value: no empty fields document
	}
	nErrors := len(s.Errors) + len(moved)
	dst = bsoncore.AppendInt32Element(dst, fieldNErrors, int32(nErrors))
	if nErrors == 0 {
		return dst, 0
	}
	var buf [stackFields][2]string
	errs := buf[:0] // name, message
	for name, msg := range s.Errors {
		errs = append(errs, [2]string{name, msg})
	}
	for name, msg := range moved {
		errs = append(errs, [2]string{name, msg})
	}
	slices.SortFunc(errs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	sub, dst = bsoncore.AppendDocumentElementStart(dst, fieldErrors)
	for _, e := range errs {
		dst = bsoncore.AppendStringElement(dst, e[0], e[1])
	}
	dst, _ = bsoncore.AppendDocumentEnd(dst, sub)
	return dst, nErrors
}

// OverflowPrefix starts the errors entry Write stores for a uint64 value
// beyond the int64 range, followed by the value's digits.
const OverflowPrefix = "mongots: uint64 value exceeds the int64 range MongoDB stores (check the field's type and byte order): "

// checkFieldName refuses a field name that cannot be a MongoDB field: the
// devices grammar ([a-z][a-z0-9_]*) never produces one.
func checkFieldName(name string) error {
	bad := name == "" || name[0] == '$'
	for i := 0; !bad && i < len(name); i++ {
		bad = name[i] == '.' || name[i] == 0
	}
	if bad {
		return fmt.Errorf("%w: field name %q cannot be a MongoDB field name", ErrInvalidDoc, name)
	}
	return nil
}

// transientCodes are the server error codes after which the same write
// may succeed: a primary stepping down or shutting down, an unreachable
// host, a timeout, a write conflict, a write concern timeout.
var transientCodes = map[int]bool{
	6:     true, // HostUnreachable
	7:     true, // HostNotFound
	24:    true, // LockTimeout
	50:    true, // MaxTimeMSExpired
	64:    true, // WriteConcernFailed (wtimeout)
	89:    true, // NetworkTimeout
	91:    true, // ShutdownInProgress
	112:   true, // WriteConflict
	133:   true, // FailedToSatisfyReadPreference
	134:   true, // ReadConcernMajorityNotAvailableYet
	189:   true, // PrimarySteppedDown
	262:   true, // ExceededTimeLimit
	9001:  true, // SocketException
	10107: true, // NotWritablePrimary
	11600: true, // InterruptedAtShutdown
	11602: true, // InterruptedDueToReplStateChange
	13435: true, // NotPrimaryNoSecondaryOk
	13436: true, // NotPrimaryOrSecondary
}

// transientLabels are the error labels that mark an error as retryable.
var transientLabels = []string{"RetryableWriteError", "TransientTransactionError", "NetworkError"}

// IsTransient reports whether the operation that returned err may succeed
// if tried again unchanged: a network error, no server selectable, a
// timeout (including ctx's deadline), an error labelled
// RetryableWriteError, TransientTransactionError or NetworkError, or a
// server error whose code says the server is stepping down, shutting
// down, unreachable or out of time (NotWritablePrimary,
// PrimarySteppedDown, ShutdownInProgress, InterruptedDueToReplStateChange,
// WriteConcernFailed, …). A cancelled context, a refused document, a
// duplicate key or a malformed command are not transient.
func IsTransient(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	case mongo.IsNetworkError(err), mongo.IsTimeout(err):
		return true
	}
	var sse topology.ServerSelectionError
	if errors.As(err, &sse) {
		return true
	}
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return false
	}
	for _, label := range transientLabels {
		if se.HasErrorLabel(label) {
			return true
		}
	}
	for _, code := range se.ErrorCodes() {
		if transientCodes[code] {
			return true
		}
	}
	return false
}

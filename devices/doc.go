// Package devices is factorywire's device model: register maps that say
// where a device class keeps its values and how to read them, the read
// plans compiled from them, the decoding of Modbus responses into
// engineering values, and the sample that carries one poll of one device
// to Kafka, with its JSON codec.
//
// A gateway loads every register map once at start (LoadDir), so a typo
// stops it with a message naming file, line and field instead of showing
// up at poll time. Each poll runs the class's Plan: one Modbus request per
// Read, each response decoded into the Sample (Sample.DecodeRead, or
// Sample.FailRead when the request failed), and the Sample written as JSON
// (Sample.AppendJSON) as the value of a record keyed by the device id. The
// sink reads it back with a Decoder (DecodeSample for a single record).
// The Modbus simulator serves values
// from the same register maps with Field.EncodeRegisters and
// Field.EncodeBit, the inverse of decoding.
//
//	classes, err := devices.LoadDir("configs/devices")
//	...
//	c := classes["press"]
//	s := devices.Sample{Factory: "plant-a", Device: "press-07", Class: c.Name, Time: start, Seq: seq,
//		Tags: tags, Units: c.Units} // the device's tags and the class's units, shared
//	for _, r := range c.Plan.Reads {
//		data, err := read(r.Table.ReadFunction(), r.Address, r.Quantity) // the response's data bytes
//		if err == nil {
//			err = s.DecodeRead(r, data)
//		}
//		if err != nil {
//			s.FailRead(r, err)
//		}
//	}
//	record := s.AppendJSON(nil)
//
// A Class, its Fields and its Plans are not modified after Parse or
// Compile returns and are safe for concurrent use. A Sample is not.
//
// # Register-map files
//
// One YAML file describes one device class; by convention it is named
// after the class (configs/devices/press.yaml holds class press). Example:
//
//	class: press                      # required
//	description: hydraulic press      # optional, for people
//	max_gap: 4                        # optional, default 10 (DefaultMaxGap)
//	fields:                           # required, one or more
//	  - name: pressure
//	    table: holding_register
//	    address: 0
//	    type: int16
//	    scale: 0.01
//	    unit: bar
//	  - name: running
//	    ref: 40011                    # holding register, address 10
//	    type: bool
//	    bit: 0
//	  - name: cycle_count
//	    table: holding_register
//	    address: 12
//	    type: uint32
//	    order: CDAB
//	  - name: model
//	    table: input_register
//	    address: 0x100
//	    type: string
//	    length: 8
//	  - name: pump_on
//	    table: coil
//	    address: 0
//	    type: bool
//
// Top-level keys:
//
//	class        the class name: 1 to 64 characters of [a-z0-9-], not starting
//	             or ending with '-' (ValidateName). It becomes part of the topic
//	             <factory>.<class>, so it is the same grammar as topic names.
//	description  free text.
//	max_gap      0 to 125: the unused registers one read may span to serve two
//	             fields at once (see Read plans). Default 10.
//	fields       the list of fields.
//
// Field keys:
//
//	name     1 to 64 characters of [a-z0-9_], starting with a letter, unique
//	         in the class. It becomes a MongoDB field name.
//	table    coil, discrete_input, holding_register or input_register.
//	address  the 0-based address in the Modbus PDU, 0 to 65535, decimal or
//	         0x hexadecimal.
//	ref      instead of table and address: a Modicon reference (below).
//	type     bool, int16, uint16, int32, uint32, int64, uint64, float32,
//	         float64 or string (below). Required.
//	order    the byte order of a value spanning registers: ABCD (default),
//	         CDAB, BADC or DCBA (below).
//	bit      for a bool in a register table, required: the bit, 0 (least
//	         significant) to 15.
//	length   for a string, required: its registers, 1 to 125.
//	scale    for numbers: engineering value = raw × scale + offset. Default
//	         1; 0, NaN and infinities are refused.
//	offset   for numbers: see scale. Default 0.
//	unit     for numbers: the engineering unit, free text ("V", "bar", "%"),
//	         at most 64 bytes (MaxUnitLen). Every sample of the class carries
//	         it (units, below), and MongoDB stores it beside the values.
//
// Integers with a leading zero (010) are refused, because YAML reads them
// as octal; write 10 or 0xA. Keys are strict: an unknown or repeated key is
// an error, and so is a key that does not apply to the field's type (bit
// on an int16, scale on a string). Every problem in a file is reported at
// once, one line each, as
//
//	configs/devices/press.yaml:14: field "pressure": unknown type "flaot32" (want bool, int16, uint16, int32, uint32, int64, uint64, float32, float64 or string)
//
// and each line is a *MapError.
//
// # Modicon references
//
// A ref names table and address together in the traditional 1-based
// notation. The leading digit names the table, the rest is the 1-based
// register or bit number, so the address is the number minus one. The
// digits are read as written, leading zeros included (quote the value or
// not, YAML's octal reading does not apply):
//
//	5 digits (or fewer)   6 digits          table              address
//	00001-09999           000001-065536     coil               0-9998 / 0-65535
//	10001-19999           100001-165536     discrete_input     0-9998 / 0-65535
//	30001-39999           300001-365536     input_register     0-9998 / 0-65535
//	40001-49999           400001-465536     holding_register   0-9998 / 0-65535
//
// So 40001 and 400001 are holding register 0, 30343 is input register 342,
// and 1 (00001 without its zeros) is coil 0. Numbers ending in 0000 (40000)
// and leading digits 2 and 5-9 are errors.
//
// # Types
//
//	type     registers   value in a sample
//	bool     1 bit       true or false: one coil or discrete input, or one bit of a register
//	int16    1           integer (two's complement)
//	uint16   1           integer
//	int32    2           integer
//	uint32   2           integer
//	float32  2           number (IEEE 754 binary32)
//	int64    4           integer
//	uint64   4           integer
//	float64  4           number (IEEE 754 binary64)
//	string   length      string
//
// Coils and discrete inputs hold only bools. Registers hold every type; a
// bool in a register reads one bit of it and needs bit. Each register
// travels high byte first, as Modbus specifies.
//
// # Byte orders
//
// Devices disagree on how a value wider than one register is laid out. The
// order names the value's bytes, A the most significant, in the order they
// arrive on the wire:
//
//	ABCD  big-endian: registers most significant first, each high byte first (default)
//	CDAB  word swap: registers least significant first, each high byte first
//	BADC  byte swap: registers most significant first, each low byte first
//	DCBA  little-endian: registers least significant first, each low byte first
//
// The float32 123.456 is 0x42F6E979 (A=42 B=F6 C=E9 D=79):
//
//	order   register 0   register 1   bytes on the wire
//	ABCD    0x42F6       0xE979       42 F6 E9 79
//	CDAB    0xE979       0x42F6       E9 79 42 F6
//	BADC    0xF642       0x79E9       F6 42 79 E9
//	DCBA    0x79E9       0xF642       79 E9 F6 42
//
// The same four names apply to 64-bit values, whose bytes are A to H,
// most significant first: CDAB reverses the order of the four registers,
// BADC swaps the bytes within each, DCBA does both. The uint64
// 0x0102030405060708:
//
//	order   register 0   register 1   register 2   register 3
//	ABCD    0x0102       0x0304       0x0506       0x0708
//	CDAB    0x0708       0x0506       0x0304       0x0102
//	BADC    0x0201       0x0403       0x0605       0x0807
//	DCBA    0x0807       0x0605       0x0403       0x0201
//
// 16-bit types take ABCD (high byte first) or BADC (low byte first) only.
// Strings take ABCD (the first character in each register's high byte) or
// BADC (in its low byte). A bool has no order.
//
// # Strings
//
// A string is its registers' 2×length bytes in order. It ends at the first
// NUL byte; trailing spaces are trimmed; bytes that are not UTF-8 become
// U+FFFD. Encoding pads with NUL bytes, and refuses a string longer than
// 2×length bytes or holding a NUL.
//
// # Scaling and values
//
// A number's engineering value is raw × scale + offset. With the defaults
// (scale 1, offset 0), integers stay integers (int64 for the signed types,
// uint64 for the unsigned ones) and floats stay floats; otherwise the
// value is a float64. A scale of 1/n for an integer n (0.1, 0.01, 0.001)
// is applied as a division by n, so the raw 1234 with scale 0.1 is 123.4,
// not 123.40000000000001. A float32 is widened to the float64 nearest its
// shortest decimal form, so a device's 123.456 reads 123.456, not
// 123.45600128173828. A uint64 beyond 2^53 loses precision only when
// scaled.
//
// JSON has no NaN or infinity. A float that is NaN or infinite, read from a
// device or produced by scaling, is not a value: the field gets an error
// wrapping ErrNotFinite ("devices: value is not a finite number: NaN")
// under errors in the sample instead.
//
// Encoding (Field.EncodeRegisters) applies (value - offset) / scale,
// rounds half away from zero for integer types, and fails with ErrRange if
// the result does not fit the type; NaN and infinities are encoded only
// into float types, so a simulator can send them.
//
// # Overlapping fields
//
// Bools in registers may share a register, each on its own bit: a status
// word is usually described bit by bit. Every other overlap is an error
// naming both fields, including a bool bit inside a number's register and
// two fields on one coil: an overlap is almost always an address typo, and
// a status word's value is already carried by its bits.
//
// # Read plans
//
// Parse compiles each class into a Plan (Class.Plan); Class.Compile
// compiles another for a connection with lower limits (PlanOptions, e.g.
// 64 registers per read). Per table, in the order coil, discrete_input,
// holding_register, input_register, fields are sorted by address (then
// bit) and each joins the read before it when both hold:
//
//   - the gap between the read's end and the field is at most max_gap
//     registers; in coil and discrete-input tables, 16×max_gap bits, which
//     costs the same response bytes;
//   - the read, extended to the field's end, spans at most 125 registers
//     (2000 bits), or the connection's lower limit.
//
// Otherwise the field starts a new read. A read lists the fields it serves
// and each one's offset from its start. A gap is read and ignored, so a
// device that answers reads of undefined addresses with exception 2
// (illegal data address) needs max_gap: 0. gateway check prints plans as
// Plan.String does:
//
//	coil 0-3 (4 bits): pump_on@0 valve_advance@1 valve_retract@2 lubrication@3
//	holding_register 0-3 (4 registers): pressure@0 pressure_setpoint@1 ram_position@2 oil_temperature@3
//	holding_register 10-18 (9 registers): running@10.0 fault@10.1 door_open@10.2 emergency_stop@10.3 auto_mode@10.8 cycle_count@12 cycle_time@14 fault_code@18
//	holding_register 30-31 (2 registers): motor_power@30
//
// A response must hold exactly the bytes its read asked for: 2 per
// register, high byte first, or one per 8 bits, the first bit in the least
// significant bit of the first byte. Sample.DecodeRead refuses any other
// length with a *ByteCountError (ErrByteCount), which guards against
// clients, goburrow/modbus among them, that accept short replies.
//
// # Samples
//
// A sample is one poll of one device, the value of one Kafka record: key
// the device id, header content-type: application/json (ContentType),
// record timestamp the sample's ts. Schema version 2 (SchemaVersion):
//
//	{"v":2,"factory":"plant-a","device":"press-07","class":"press",
//	 "ts":"2026-12-01T01:02:03.456Z","seq":42,
//	 "tags":{"asset_id":"P-1107","line":"line-3"},
//	 "units":{"pressure":"bar","setpoint":"bar"},
//	 "fields":{"cycle_count":1234567,"pressure":12.5,"running":true,"setpoint":20.0},
//	 "errors":{"temperature":"modbus exception 2 (illegal data address)"}}
//
// (AppendJSON writes it on one line.) Keys, all required but tags, units
// and errors:
//
//	v        the integer 2 (1: see Version 1 below).
//	factory  the factory name, as ValidateName accepts: [a-z0-9-], 1 to 64.
//	device   the device id, the record key: 1 to 64 of [A-Za-z0-9._-],
//	         starting with a letter or digit (ValidateDevice).
//	class    the class name, as ValidateName accepts.
//	ts       when the poll started: RFC 3339 in UTC with milliseconds, as
//	         MongoDB stores dates. DecodeSample accepts any offset and any
//	         fraction, converts to UTC and truncates to the millisecond.
//	seq      per device, one more than its previous sample: an unsigned
//	         64-bit integer, so gaps, repeats and reordering show.
//	tags     tag key → value: the device's static tags from the gateway
//	         config (line, location, asset id). At most 32 (MaxTags); keys
//	         follow the field-name grammar ([a-z][a-z0-9_]*, 1 to 64),
//	         because they become MongoDB field names under meta.tags;
//	         values are 1 to 256 bytes of UTF-8 (ValidateTag). AppendJSON
//	         omits it when empty; DecodeSample accepts it absent or empty.
//	units    field name → unit, for each field of the class whose
//	         register map gives a unit (Class.Units), failed or not: the
//	         same object in every sample of the class. A unit is 1 to 64
//	         bytes of UTF-8 (MaxUnitLen). Omitted when empty, as tags.
//	fields   field name → value: true/false, an integer, a number, or a
//	         string. An integer is written digit for digit, so a uint64
//	         beyond 2^53 stays exact (a reader should parse it as an
//	         integer); a float always has a fraction or an exponent (20.0,
//	         1e-7, 1e+21), so readers keep integers and floats apart. A
//	         field that failed has no entry here. May be empty.
//	errors   field name → why the field has no value (a non-empty string),
//	         for each field that failed this poll. AppendJSON omits it when
//	         empty; DecodeSample accepts it absent or empty. A field is never
//	         under both fields and errors.
//
// Field names follow the register-map grammar ([a-z][a-z0-9_]*), so they
// are safe MongoDB field names. AppendJSON writes the keys in the order
// above and the keys of tags, units, fields and errors sorted, so equal
// samples give equal bytes.
//
// Tags and units are static: a gateway shares one tags map per device and
// one units map per class among all their samples (Sample.Tags,
// Sample.Units), so carrying them costs no allocation. They are repeated
// in every record rather than sent once, so that every record stands
// alone (a sink may start at any offset, a record may be replayed from a
// dead-letter topic) and a sink needs no state to store it. Measured on
// the demo's press class (17 fields, 6 with a unit), units make one
// record 580 bytes instead of 446 (+30 %), but a batch of 100 such
// records, as a partition receives them, only 0.8 % larger compressed
// with lz4 (8,658 → 8,728 bytes) and 3.2 % with zstd (4,976 → 5,136),
// because the same object repeats; the demo's line tag adds 25 bytes per
// record and 0.1 to 0.4 % compressed. docs/BENCHMARKS.md has the command
// (TestSampleSizes). In MongoDB they cost less still: the sink stores tags
// and units under meta, and a time-series collection stores
// meta once per bucket, not once per document.
//
// # Version 1
//
// Version 1 is version 2 without tags and units: "v":1, and tags and
// units are unknown keys in it. DecodeSample reads both versions (a sink
// must read what gateways not yet upgraded send, and what their spools
// hold); AppendJSON writes version 2 only. A reader of version 1 sends a
// version 2 record to its dead-letter topic as a *VersionError, so sinks
// are upgraded before gateways.
//
// # Decoding
//
// DecodeSample is strict: the record is exactly one JSON object, keys are
// matched case-sensitively, unknown and repeated keys are errors, null is
// never a value. Unknown keys are refused rather than skipped because a
// sink sends records it does not fully understand to the dead-letter
// topic; a new key comes with a new schema version. A record whose v is an
// integer other than 1 or 2 gets a *VersionError (ErrSchemaVersion),
// checked before anything else in the record: it was written by a newer
// producer, and the fix is to upgrade the sink. Every other problem is a
// *SampleError (ErrMalformedSample) naming the key, such as "seq",
// "tags.line" or "fields.pressure".
//
// The decoder is a scanner written for this schema, one pass over the
// bytes (a tags, units or errors object not in a Decoder's caches is read
// a second time), without reflection or encoding/json. It follows
// encoding/json's rules to the error message (the syntax errors are its
// scanner's), since the sink's dead letters carry them. The encoding/json
// decoder it replaced is kept in the tests as the reference, and a fuzz
// test (FuzzDecodeSampleAgainstStd, run for minutes at a time) requires
// both to return the same sample, or the same error type naming the same
// key with the same message, for any input, from DecodeSample and from a
// Decoder whose caches earlier inputs filled.
//
// A Decoder is for a reader of many records, such as the sink's pipeline:
// it keeps valid names, field names and short strings, and the tags,
// units and errors objects it decoded, by their bytes, so a sample of a
// device it has seen costs a few allocations (its Fields map) instead of
// hundreds. Its samples may share those tags, units and errors maps, and
// are read only; nothing they hold points into the record or into the
// decoder's own scratch space, so they stay valid whatever it decodes
// next. docs/BENCHMARKS.md has the figures (BenchmarkDecodeSample).
package devices

// Package telegraf imports Telegraf's Modbus input: it turns the
// [[inputs.modbus]] sections of a Telegraf config (TOML) into a gateway
// config and register maps, and says, with the Telegraf file and line,
// what it did not carry over and what it carried over with a difference.
// `gateway import-telegraf` runs it.
//
//	src, _ := os.ReadFile("telegraf.conf")
//	res, err := telegraf.Import("telegraf.conf", src, telegraf.Options{Factory: "plant-a"})
//	if err != nil { ... }                     // not TOML: a *SyntaxError with the line
//	for _, issue := range res.Issues { fmt.Println(issue) }
//	if res.Importable() {
//		_, err = res.Write("/etc/factorywire", false) // gateway.yaml, devices/<class>.yaml
//	}
//
// The mapping follows Telegraf v1.37.2 (plugins/inputs/modbus: README.md,
// configuration_register.go, configuration_request.go,
// configuration_metric.go, type_conversions*.go), all three configuration
// styles: register (the default), request and metric.
//
// # Devices, classes, connections
//
// Telegraf writes one series per measurement, slave and tag set; a
// factorywire sample is one poll of one device. So each input becomes one
// device per slave_id, measurement and tag set, and each measurement a
// class (its register map), named by the metric name Telegraf gives it
// (measurement, default "modbus", after name_override, name_prefix and
// name_suffix) made to fit [a-z0-9-]. Devices of one measurement whose
// fields differ get classes of their own, <measurement>-<device>; devices
// whose fields are the same share the class. Telegraf's own tags name,
// slave_id, type and host are not carried over as tags: a sample names its
// device, class and factory, and the device config its unit. Device ids are the input's
// name made to fit [A-Za-z0-9._-], with -<slave> and -<class> appended
// when the input has several, and -2, -3 when still not unique. Inputs on
// the same controller share one connection (the gateway keeps one per
// link, Telegraf one per input); the first input's settings win, and a
// different setting of a later one is a warning.
//
// # Settings
//
//	Telegraf                                      gateway
//	controller tcp://host:port                    connections: transport tcp, address host:port
//	controller file:///dev/ttyUSB0, COM1          transport rtu, address /dev/ttyUSB0
//	transmission_mode RTUoverTCP, ASCIIoverTCP    transport rtu_over_tcp, ascii_over_tcp
//	transmission_mode ASCII (serial)              transport ascii
//	baud_rate, data_bits, parity, stop_bits       the same keys (serial transports only; data bits 7 or 8)
//	timeout                                       timeout (unset: Telegraf has none, the gateway 1s)
//	busy_retries N                                busy_tries N+1 (at most 10): first try and retries
//	busy_retries_wait                             busy_backoff (the gateway doubles it at each retry)
//	workarounds.pause_after_connect               pause_after_connect
//	workarounds.pause_between_requests            pause_between_requests
//	workarounds.close_connection_after_gather     close_after_scan
//	slave_id (default 0)                          unit (written always: the gateway's default is 1)
//	interval, else [agent] interval, else 10s     interval (at least 100ms)
//	[global_tags], [inputs.modbus.tags],          tags: a map per device; the request's or metric's
//	  request and metric tags                       tag wins over the input's, which wins over global
//	optimization max_insert, ..._register_fill    max_gap (fill in registers; bits: fill/16)
//	optimization none, shrink, rearrange          max_gap 0, or the widest gap omitted fields fill
//	[[outputs.kafka]] brokers                     kafka.brokers
//
// Not carried over, each with a line in the report: rs485,
// one_request_per_field, read_coils_starting_at_zero,
// string_register_location lower/upper (and the STRING fields it applies
// to), metric filters (fieldpass, tagdrop, ...), collection_jitter and
// _offset, precision, log_level, other inputs, outputs but the brokers of
// outputs.kafka, processors and aggregators, agent settings but interval,
// and any key the importer does not know.
//
// # Fields
//
// Addresses are the same numbers: Telegraf's address is the 0-based
// address of the Modbus PDU, as the register map's. Types:
//
//	Telegraf                                     register map
//	INT16 UINT16 INT32 UINT32 INT64 UINT64       int16 ... uint64
//	FLOAT32, FLOAT64 (request, metric)           float32, float64
//	FLOAT32-IEEE, FLOAT64-IEEE (register)        float32, float64
//	FIXED, UFIXED of 1, 2, 4 registers           int16/int32/int64, uint16/uint32/uint64, with scale
//	FLOAT32 (register style)                     float32 (IEEE 754 of two registers, as Telegraf v1.37
//	                                               reads it; v1.37.2 panics on one); before v1.37
//	                                               it was UFIXED: Options.LegacyFloat32
//	BIT with bit                                 bool with bit (a low-byte-first order moves it by 8)
//	STRING with length / addresses               string with length
//	coil, discrete (UINT16 or BOOL output)       bool in coil, discrete_input
//	INT8L INT8H UINT8L UINT8H FLOAT16(-IEEE)     not carried over: no such type
//
// Byte orders: ABCD, CDAB, BADC and DCBA name the same layouts in both
// (MSW-BE, MSW-LE, LSW-BE and LSW-LE are ABCD, BADC, CDAB and DCBA; the
// register style's AB and BA are ABCD and DCBA, its ABCDEFGH, BADCFEHG,
// GHEFCDAB and HGFEDCBA are ABCD, BADC, CDAB and DCBA). One register, a
// bit of one and a string's registers take Telegraf's order for their
// bytes only: ABCD and CDAB high byte first, BADC and DCBA low byte first
// (BADC in the register map).
//
// Values: a number's scale is carried over as scale (raw × scale, as
// Telegraf computes it). Where Telegraf then converts the result, the
// gateway does not, and the report says so for the field: the register
// style outputs INT16 ... UINT64 as an integer of that type, so it cuts a
// scaled value (12.34 becomes 12) and the gateway keeps the fraction (a
// warning); so does output = "INT64" or "UINT64" with a scale, or of a
// float; output = "UINT64" of a signed type wraps negative values around,
// the gateway keeps the sign (warnings); a scale of 1.0 or output =
// "FLOAT64" makes Telegraf write an integer as a float, the gateway keeps
// the integer (a note). Coils, discrete inputs and BIT fields are 0 or 1
// in Telegraf (UINT16 unless output or data_type is BOOL), false or true
// here (a note). A float32 reads as its shortest decimal (123.456, not
// 123.45600128173828) and a 1/n scale divides (1234 × 0.1 is 123.4), so
// floats may differ from Telegraf's in the last digits. A string ends at
// its first NUL and loses trailing spaces; Telegraf removes one trailing
// NUL only.
//
// The register map refuses what Telegraf allows: fields that overlap
// (the later one is not carried over; bools of one register may share it)
// and two fields of a device with one name (Telegraf keeps them apart by
// measurement or by its type tag): the later is renamed
// <name>_<coil|discrete|holding|input>. Field names are made to fit
// [a-z][a-z0-9_]* ("Voltage L1" is voltage_l1, "4x0102:INT" f_4x0102_int).
// Fields with omit = true are not carried over; the gaps they fill set
// max_gap, so the gateway reads through them as Telegraf does.
//
// # Report
//
// Every key of every section is either taken or reported, so nothing in
// the file is dropped without a line. An Issue is a Warning when something
// Telegraf did is not done, or not done the same way, and a Note when only
// the form changes or the setting has no bearing on the samples.
// Issue.String formats one as
//
//	telegraf.conf:108: warning: inputs.modbus "Device" holding_registers "firmware": not carried over: overlaps "energy" (line 104) ...
//
// Lines come from a second, position-only pass over the file (BurntSushi
// toml, which parses it, keeps key positions to itself).
package telegraf

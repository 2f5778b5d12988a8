package devices

// DecodeSampleStd is the encoding/json-based reference decoder, for the
// benchmark in package devices_test.
var DecodeSampleStd = decodeSampleStd

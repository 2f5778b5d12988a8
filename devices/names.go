package devices

import (
	"fmt"
	"unicode/utf8"

	"github.com/factorywire/factorywire/topics"
)

// MaxNameLen is the longest factory name, class name, field name or
// device id, in bytes. It keeps <prefix>.<factory>.<class>.dlq well under
// Kafka's 249-character topic limit.
const MaxNameLen = topics.MaxSegmentLen

// ValidateName checks a factory or class name, which becomes a segment of
// a topic name: the grammar of topics.ValidateSegment (1 to 64 lower-case
// letters, digits and '-', not starting or ending with '-', not "dlq").
func ValidateName(s string) error { return topics.ValidateSegment("name", s) }

// ValidateDevice checks a device id, the record key of its samples: 1 to
// MaxNameLen letters, digits, '-', '_' and '.', starting with a letter or
// digit.
func ValidateDevice(s string) error {
	ok := s != "" && len(s) <= MaxNameLen && (isLetter(s[0]) || isDigit(s[0]))
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isLetter(c) || isDigit(c) || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("invalid device id %q: use 1 to %d letters, digits, '-', '_' and '.', starting with a letter or digit", s, MaxNameLen)
	}
	return nil
}

// validateFieldName checks a field name, which becomes a MongoDB field
// name: 1 to MaxNameLen lower-case letters, digits and '_', starting with a
// letter (so never '$' or '.', which MongoDB reserves).
func validateFieldName(s string) error {
	if !isFieldName(s) {
		return fmt.Errorf("invalid field name %q: use 1 to %d lower-case letters, digits and '_', starting with a letter", s, MaxNameLen)
	}
	return nil
}

// isFieldName reports whether s is 1 to MaxNameLen lower-case letters,
// digits and '_', starting with a letter.
func isFieldName(s string) bool {
	ok := s != "" && len(s) <= MaxNameLen && isLower(s[0])
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isLower(c) || isDigit(c) || c == '_'
	}
	return ok
}

func isLower(c byte) bool  { return 'a' <= c && c <= 'z' }
func isLetter(c byte) bool { return isLower(c) || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// Limits of the static tags and units a sample carries (schema version
// 2; see the package documentation).
const (
	// MaxTags is the most tags one device, and so one sample, has.
	MaxTags = 32
	// MaxTagValueLen is the longest tag value, in bytes.
	MaxTagValueLen = 256
	// MaxUnitLen is the longest unit of a field, in bytes.
	MaxUnitLen = 64
)

// ValidateTag checks one static tag of a device. The key follows the
// field-name grammar (1 to MaxNameLen lower-case letters, digits and '_',
// starting with a letter), because it becomes a MongoDB field name under
// meta.tags; the value is 1 to MaxTagValueLen bytes of UTF-8.
func ValidateTag(key, value string) error {
	if !isFieldName(key) {
		return fmt.Errorf("invalid tag key %q: use 1 to %d lower-case letters, digits and '_', starting with a letter", key, MaxNameLen)
	}
	return validateText("value", value, MaxTagValueLen)
}

// validateUnit checks a field's unit as a sample carries it: 1 to
// MaxUnitLen bytes of UTF-8.
func validateUnit(unit string) error { return validateText("unit", unit, MaxUnitLen) }

// validateText checks that s is 1 to maxLen bytes of UTF-8; what names s
// in the error.
func validateText(what, s string, maxLen int) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > maxLen:
		return fmt.Errorf("%s is %d bytes long, at most %d", what, len(s), maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	return nil
}

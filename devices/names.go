package devices

import (
	"fmt"

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
	ok := s != "" && len(s) <= MaxNameLen && isLower(s[0])
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isLower(c) || isDigit(c) || c == '_'
	}
	if !ok {
		return fmt.Errorf("invalid field name %q: use 1 to %d lower-case letters, digits and '_', starting with a letter", s, MaxNameLen)
	}
	return nil
}

func isLower(c byte) bool  { return 'a' <= c && c <= 'z' }
func isLetter(c byte) bool { return isLower(c) || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

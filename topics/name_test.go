package topics

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Name
	}{
		{"plant-a.press", Name{Factory: "plant-a", Class: "press"}},
		{"prod.plant-a.press", Name{Prefix: "prod", Factory: "plant-a", Class: "press"}},
		{"plant-a.press.dlq", Name{Factory: "plant-a", Class: "press", DLQ: true}},
		{"prod.plant-a.power-meter.dlq", Name{Prefix: "prod", Factory: "plant-a", Class: "power-meter", DLQ: true}},
		{"p1.c2", Name{Factory: "p1", Class: "c2"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.in {
				t.Fatalf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("a", 65)
	for _, tc := range []struct {
		in, want string
	}{
		{"press", "want <factory>.<class>"},
		{"a.b.c.d", "want <factory>.<class>"},
		{"plant_a.press", `invalid factory "plant_a"`},
		{"Plant-a.press", `factory "Plant-a"`},
		{"plant-a.-press", `class "-press"`},
		{"plant-a.press-", `class "press-"`},
		{"plant-a..press", `factory ""`},
		{"plant-a.dlq", `class "dlq": reserved`},
		{"dlq.plant-a.press", `invalid prefix "dlq": reserved`},
		{long + ".press", "use 1 to 64"},
		{strings.Repeat("a.", 130) + "b", "Kafka allows 249"},
		{"plant-a.press.dlq.dlq", `class "dlq": reserved`},
		{".press", `factory ""`},
		{".0.0", `prefix ""`},
	} {
		t.Run(tc.in[:min(len(tc.in), 30)], func(t *testing.T) {
			_, err := Parse(tc.in)
			if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v, want ErrInvalidName mentioning %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestNameHelpers(t *testing.T) {
	n, err := New("prod", "plant-a", "press")
	if err != nil {
		t.Fatal(err)
	}
	if d := n.DeadLetter(); d.String() != "prod.plant-a.press.dlq" || d.Samples() != n || d.Collection() != "prod.plant-a.press" {
		t.Fatalf("dead letter %q, samples %q, collection %q", d, d.Samples(), d.Collection())
	}
	if _, err := New("", "plant-a", "Press"); err == nil {
		t.Fatal("New accepted an upper-case class")
	}
	// The longest valid name fits Kafka's limit.
	seg := strings.Repeat("x", MaxSegmentLen)
	longest := Name{Prefix: seg, Factory: seg, Class: seg, DLQ: true}
	if err := longest.Validate(); err != nil || len(longest.String()) > MaxTopicLen {
		t.Fatalf("longest name: %v, %d characters", err, len(longest.String()))
	}
}

// FuzzParse: Parse never panics; whatever it accepts prints back to the
// same string, stays within Kafka's limit and uses only Kafka's legal
// characters.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"plant-a.press", "prod.plant-a.press.dlq", "a.b.c.d", "plant_a.press", "", ".", "x.dlq"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			return
		}
		if n.String() != s || len(s) > MaxTopicLen {
			t.Fatalf("Parse(%q) = %+v printing %q", s, n, n.String())
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
				t.Fatalf("accepted %q with %q", s, c)
			}
		}
	})
}

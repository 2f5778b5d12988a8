package devices

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestValueAppendJSON(t *testing.T) {
	cases := []struct {
		name string
		v    Value
		want string
	}{
		{"true", BoolValue(true), "true"},
		{"false", BoolValue(false), "false"},
		{"int", Int64Value(-42), "-42"},
		{"int min", Int64Value(math.MinInt64), "-9223372036854775808"},
		{"uint beyond 2^53", Uint64Value(1<<53 + 1), "9007199254740993"},
		{"uint max", Uint64Value(math.MaxUint64), "18446744073709551615"},
		{"float fraction", Float64Value(12.5), "12.5"},
		{"float integral", Float64Value(2), "2.0"},
		{"float zero", Float64Value(0), "0.0"},
		{"float negative zero", Float64Value(math.Copysign(0, -1)), "-0.0"},
		{"float large", Float64Value(1e20), "100000000000000000000.0"},
		{"float exponent", Float64Value(1e21), "1e+21"},
		{"float small", Float64Value(1e-7), "1e-7"},
		{"float smallest", Float64Value(5e-324), "5e-324"},
		{"float tenth", Float64Value(0.1), "0.1"},
		{"float NaN", Float64Value(math.NaN()), "null"},
		{"float Inf", Float64Value(math.Inf(-1)), "null"},
		{"string", StringValue("PX-200"), `"PX-200"`},
		{"string escapes", StringValue("a\"b\\c\n\t\r\x00\x1f"), `"a\"b\\c\n\t\r\u0000\u001f"`},
		{"string unicode", StringValue("°C µs"), `"°C µs"`},
		{"string invalid utf8", StringValue("a\xffb"), `"a\ufffdb"`},
		{"invalid", Value{}, "null"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tc.v.AppendJSON(nil)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			if tc.want == "null" {
				return
			}
			var back Value
			if err := json.Unmarshal([]byte(tc.want), &back); err != nil {
				t.Fatal(err)
			}
			if tc.name != "string invalid utf8" && (!back.Equal(tc.v) || back.Kind() != tc.v.Kind() && tc.v.Kind() != KindUint64) {
				t.Fatalf("read back %v (%s), want %v (%s)", back, back.Kind(), tc.v, tc.v.Kind())
			}
		})
	}
}

func TestValueMarshalJSON(t *testing.T) {
	got, err := json.Marshal(map[string]Value{"a": Float64Value(1.5), "b": BoolValue(true), "c": Uint64Value(math.MaxUint64)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":1.5,"b":true,"c":18446744073709551615}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := json.Marshal(Float64Value(math.NaN())); !errors.Is(err, ErrNotFinite) {
		t.Fatalf("NaN: got %v, want ErrNotFinite", err)
	}
	for _, bad := range []string{`null`, `[1]`, `{"a":1}`, `1e999`} {
		var v Value
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", bad, v)
		}
	}
}

func TestValueEqual(t *testing.T) {
	cases := []struct {
		name string
		a, b Value
		want bool
	}{
		{"int and uint alike", Int64Value(5), Uint64Value(5), true},
		{"uint and int alike", Uint64Value(5), Int64Value(5), true},
		{"negative int and huge uint", Int64Value(-1), Uint64Value(math.MaxUint64), false},
		{"huge uint and negative int", Uint64Value(math.MaxUint64), Int64Value(-1), false},
		{"int and float", Int64Value(1), Float64Value(1), false},
		{"zeros", Float64Value(0), Float64Value(math.Copysign(0, -1)), true},
		{"NaN", Float64Value(math.NaN()), Float64Value(math.NaN()), false},
		{"strings", StringValue("a"), StringValue("a"), true},
		{"bools", BoolValue(true), BoolValue(false), false},
		{"invalid", Value{}, Value{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Equal(tc.b); got != tc.want {
				t.Fatalf("Equal = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestValueAccessors(t *testing.T) {
	if Int64Value(-3).Any() != int64(-3) || Uint64Value(3).Any() != uint64(3) || Float64Value(0.5).Any() != 0.5 ||
		BoolValue(true).Any() != true || StringValue("s").Any() != "s" || (Value{}).Any() != nil {
		t.Error("Any returned a wrong value")
	}
	if s := Float64Value(math.Inf(1)).String(); s != "+Inf" {
		t.Errorf("String(+Inf) = %q", s)
	}
	if s := (Value{}).String(); s != "<invalid>" {
		t.Errorf("String(zero) = %q", s)
	}
	defer func() {
		if recover() == nil {
			t.Error("Int64 of a string did not panic")
		}
	}()
	_ = StringValue("x").Int64()
}

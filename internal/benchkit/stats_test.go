package benchkit

import "testing"

func TestStats(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := append([]float64(nil), tc.in...)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("Median reordered its input: %v", in)
			}
		}
	}
	type run struct{ v float64 }
	if got := MedianOf([]run{{9}, {1}, {5}}, func(r run) float64 { return r.v }); got != 5 {
		t.Errorf("MedianOf = %v, want 5", got)
	}
	sorted := []int{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for p, want := range map[float64]int{0: 10, 50: 50, 99: 100, 100: 100} {
		if got := Percentile(sorted, p); got != want {
			t.Errorf("Percentile(p%v) = %d, want %d", p, got, want)
		}
	}
	if got := Percentile([]int(nil), 50); got != 0 {
		t.Errorf("Percentile of nothing = %d", got)
	}
}

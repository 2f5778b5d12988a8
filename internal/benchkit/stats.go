package benchkit

import (
	"cmp"
	"slices"
)

// Percentile returns the p-th percentile (nearest rank) of sorted values,
// or zero when there are none.
func Percentile[T cmp.Ordered](sorted []T, p float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	rank := int(p/100*float64(len(sorted))+0.5) - 1
	rank = min(max(rank, 0), len(sorted)-1)
	return sorted[rank]
}

// Median returns the median of values (the mean of the middle two for an
// even count), or zero when there are none. values is not modified.
func Median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MedianOf returns the median of f over the items.
func MedianOf[T any](items []T, f func(T) float64) float64 {
	vs := make([]float64, len(items))
	for i, it := range items {
		vs[i] = f(it)
	}
	return Median(vs)
}

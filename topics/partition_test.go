package topics

import "testing"

// Kafka's own murmur2 results (UtilsTest.testMurmur2): the partition of a
// key is (hash & 0x7fffffff) % n.
func TestPartitionMatchesKafka(t *testing.T) {
	for _, v := range []struct {
		key  string
		hash int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		for _, n := range []int32{1, 3, 6, 7, 12, 100} {
			want := int32(uint32(v.hash)&0x7fffffff) % n
			if got := Partition([]byte(v.key), n); got != want {
				t.Errorf("Partition(%q, %d) = %d, Kafka says %d", v.key, n, got, want)
			}
		}
	}
}

package mongots

import (
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/mongotest"
)

// BenchmarkWindow30Days compares a 30-day window of hourly buckets of one
// device's field over the hour rollups with the same window over the raw
// samples (a sample a minute: 43,200), in the same run:
//
//	go test -run '^$' -bench BenchmarkWindow30Days -benchtime 5x ./storage/mongots/
//	MONGODB_URI=mongodb://… go test -run '^$' -bench 'BenchmarkWindow30Days/mongodb' -benchtime 5x ./storage/mongots/
//
// On the FerretDB stand-in the raw window is Range plus the same
// combination client-side (FerretDB has no $dateTrunc, $min, $avg, $max);
// on MongoDB it is Window's aggregation on a time-series collection.
func BenchmarkWindow30Days(b *testing.B) {
	const days = 30
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(days * 24 * time.Hour)
	setup := func(b *testing.B, s *Store) {
		ctx := testCtx(b)
		if err := s.Ensure(ctx, CollectionSpec{Name: topic}); err != nil {
			b.Fatal(err)
		}
		if err := s.EnsureRollups(ctx, topic, PeriodHour, 0); err != nil {
			b.Fatal(err)
		}
		var docs []Doc
		var rollups []*Rollup
		for i := range days * 24 * 60 {
			smp := sample("press-01", 0, map[string]devices.Value{"pressure": devices.Float64Value(float64(i % 97))})
			smp.Seq, smp.Time = uint64(i), from.Add(time.Duration(i)*time.Minute)
			docs = append(docs, Doc{Sample: smp, Offset: int64(i)})
			if len(rollups) == 0 || !rollups[len(rollups)-1].Start.Equal(smp.Time.Truncate(time.Hour)) {
				rollups = append(rollups, NewRollup(topic, PeriodHour, &smp))
			}
			rollups[len(rollups)-1].Fold(&smp)
		}
		if _, err := s.Write(ctx, topic, docs); err != nil {
			b.Fatal(err)
		}
		if conflicts, err := s.SaveRollups(ctx, topic, PeriodHour, rollups); err != nil || len(conflicts) > 0 {
			b.Fatal(conflicts, err)
		}
	}
	check := func(b *testing.B, buckets []Bucket) {
		if len(buckets) != days*24 || buckets[0].Count != 60 {
			b.Fatalf("%d buckets (first %+v), want %d of 60 values", len(buckets), buckets[0], days*24)
		}
	}
	run := func(b *testing.B, s *Store, raw func() ([]Bucket, error)) {
		ctx := testCtx(b)
		b.Run("rollups", func(b *testing.B) {
			for range b.N {
				buckets, err := s.RollupWindow(ctx, topic, PeriodHour, "press-01", "pressure", from, to, "hour", 1)
				if err != nil {
					b.Fatal(err)
				}
				check(b, buckets)
			}
		})
		b.Run("raw", func(b *testing.B) {
			for range b.N {
				buckets, err := raw()
				if err != nil {
					b.Fatal(err)
				}
				check(b, buckets)
			}
		})
	}
	b.Run("ferretdb", func(b *testing.B) {
		opts, _ := standIn()
		s, _ := ferretStore(b, opts)
		setup(b, s)
		run(b, s, func() ([]Bucket, error) {
			samples, err := s.Range(testCtx(b), topic, "press-01", from, to, 0)
			if err != nil {
				return nil, err
			}
			return hourly(samples), nil
		})
	})
	b.Run("mongodb", func(b *testing.B) {
		opts := DefaultOptions()
		opts.Database = mongotest.DatabaseName("window_bench")
		s := New(mongotest.Connect(b, mongotest.RealURI(b), nil), opts)
		mongotest.DropDatabase(b, s.Database())
		setup(b, s)
		run(b, s, func() ([]Bucket, error) {
			return s.Window(testCtx(b), topic, "press-01", "pressure", from, to, "hour", 1)
		})
	})
}

// hourly combines samples' pressure into hourly buckets, as Window would.
func hourly(samples []devices.Sample) []Bucket {
	bins := binner{bin: time.Hour}
	for _, smp := range samples {
		x := smp.Fields["pressure"].Float64()
		bins.add(smp.Time, 1, x, x, x)
	}
	return bins.buckets()
}

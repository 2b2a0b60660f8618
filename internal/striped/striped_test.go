package striped

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// collect gathers what c exposes, one metric per series.
func collect(t *testing.T, c prometheus.Collector) []*dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var out []*dto.Metric
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		out = append(out, &d)
	}
	return out
}

// TestHistogramMatchesPrometheus observes the same values, bucket bounds included, in a
// striped histogram (spread over every stripe) and in client_golang's own, and compares
// count, sum and every bucket.
func TestHistogramMatchesPrometheus(t *testing.T) {
	upper := []float64{0.001, 0.01, 0.1, 1}
	cases := []struct {
		name   string
		values []float64
	}{
		{"none", nil},
		{"on the bounds", []float64{0.001, 0.01, 0.1, 1}},
		{"between and beyond", []float64{0, 0.0005, 0.002, 0.05, 0.5, 2, 1e9, -1}},
		{"many in one bucket", []float64{0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.099}},
		{"infinities", []float64{math.Inf(-1), math.Inf(1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := NewHistogramVec("h", "help", upper, "l")
			ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "help", Buckets: upper})
			h := v.WithLabelValues("x")
			for i, x := range c.values {
				h.Observe(uint32(i*7), x)
				ref.Observe(x)
			}
			got := collect(t, v)
			if len(got) != 1 {
				t.Fatalf("%d series, want 1", len(got))
			}
			want := collect(t, ref)[0].GetHistogram()
			g := got[0].GetHistogram()
			if g.GetSampleCount() != want.GetSampleCount() || math.Abs(g.GetSampleSum()-want.GetSampleSum()) > 1e-9 {
				t.Errorf("count %d sum %g, want %d %g", g.GetSampleCount(), g.GetSampleSum(), want.GetSampleCount(), want.GetSampleSum())
			}
			if len(g.GetBucket()) != len(want.GetBucket()) {
				t.Fatalf("%d buckets, want %d", len(g.GetBucket()), len(want.GetBucket()))
			}
			for i, b := range want.GetBucket() {
				gb := g.GetBucket()[i]
				if gb.GetUpperBound() != b.GetUpperBound() || gb.GetCumulativeCount() != b.GetCumulativeCount() {
					t.Errorf("bucket %d: le=%g %d, want le=%g %d", i, gb.GetUpperBound(), gb.GetCumulativeCount(), b.GetUpperBound(), b.GetCumulativeCount())
				}
			}
			if l := got[0].GetLabel(); len(l) != 1 || l[0].GetName() != "l" || l[0].GetValue() != "x" {
				t.Errorf("labels %v", l)
			}
		})
	}
}

// TestBucketAsSearchFloat64s: the request path's bucket search picks what
// sort.SearchFloat64s (client_golang's) picks, for bounds, values between and beyond them,
// infinities and NaN, over bound lists of every length up to 9.
func TestBucketAsSearchFloat64s(t *testing.T) {
	all := []float64{-1, 0, 0.001, 0.0025, 0.01, 0.1, 1, 10, 100}
	values := []float64{math.Inf(-1), -2, -1, 0, 0.0005, 0.001, 0.002, 0.0025, 0.05, 1, 5, 100, 1e9, math.Inf(1), math.NaN()}
	for n := range len(all) + 1 {
		upper := all[:n]
		for _, v := range values {
			if got, want := bucket(upper, v), sort.SearchFloat64s(upper, v); got != want {
				t.Errorf("bounds %v, value %g: bucket %d, want %d", upper, v, got, want)
			}
		}
	}
}

// TestConcurrentCounts adds from many goroutines over every stripe (run it with -race) and
// checks the sums, through Value and through the exposition format.
func TestConcurrentCounts(t *testing.T) {
	cv := NewCounterVec("test_requests_total", "Requests.", "protocol", "kind")
	hv := NewHistogramVec("test_latency_seconds", "Latency.", []float64{1, 2}, "protocol")
	const goroutines, each = 8, 1000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			c := cv.WithLabelValues("modbus", "read") // the same series from every goroutine
			o := hv.WithLabelValues("modbus").Observer(uint32(g))
			for i := range each {
				c.Inc(uint32(g*each + i))
				cv.WithLabelValues("modbus", "write").Add(uint32(i), 2)
				o.Observe(1.5)
			}
		})
	}
	wg.Wait()
	if got := cv.WithLabelValues("modbus", "read").Value(); got != goroutines*each {
		t.Errorf("read = %d, want %d", got, goroutines*each)
	}
	want := `# HELP test_requests_total Requests.
# TYPE test_requests_total counter
test_requests_total{kind="read",protocol="modbus"} 8000
test_requests_total{kind="write",protocol="modbus"} 16000
`
	if err := testutil.CollectAndCompare(cv, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	wantH := `# HELP test_latency_seconds Latency.
# TYPE test_latency_seconds histogram
test_latency_seconds_bucket{protocol="modbus",le="1"} 0
test_latency_seconds_bucket{protocol="modbus",le="2"} 8000
test_latency_seconds_bucket{protocol="modbus",le="+Inf"} 8000
test_latency_seconds_sum{protocol="modbus"} 12000
test_latency_seconds_count{protocol="modbus"} 8000
`
	if err := testutil.CollectAndCompare(hv, strings.NewReader(wantH)); err != nil {
		t.Error(err)
	}
}

// TestWrongLabelCount panics as client_golang's vectors do.
func TestWrongLabelCount(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a missing label value")
		}
	}()
	NewCounterVec("c", "help", "a", "b").WithLabelValues("only")
}

// TestNoAllocs: adding and observing allocate nothing.
func TestNoAllocs(t *testing.T) {
	c := NewCounterVec("c", "help", "a").WithLabelValues("x")
	o := NewHistogramVec("h", "help", []float64{1}, "a").WithLabelValues("x").Observer(3)
	if n := testing.AllocsPerRun(100, func() { c.Inc(5); o.Observe(0.5) }); n != 0 {
		t.Errorf("%v allocations per add and observe", n)
	}
}

func BenchmarkCounterInc(b *testing.B) {
	c := NewCounterVec("c", "help", "a").WithLabelValues("x")
	b.ReportAllocs()
	var next atomic.Uint32
	b.RunParallel(func(pb *testing.PB) {
		s := next.Add(1) // a stripe per goroutine, as a session keeps one
		for pb.Next() {
			c.Inc(s)
		}
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	o := NewHistogramVec("h", "help", []float64{0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}, "a").
		WithLabelValues("x").Observer(1)
	b.ReportAllocs()
	for b.Loop() {
		o.Observe(0.00012)
	}
}

// BenchmarkPrometheusCounterInc is the same parallel load on one client_golang counter,
// whose single atomic word every goroutine writes: the comparison for BenchmarkCounterInc.
func BenchmarkPrometheusCounterInc(b *testing.B) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c", Help: "help"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

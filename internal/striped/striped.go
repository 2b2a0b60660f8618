// Package striped holds Prometheus counters and histograms for request paths. Each one is
// spread over Stripes cells of a cache line each: a writer adds to the cell of its stripe
// and a scrape sums the cells. Writers that keep to different stripes (one per session,
// say) never write the same cache line, so goroutines on different CPUs counting the same
// series do not pass the line back and forth between their caches on every request, as
// one shared atomic word would.
package striped

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stripes is how many cells each series has; a stripe number is taken modulo Stripes.
const Stripes = 16

// lineWords is the 64-bit words of one cache line.
const lineWords = 8

// Counter is one striped counter series.
type Counter struct {
	labels []string
	cells  [Stripes]struct {
		v atomic.Uint64
		_ [lineWords - 1]uint64
	}
}

// Add adds n in stripe s's cell.
func (c *Counter) Add(s uint32, n uint64) { c.cells[s%Stripes].v.Add(n) }

// Inc adds one in stripe s's cell.
func (c *Counter) Inc(s uint32) { c.cells[s%Stripes].v.Add(1) }

// Value is the sum over the stripes.
func (c *Counter) Value() uint64 {
	var n uint64
	for i := range c.cells {
		n += c.cells[i].v.Load()
	}
	return n
}

// Histogram is one striped histogram series. Each stripe holds a count per bucket (the
// last is +Inf) and the sum of the observations, in whole cache lines.
type Histogram struct {
	labels []string
	upper  []float64 // bucket upper bounds, ascending, without +Inf
	stride int       // words per stripe
	words  []atomic.Uint64
	bound  [Stripes]stripeObserver
}

// stripeObserver is a prometheus.Observer that observes in one stripe.
type stripeObserver struct {
	h *Histogram
	s uint32
}

func (o *stripeObserver) Observe(v float64) { o.h.Observe(o.s, v) }

func newHistogram(upper []float64, labels []string) *Histogram {
	n := len(upper) + 2 // the buckets, +Inf and the sum
	h := &Histogram{labels: labels, upper: upper, stride: (n + lineWords - 1) / lineWords * lineWords}
	h.words = make([]atomic.Uint64, Stripes*h.stride)
	for i := range h.bound {
		h.bound[i] = stripeObserver{h: h, s: uint32(i)}
	}
	return h
}

// Observe records v in stripe s.
func (h *Histogram) Observe(s uint32, v float64) {
	w := h.words[int(s%Stripes)*h.stride:]
	w[bucket(h.upper, v)].Add(1)
	sum := &w[len(h.upper)+1]
	for {
		old := sum.Load()
		if sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// bucket returns the index of the first bound in upper (ascending) that is ≥ v, len(upper)
// when none is (+Inf): sort.SearchFloat64s without its closure calls, for the request path.
func bucket(upper []float64, v float64) int {
	lo, hi := 0, len(upper)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !(upper[m] >= v) { // as sort.SearchFloat64s: NaN goes to +Inf
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Observer returns a prometheus.Observer that records in stripe s.
func (h *Histogram) Observer(s uint32) prometheus.Observer { return &h.bound[s%Stripes] }

// snapshot sums the stripes: the observation count, their sum and the cumulative count
// per bucket bound. The count is the sum of the buckets, so a scrape never shows a count
// that disagrees with them.
func (h *Histogram) snapshot() (count uint64, sum float64, buckets map[float64]uint64) {
	per := make([]uint64, len(h.upper)+1)
	for s := range Stripes {
		w := h.words[s*h.stride:]
		for i := range per {
			per[i] += w[i].Load()
		}
		sum += math.Float64frombits(w[len(h.upper)+1].Load())
	}
	buckets = make(map[float64]uint64, len(h.upper))
	for i, b := range h.upper {
		count += per[i]
		buckets[b] = count
	}
	return count + per[len(h.upper)], sum, buckets
}

// family is the labelled series of one metric, created on first use.
type family[T any] struct {
	desc      *prometheus.Desc
	labels    int
	mu        sync.Mutex
	byKey     map[string]*T
	all       atomic.Pointer[[]*T] // for scrapes, replaced when a series is added
	newSeries func(labels []string) *T
}

func (f *family[T]) with(values []string) *T {
	if len(values) != f.labels {
		panic("striped: " + f.desc.String() + ": wrong number of label values")
	}
	key := strings.Join(values, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.byKey[key]; ok {
		return t
	}
	t := f.newSeries(append([]string(nil), values...))
	f.byKey[key] = t
	var all []*T
	if p := f.all.Load(); p != nil {
		all = append(all, *p...)
	}
	all = append(all, t)
	f.all.Store(&all)
	return t
}

func (f *family[T]) series() []*T {
	if p := f.all.Load(); p != nil {
		return *p
	}
	return nil
}

// CounterVec is a family of striped counters with the given label names, a
// prometheus.Collector.
type CounterVec struct{ f family[Counter] }

// NewCounterVec returns a counter family; its series appear when first asked for.
func NewCounterVec(name, help string, labels ...string) *CounterVec {
	return &CounterVec{f: family[Counter]{desc: prometheus.NewDesc(name, help, labels, nil), labels: len(labels),
		byKey: map[string]*Counter{}, newSeries: func(l []string) *Counter { return &Counter{labels: l} }}}
}

// WithLabelValues returns the series of these label values, creating it at zero. Callers
// on a request path keep what it returns rather than asking per request.
func (v *CounterVec) WithLabelValues(values ...string) *Counter { return v.f.with(values) }

// Describe implements prometheus.Collector.
func (v *CounterVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.f.desc }

// Collect implements prometheus.Collector.
func (v *CounterVec) Collect(ch chan<- prometheus.Metric) {
	for _, c := range v.f.series() {
		ch <- prometheus.MustNewConstMetric(v.f.desc, prometheus.CounterValue, float64(c.Value()), c.labels...)
	}
}

// HistogramVec is a family of striped histograms with the given bucket bounds and label
// names, a prometheus.Collector.
type HistogramVec struct{ f family[Histogram] }

// NewHistogramVec returns a histogram family; upper holds the bucket bounds in ascending
// order, without +Inf.
func NewHistogramVec(name, help string, upper []float64, labels ...string) *HistogramVec {
	if !sort.Float64sAreSorted(upper) {
		panic("striped: " + name + ": bucket bounds out of order")
	}
	upper = append([]float64(nil), upper...)
	return &HistogramVec{f: family[Histogram]{desc: prometheus.NewDesc(name, help, labels, nil), labels: len(labels),
		byKey: map[string]*Histogram{}, newSeries: func(l []string) *Histogram { return newHistogram(upper, l) }}}
}

// WithLabelValues returns the series of these label values, creating it empty.
func (v *HistogramVec) WithLabelValues(values ...string) *Histogram { return v.f.with(values) }

// Describe implements prometheus.Collector.
func (v *HistogramVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.f.desc }

// Collect implements prometheus.Collector.
func (v *HistogramVec) Collect(ch chan<- prometheus.Metric) {
	for _, h := range v.f.series() {
		count, sum, buckets := h.snapshot()
		ch <- prometheus.MustNewConstHistogram(v.f.desc, count, sum, buckets, h.labels...)
	}
}

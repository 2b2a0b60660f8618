package sensor

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// busCollector exports the counters of the current bus's sinks at scrape time: the hot
// path counts with atomics of its own and never touches Prometheus.
type busCollector struct {
	bus atomic.Pointer[Bus]

	sent, dropped, queued, capacity, lastOK, spooled *prometheus.Desc
}

func newBusCollector() *busCollector {
	sink := []string{"sink"}
	return &busCollector{
		sent: prometheus.NewDesc("icsnare_events_written_total",
			"Events each sink wrote (sent).", sink, nil),
		dropped: prometheus.NewDesc("icsnare_events_dropped_total",
			"Events a sink lost: queue_full (its queue was full), write_error (its Write failed), shutdown (still queued when the shutdown budget ran out).",
			[]string{"sink", "reason"}, nil),
		queued: prometheus.NewDesc("icsnare_events_queued",
			"Events waiting in each sink's queue now.", sink, nil),
		capacity: prometheus.NewDesc("icsnare_events_queue_capacity",
			"Events each sink's queue holds at most (events.buffer).", sink, nil),
		lastOK: prometheus.NewDesc("icsnare_events_last_success_timestamp_seconds",
			"When each sink last wrote a batch without error (0: never).", sink, nil),
		spooled: prometheus.NewDesc("icsnare_events_spooled",
			"Events a spooling sink holds for later delivery.", sink, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *busCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sent, c.dropped, c.queued, c.capacity, c.lastOK, c.spooled} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *busCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.bus.Load()
	if b == nil {
		return
	}
	for _, st := range b.Stats() {
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(st.Sent), st.Name)
		for r, n := range st.Dropped {
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), st.Name, DropReasons[r])
		}
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(st.Queued), st.Name)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(st.QueueCap), st.Name)
		var t float64
		if !st.LastOK.IsZero() {
			t = float64(st.LastOK.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(c.lastOK, prometheus.GaugeValue, t, st.Name)
		// A sink without a spool has none waiting: 0, so alerts on the series work for
		// every sink from the first scrape.
		ch <- prometheus.MustNewConstMetric(c.spooled, prometheus.GaugeValue, float64(max(st.Spooled, 0)), st.Name)
	}
}

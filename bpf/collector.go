package bpf

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descPackets = prometheus.NewDesc("icsnare_xdp_packets_total",
		"Packets seen by the XDP rate limiter, by UDP port (\"0\": not tied to a rule), request class, action and reason.",
		[]string{"port", "class", "action", "reason"}, nil)
	descBytes = prometheus.NewDesc("icsnare_xdp_bytes_total",
		"Bytes seen by the XDP rate limiter, by UDP port, request class, action and reason.",
		[]string{"port", "class", "action", "reason"}, nil)
	descSources = prometheus.NewDesc("icsnare_xdp_sources",
		"Entries in the per-source LRU table (occupancy).", nil, nil)
	descCapacity = prometheus.NewDesc("icsnare_xdp_sources_capacity",
		"Capacity of the per-source LRU table.", nil, nil)
	descLimited = prometheus.NewDesc("icsnare_xdp_sources_limited",
		"Sources with a drop within the quiet period.", nil, nil)
	descRule = prometheus.NewDesc("icsnare_xdp_rule_requests_per_minute",
		"Configured limit per port, request class and scope (0: unlimited).", []string{"port", "class", "scope"}, nil)
	descLost = prometheus.NewDesc("icsnare_xdp_notifications_lost_total",
		"Limit-state notifications the kernel could not queue.", nil, nil)
	descSuppressed = prometheus.NewDesc("icsnare_xdp_notifications_suppressed_total",
		"Limit-state notifications not delivered because of their own rate limit.", nil, nil)
	descAttached = prometheus.NewDesc("icsnare_xdp_attached",
		"1 per interface the limiter is attached to, with the XDP mode (native or generic).",
		[]string{"interface", "mode"}, nil)
	descErrors = prometheus.NewDesc("icsnare_xdp_scrape_errors",
		"1 if reading the XDP maps failed during this scrape.", nil, nil)
)

// Collector returns a prometheus.Collector that reads the maps at scrape time.
func (r *Reader) Collector() prometheus.Collector { return &collector{r: r} }

// Collector returns a prometheus.Collector over the maps, the attachments and the
// notification counters.
func (l *Limiter) Collector() prometheus.Collector { return &collector{r: l.Reader, l: l} }

type collector struct {
	r *Reader
	l *Limiter
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descBytes, descSources, descCapacity, descLimited, descRule, descLost, descErrors} {
		ch <- d
	}
	if c.l != nil {
		ch <- descSuppressed
		ch <- descAttached
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	failed := 0.0
	if counters, err := c.r.Counters(); err == nil {
		for _, x := range counters {
			port := strconv.Itoa(int(x.Port))
			ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(x.Packets), port, x.Class, x.Action, x.Reason)
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(x.Bytes), port, x.Class, x.Action, x.Reason)
		}
	} else {
		failed = 1
	}
	if _, tracked, limited, err := c.r.TopSources(0); err == nil {
		ch <- prometheus.MustNewConstMetric(descSources, prometheus.GaugeValue, float64(tracked))
		ch <- prometheus.MustNewConstMetric(descLimited, prometheus.GaugeValue, float64(limited))
	} else {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(c.r.MaxSources()))
	if rules, err := c.r.Rules(); err == nil {
		for _, ru := range rules {
			p := strconv.Itoa(int(ru.Port))
			ch <- prometheus.MustNewConstMetric(descRule, prometheus.GaugeValue, float64(ru.PerSource), p, ru.Class, "source")
			ch <- prometheus.MustNewConstMetric(descRule, prometheus.GaugeValue, float64(ru.Global), p, ru.Class, "global")
		}
	} else {
		failed = 1
	}
	if lost, err := c.r.EventsLost(); err == nil {
		ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(lost))
	} else {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.GaugeValue, failed)
	if c.l != nil {
		ch <- prometheus.MustNewConstMetric(descSuppressed, prometheus.CounterValue, float64(c.l.Suppressed()))
		for ifname, mode := range c.l.Attachments() {
			ch <- prometheus.MustNewConstMetric(descAttached, prometheus.GaugeValue, 1, ifname, mode)
		}
	}
}

//go:build ignore
// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Copyright the icsnare authors.
 *
 * icsnare XDP rate limiter: per-source and per-port global token buckets for
 * UDP services (SNMP, BACnet/IP, IPMI, ...). Parses Ethernet with up to two
 * 802.1Q/802.1ad tags, IPv4 (with options) and IPv6 (hop-by-hop, routing and
 * destination options headers), then UDP. Only UDP datagrams to a configured
 * destination port are ever dropped; everything else is passed untouched.
 *
 * For ports whose rule says so, SNMP v1/v2c requests are classified by PDU type
 * (get, getnext, set, getbulk) and a rule for that class, when present, applies
 * with its own buckets. Then, for ports with pattern classes (any UDP protocol:
 * BACnet, IPMI, TFTP ...), the first 32 bytes of the payload are compared with
 * up to MAX_PATTERNS masked patterns in order; the first match names the class.
 * Everything else uses the port's rule.
 *
 * Tokens are kept in "units": one request is NS_PER_MIN units, so a bucket
 * refilled at R requests per minute gains exactly R units per elapsed
 * nanosecond. The arithmetic is exact integer arithmetic, no rounding.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define NS_PER_MIN 60000000000ULL
#define MAX_SLOTS 64   /* rule slots; slot 0 counts port-less events */
#define NR_REASONS 9
#define MAX_VLAN 2
#define MAX_EXTHDR 6

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

enum reason {
	R_PASS = 0,         /* within limits */
	R_DROP_SOURCE = 1,  /* per-source bucket empty */
	R_DROP_GLOBAL = 2,  /* global bucket empty (for this source) */
	R_DROP_NEW = 3,     /* source not known, global bucket at or below the reserve */
	R_FRAGMENT = 4,     /* slot 0: UDP fragment, passed */
	R_TRUNCATED = 5,    /* slot 0: truncated or malformed IP/UDP header, passed */
	R_UNTRACKED = 6,    /* passed, but the source could not be inserted */
	R_EVENT_LOST = 7,   /* slot 0: ring buffer full, notification lost */
	R_UNADMITTED = 8,   /* passed, not admitted to the table (see ADMIT_EVERY) */
};

/* While a port's global bucket is limiting (it dropped within the quiet period), a
 * source not in the table that passes is inserted only if it is the ADMIT_EVERY-th such
 * source since the last one admitted; the others pass untracked. A spoofed flood's
 * sources are seen once each: inserting every one of them (the global rate's worth a
 * second) would churn the table, evicting the state of the sources that come back, and
 * an insert into a full LRU table costs as much as the rest of the program's work on the
 * flood. A source that keeps coming is admitted within a few of its passes, and until
 * then the global bucket (above the reserve) still bounds it. */
#define ADMIT_EVERY 16

enum snmp_class {
	CLASS_NONE = 0,
	CLASS_GET = 1,
	CLASS_NEXT = 2,
	CLASS_SET = 3,
	CLASS_BULK = 4,
};

#define RULE_F_SNMP_CLASSES 1 /* classify SNMP requests and look up class rules */
#define RULE_F_MATCH 2        /* classify by the port's patterns (map matchers) */

#define MATCH_BYTES 32 /* the payload window patterns see */
#define MATCH_WORDS (MATCH_BYTES / 8)
#define MAX_PATTERNS 16

enum event_kind {
	EV_SOURCE = 1, /* a source started being limited */
	EV_GLOBAL = 2, /* a port's global bucket started limiting */
};

struct rule {
	__u32 slot;        /* 1..MAX_SLOTS-1: index into gstates and counters */
	__u32 flags;
	__u64 src_rate;    /* requests per minute per source, 0 = unlimited */
	__u64 src_burst;   /* units */
	__u64 src_fill_ns; /* ns that fill an empty source bucket */
	__u64 glob_rate;      /* requests per minute, all sources, 0 = unlimited */
	__u64 glob_burst;     /* units */
	__u64 glob_fill_ns;
	__u64 glob_reserve;   /* units of the global bucket new sources may not take */
	__u8 name[16];        /* class name (for readers; the program ignores it) */
};

/* One alternative of a pattern class: the payload's first MATCH_BYTES bytes, masked,
 * equal value, and the payload is at least need bytes long. */
struct pattern {
	__u8 class;   /* class id; 0 ends the list */
	__u8 pad;
	__u16 need;
	__u32 pad2;
	__u8 mask[MATCH_BYTES];
	__u8 value[MATCH_BYTES];
};

struct matcher {
	struct pattern p[MAX_PATTERNS];
};

struct gstate {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 tokens;
	__u64 last_ns;      /* 0: fresh, full bucket */
	__u64 last_drop_ns;
	__u64 unadmitted; /* passes of sources not in the table while limiting (ADMIT_EVERY) */
};

struct src_key {
	__u16 port;   /* host order */
	__u8 family;  /* 4 or 6 */
	__u8 class;   /* enum snmp_class */
	__u8 addr[16];
};

struct src_state {
	__u64 tokens;
	__u64 last_ns;
	__u64 passed;
	__u64 dropped;
	__u64 last_drop_ns;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct event {
	__u64 ts_ns;
	__u64 dropped;  /* EV_SOURCE: the source's drop count so far */
	__u16 port;
	__u8 kind;
	__u8 family;
	__u8 class;
	__u8 pad[3];
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32); /* port | class << 16 */
	__type(value, struct rule);
} rules SEC(".maps");

/* The fast path to a port's rule: port_slots maps every UDP port to the slot of its
 * rule (0: none) and slot_rules holds each slot's rule, both arrays, whose lookups the
 * verifier inlines; the rules hash stays the rules' record (readers, class rules). The
 * loader writes a slot's rule before its port points to it and clears the port first. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32); /* the destination port */
	__type(value, __u32);
} port_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct rule);
} slot_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32); /* the slot of the port's rule */
	__type(value, struct matcher);
} matchers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct gstate);
} gstates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* set by the loader */
	__type(key, struct src_key);
	__type(value, struct src_state);
} sources SEC(".maps");

/* The "known" bitmap: one bit per hash of a per-source key, set when a source in the
 * table is answered for the second time. Known sources may take the global reserve;
 * a clear bit means the source is certainly not known, so a flood is dropped in the
 * reserve zone without touching the (large, cache-cold) LRU table. Sources of a
 * spoofed flood are answered once at most, so they never take a bit, and the bitmap
 * stays small enough to stay in cache. Two halves: the program reads half known_half
 * and sets bits in both; userspace rebuilds the other half from the table from time
 * to time (evicted sources leave stale bits) and then flips known_half. */
#define KNOWN_BITS (1u << 18)
#define KNOWN_WORDS (KNOWN_BITS / 64)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2 * KNOWN_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} known SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SLOTS * NR_REASONS);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

/* Test clock: when non-zero it replaces the coarse clock below. Only tests set it. */
volatile __u64 clock_ns = 0;
/* The coarse clock (bpf_ktime_get_coarse_ns: CLOCK_MONOTONIC as of the last tick)
 * read once per jiffy and kept here with the jiffy it was read in: the helper call
 * costs about 20 ns a packet in place, the jiffies read (which the verifier inlines)
 * next to nothing, and the coarse clock moves only once a tick anyway. Racy by design:
 * a reader may get the value of the tick before (the kernel counts the jiffy just
 * before it advances the clock, and CPUs race to store), so times compared below allow
 * a now that lags another CPU's stamp by a tick. */
volatile __u64 clock_jiffies = 0;
volatile __u64 clock_coarse = 0;
/* A source or port counts as limited again after this long without drops. */
volatile __u64 quiet_ns = 10000000000ULL;
/* Which half of the known bitmap the program reads (0 or 1). */
volatile __u32 known_half = 0;

/* Force BTF for the types userspace decodes. */
const struct event *unused_event __attribute__((unused));
const struct src_key *unused_key __attribute__((unused));

static __always_inline __u64 now_ns(void)
{
	__u64 t = clock_ns;
	__u64 j;

	if (t)
		return t;
	j = bpf_jiffies64();
	if (j == clock_jiffies)
		return clock_coarse;
	t = bpf_ktime_get_coarse_ns();
	clock_coarse = t; /* the value first, then the jiffy that vouches for it */
	clock_jiffies = j;
	return t;
}

/* quiet_since is whether a stamp ld (0: never) is more than quiet before now; a
 * stamp after now (another CPU's, a tick ahead) is not. */
static __always_inline int quiet_since(__u64 ld, __u64 now, __u64 quiet)
{
	return ld == 0 || (now > ld && now - ld > quiet);
}

static __always_inline void count(__u32 slot, __u32 reason, __u64 bytes)
{
	__u32 k = slot * NR_REASONS + reason;
	struct counter *c = bpf_map_lookup_elem(&counters, &k);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline __u64 refill(__u64 tokens, __u64 last, __u64 now, __u64 rate,
				    __u64 burst, __u64 fill_ns)
{
	if (now > last) {
		__u64 el = now - last;
		if (el >= fill_ns)
			return burst;
		tokens += el * rate;
	}
	return tokens > burst ? burst : tokens;
}

static __always_inline void notify(__u8 kind, struct src_key *k, __u64 now, __u64 dropped)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(0, R_EVENT_LOST, 0);
		return;
	}
	e->ts_ns = now;
	e->dropped = dropped;
	e->port = k->port;
	e->kind = kind;
	e->family = k->family;
	e->class = k->class;
	e->pad[0] = e->pad[1] = e->pad[2] = 0;
	__builtin_memcpy(e->addr, k->addr, sizeof(e->addr));
	bpf_ringbuf_submit(e, 0);
}

/* known_bit hashes a per-source key; bpf/known.go computes the same. */
static __always_inline __u32 known_bit(struct src_key *k)
{
	const __u64 m = 0xff51afd7ed558ccdULL;
	__u64 h = 0x9e3779b97f4a7c15ULL;
	__u32 w[4];

	__builtin_memcpy(w, k->addr, sizeof(w));
	h = (h ^ ((__u32)k->port | (__u32)k->family << 16 | (__u32)k->class << 24)) * m;
	h = (h ^ w[0]) * m;
	h = (h ^ w[1]) * m;
	h = (h ^ w[2]) * m;
	h = (h ^ w[3]) * m;
	h ^= h >> 33;
	return h & (KNOWN_BITS - 1);
}

static __always_inline int maybe_known(struct src_key *k)
{
	__u32 b = known_bit(k);
	__u32 idx = (known_half & 1) * KNOWN_WORDS + b / 64;
	__u64 *w = bpf_map_lookup_elem(&known, &idx);
	return !w || ((*w >> (b & 63)) & 1);
}

static __always_inline void mark_known(struct src_key *k)
{
	__u32 b = known_bit(k);
	__u64 bit = 1ULL << (b & 63);
	__u32 idx = b / 64;
	__u64 *w = bpf_map_lookup_elem(&known, &idx);
	if (w)
		__sync_fetch_and_or(w, bit);
	idx += KNOWN_WORDS;
	w = bpf_map_lookup_elem(&known, &idx);
	if (w)
		__sync_fetch_and_or(w, bit);
}

static __always_inline int global_drop(struct rule *r, struct gstate *g, struct src_key *k,
				       __u64 now, __u64 quiet, __u32 reason, __u64 bytes)
{
	__u64 ld = g->last_drop_ns; /* unlocked: only decides notifications */
	if (ld != now) /* the coarse clock moves once a tick: no store per packet */
		g->last_drop_ns = now;
	count(r->slot, reason, bytes);
	if (quiet_since(ld, now, quiet))
		notify(EV_GLOBAL, k, now, 0);
	return XDP_DROP;
}

static __always_inline int limit(struct rule *r, struct src_key *k, __u64 bytes)
{
	__u64 now = now_ns();
	__u64 quiet = quiet_ns;
	struct src_state *s = NULL;
	struct gstate *g = NULL;
	__u64 st = 0, peek = 0;
	int unknown = 0; /* not in the table */
	int fresh = 0;   /* not known (answered once at most): may not take the reserve */
	int admit = 1;   /* a source not in the table that passes is inserted */

	if (r->glob_rate) {
		__u32 slot = r->slot;
		g = bpf_map_lookup_elem(&gstates, &slot);
		if (!g)
			return XDP_PASS; /* cannot happen: slots are within the array */
		/* An unlocked, racy look at the global bucket. Nothing is written back
		 * from it, so the bucket state stays consistent; it only lets floods be
		 * dropped without the lock (and, when not even one token is left,
		 * without a per-source lookup). */
		peek = g->last_ns == 0 ? r->glob_burst :
			refill(g->tokens, g->last_ns, now, r->glob_rate, r->glob_burst, r->glob_fill_ns);
		if (peek < NS_PER_MIN)
			return global_drop(r, g, k, now, quiet, R_DROP_GLOBAL, bytes);
	}

	if (r->src_rate) {
		/* In the reserve zone only known sources go on: when the bitmap says a
		 * source is certainly not known, skip the table lookup. */
		int reserve_zone = g && peek < NS_PER_MIN + r->glob_reserve;

		if (reserve_zone && !maybe_known(k))
			return global_drop(r, g, k, now, quiet, R_DROP_NEW, bytes);
		s = bpf_map_lookup_elem(&sources, k);
		if (s) {
			__u64 last;

			/* A set bit can be another source's: the count decides. */
			fresh = s->passed < 2;
			if (reserve_zone && fresh)
				return global_drop(r, g, k, now, quiet, R_DROP_NEW, bytes);
			last = s->last_ns;
			st = refill(s->tokens, last, now, r->src_rate, r->src_burst, r->src_fill_ns);
			if (now > last)
				s->last_ns = now;
			if (st < NS_PER_MIN) {
				__u64 ld = s->last_drop_ns;
				__u64 d;
				s->tokens = st;
				s->last_drop_ns = now;
				d = __sync_fetch_and_add(&s->dropped, 1) + 1;
				count(r->slot, R_DROP_SOURCE, bytes);
				if (quiet_since(ld, now, quiet))
					notify(EV_SOURCE, k, now, d);
				return XDP_DROP;
			}
		} else {
			unknown = fresh = 1;
		}
	}

	if (g) {
		__u64 floor = NS_PER_MIN;
		__u64 ld = g->last_drop_ns; /* unlocked, as in global_drop */
		int limiting = unknown && !quiet_since(ld, now, quiet);
		__u64 gt;
		int ok = 0;

		if (fresh) {
			/* Sources not known may not take the reserve (global first: nothing
			 * is inserted for a source that cannot pass). */
			floor += r->glob_reserve;
			if (peek < floor)
				return global_drop(r, g, k, now, quiet, R_DROP_NEW, bytes);
		}
		bpf_spin_lock(&g->lock);
		if (g->last_ns == 0)
			gt = r->glob_burst;
		else
			gt = refill(g->tokens, g->last_ns, now, r->glob_rate, r->glob_burst, r->glob_fill_ns);
		if (now > g->last_ns)
			g->last_ns = now;
		if (gt >= floor) {
			gt -= NS_PER_MIN;
			ok = 1;
			if (limiting && g->unadmitted++ % ADMIT_EVERY != 0)
				admit = 0;
		}
		g->tokens = gt;
		bpf_spin_unlock(&g->lock);
		if (!ok) {
			if (s) {
				s->tokens = st; /* refilled, not spent */
				__sync_fetch_and_add(&s->dropped, 1);
			}
			return global_drop(r, g, k, now, quiet, fresh ? R_DROP_NEW : R_DROP_GLOBAL, bytes);
		}
	}

	if (s) {
		s->tokens = st - NS_PER_MIN;
		/* Its second answered request makes a source known. */
		if (__sync_fetch_and_add(&s->passed, 1) == 1)
			mark_known(k);
	} else if (unknown && !admit) {
		count(r->slot, R_UNADMITTED, bytes);
		return XDP_PASS;
	} else if (unknown) {
		struct src_state ns = {
			.tokens = r->src_burst - NS_PER_MIN,
			.last_ns = now,
			.passed = 1,
		};
		if (bpf_map_update_elem(&sources, k, &ns, BPF_NOEXIST) != 0) {
			count(r->slot, R_UNTRACKED, bytes);
			return XDP_PASS;
		}
	}
	count(r->slot, R_PASS, bytes);
	return XDP_PASS;
}

/* snmp_class reads an SNMP v1/v2c message header far enough to see the PDU tag:
 * SEQUENCE { INTEGER version (0|1), OCTET STRING community, PDU ... }. Reads stay
 * within the packet and within the UDP length (frames may carry padding). */
static __always_inline __u8 snmp_class(__u8 *p, void *data_end, __u32 plen)
{
	__u32 off, cl;

	if ((void *)(p + 2) > data_end || plen < 2 || p[0] != 0x30)
		return CLASS_NONE;
	if (p[1] == 0x81)
		off = 3;
	else if (p[1] == 0x82)
		off = 4;
	else if (p[1] < 0x80)
		off = 2;
	else
		return CLASS_NONE;
	p += off;
	if ((void *)(p + 5) > data_end || off + 5 > plen ||
	    p[0] != 0x02 || p[1] != 1 || p[2] > 1 || p[3] != 0x04)
		return CLASS_NONE;
	cl = p[4];
	p += 5;
	off += 5;
	if (cl == 0x81) {
		if ((void *)(p + 1) > data_end || off + 1 > plen)
			return CLASS_NONE;
		cl = p[0];
		p += 1;
		off += 1;
	} else if (cl >= 0x80) {
		return CLASS_NONE;
	}
	cl &= 0xff;
	p += cl;
	off += cl;
	if ((void *)(p + 1) > data_end || off + 1 > plen)
		return CLASS_NONE;
	switch (p[0]) {
	case 0xa0:
		return CLASS_GET;
	case 0xa1:
		return CLASS_NEXT;
	case 0xa3:
		return CLASS_SET;
	case 0xa5:
		return CLASS_BULK;
	}
	return CLASS_NONE;
}

/* match_class compares the payload's first MATCH_BYTES bytes (zero beyond the
 * packet) with the port's patterns; plen is the payload length within the UDP
 * length, so a pattern never matches bytes past it (its need covers them). */
static __always_inline __u8 match_class(__u32 slot, __u8 *p, void *data_end, __u32 plen)
{
	struct matcher *m = bpf_map_lookup_elem(&matchers, &slot);
	__u64 w[MATCH_WORDS] = {};
	__u8 *b = (__u8 *)w;

	if (!m)
		return 0;
	if ((void *)(p + MATCH_BYTES) <= data_end) {
		__builtin_memcpy(w, p, MATCH_BYTES);
	} else {
		/* A short frame: whole words, then the tail bytes; never more than what
		 * is there counts as length. */
		__u32 n = 0;
#pragma unroll
		for (int i = 0; i < MATCH_WORDS; i++) {
			if ((void *)(p + 8 * (i + 1)) > data_end) {
#pragma unroll
				for (int j = 0; j < 7; j++) {
					if ((void *)(p + 8 * i + j + 1) > data_end)
						break;
					b[8 * i + j] = p[8 * i + j];
					n++;
				}
				break;
			}
			__builtin_memcpy(&w[i], p + 8 * i, 8);
			n += 8;
		}
		if (plen > n)
			plen = n;
	}
#pragma unroll
	for (int i = 0; i < MAX_PATTERNS; i++) {
		struct pattern *pt = &m->p[i];
		__u64 *mk = (__u64 *)pt->mask, *v = (__u64 *)pt->value;

		if (pt->class == 0)
			break;
		if (plen >= pt->need &&
		    (w[0] & mk[0]) == v[0] && (w[1] & mk[1]) == v[1] &&
		    (w[2] & mk[2]) == v[2] && (w[3] & mk[3]) == v[3])
			return pt->class;
	}
	return 0;
}

static __always_inline int handle_udp(void *l4, void *data_end, struct src_key *k, __u64 bytes)
{
	struct udphdr *udp = l4;
	struct rule *r;
	__u32 rk, *slot;

	if ((void *)(udp + 1) > data_end) {
		count(0, R_TRUNCATED, bytes);
		return XDP_PASS;
	}
	rk = bpf_ntohs(udp->dest);
	slot = bpf_map_lookup_elem(&port_slots, &rk);
	if (!slot || *slot == 0)
		return XDP_PASS;
	r = bpf_map_lookup_elem(&slot_rules, slot);
	if (!r)
		return XDP_PASS;
	k->port = rk;
	if (r->flags & (RULE_F_SNMP_CLASSES | RULE_F_MATCH)) {
		__u32 ulen = bpf_ntohs(udp->len);
		__u32 plen = ulen > sizeof(*udp) ? ulen - sizeof(*udp) : 0;
		__u8 *pl = (__u8 *)(udp + 1);
		__u8 c = CLASS_NONE;
		struct rule *cr = NULL;
		__u32 ck;

		if (r->flags & RULE_F_SNMP_CLASSES) {
			c = snmp_class(pl, data_end, plen);
			if (c != CLASS_NONE) {
				ck = rk | (__u32)c << 16;
				cr = bpf_map_lookup_elem(&rules, &ck);
			}
		}
		if (!cr && (r->flags & RULE_F_MATCH)) {
			c = match_class(r->slot, pl, data_end, plen);
			if (c != CLASS_NONE) {
				ck = rk | (__u32)c << 16;
				cr = bpf_map_lookup_elem(&rules, &ck);
			}
		}
		if (cr) {
			r = cr;
			k->class = c;
		}
	}
	return limit(r, k, bytes);
}

SEC("xdp")
int xdp_ratelimit(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;
	void *cur;
	__u16 proto;
	struct src_key k = {};

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	proto = eth->h_proto;
	cur = eth + 1;

#pragma unroll
	for (int i = 0; i < MAX_VLAN; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		/* TCI (2 bytes) then the encapsulated EtherType */
		if (cur + 4 > data_end)
			return XDP_PASS;
		proto = *(__u16 *)(cur + 2);
		cur += 4;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;
		__u32 hl;

		if ((void *)(ip + 1) > data_end) {
			count(0, R_TRUNCATED, bytes);
			return XDP_PASS;
		}
		if (ip->protocol != IPPROTO_UDP)
			return XDP_PASS;
		hl = ip->ihl * 4;
		if (ip->version != 4 || hl < sizeof(*ip)) {
			count(0, R_TRUNCATED, bytes);
			return XDP_PASS;
		}
		if (ip->frag_off & bpf_htons(0x3fff)) { /* MF or an offset */
			count(0, R_FRAGMENT, bytes);
			return XDP_PASS;
		}
		if (cur + hl > data_end) {
			count(0, R_TRUNCATED, bytes);
			return XDP_PASS;
		}
		k.family = 4;
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		__builtin_memcpy(&k.addr[12], &ip->saddr, 4);
		return handle_udp(cur + hl, data_end, &k, bytes);
	}

	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;
		__u8 nh;

		if ((void *)(ip6 + 1) > data_end) {
			count(0, R_TRUNCATED, bytes);
			return XDP_PASS;
		}
		nh = ip6->nexthdr;
		cur = ip6 + 1;
#pragma unroll
		for (int i = 0; i < MAX_EXTHDR; i++) {
			__u8 *h;
			if (nh == IPPROTO_UDP)
				break;
			if (nh == IPPROTO_FRAGMENT) {
				/* Only count fragments that carry UDP. */
				h = cur;
				if ((void *)(h + 8) > data_end) {
					count(0, R_TRUNCATED, bytes);
					return XDP_PASS;
				}
				if (h[0] == IPPROTO_UDP)
					count(0, R_FRAGMENT, bytes);
				return XDP_PASS;
			}
			if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS)
				return XDP_PASS; /* not UDP, or a header we do not walk */
			h = cur;
			if ((void *)(h + 2) > data_end) {
				count(0, R_TRUNCATED, bytes);
				return XDP_PASS;
			}
			nh = h[0];
			cur += ((__u32)h[1] + 1) * 8;
		}
		if (nh != IPPROTO_UDP)
			return XDP_PASS;
		k.family = 6;
		__builtin_memcpy(k.addr, &ip6->saddr, 16);
		return handle_udp(cur, data_end, &k, bytes);
	}

	return XDP_PASS;
}

char __license[] SEC("license") = "Dual BSD/GPL";

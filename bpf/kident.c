//go:build ignore
// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Copyright the icsnare authors.
 *
 * icsnare kernel identity: each emulated host its own MAC and TCP/IP stack.
 *
 * xdp_kident (ingress, XDP):
 *  - answers ARP requests for emulated IPv4 addresses with the host's MAC as a
 *    directed reply, and IPv6 neighbour solicitations with a neighbour
 *    advertisement; malformed requests get no answer (as from Linux);
 *  - a machine that claims an emulated address (an ARP or NA from another MAC, an
 *    ARP probe for it) makes the host dark: never answered again until userspace
 *    clears it; a ring buffer record tells userspace;
 *  - frames to an emulated address whose destination MAC is not the host's MAC
 *    are dropped and counted; those with it get the device's MAC so the stack
 *    takes them;
 *  - TCP SYNs: to the subnet edges of an emulated prefix (.0 and .255 of a /24),
 *    to dark hosts, to ports a host's profile does not serve, and to the
 *    sensor's own addresses on the sensor's listened ports are dropped or reset
 *    in XDP (the policy), before any handshake; SYNs to served ports lose the
 *    options the host's stack lacks (timestamps, SACK, window scale), so the
 *    connection never uses them, and the client's MSS is remembered for the
 *    SYN-ACK;
 *  - then tail-calls the rate limiter (slot 0 of `chain`) when one is loaded.
 *
 * tc_kident (egress, TC): frames from an emulated address get the host's MAC as
 * source; IPv4 packets the persona's TTL, IP-ID and DF, IPv6 its hop limit;
 * SYN-ACKs its window, MSS and window scale; ICMP echo replies code 0 when the
 * persona says so. Checksums are fixed with the kernel's helpers (valid for
 * CHECKSUM_PARTIAL skbs too).
 *
 * A host's MAC is computed here from the host seed exactly as Go's
 * profiles.HostMAC(sensor.hostSeed(...)) does: FNV-1a 64 over the deployment
 * seed (precomputed), the address (IPv4-mapped) and the profile name, the
 * splitmix64 finaliser, then the OUI and three bytes. So any address of a
 * prefix of any size is answered without a per-host map entry.
 *
 * Frames with VLAN tags and IPv6 packets with extension headers before TCP or
 * ICMPv6 pass untouched (documented limits).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>


#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_NAME 64
#define MAX_OUIS 16
#define MAX_PERS 16
#define FNV_PRIME 1099511628211ULL
#define MAC_SALT 0x6d61632d6f756921ULL

#define PF_ONLINK 1 /* on the interface's link: answer ARP/ND, check MACs */
#define PF_EDGES 2  /* IPv4 prefix shorter than /31: network and broadcast are no hosts */

#define PERS_DF 1
#define PERS_TS 2     /* keeps timestamps */
#define PERS_SACK 4   /* keeps SACK permitted */
#define PERS_WS 8     /* keeps window scale (value wscale) */
#define PERS_MSS 16   /* SYN-ACK carries an MSS option */
#define PERS_ECHOMSS 32
#define PERS_ECHOCODE0 64
#define PERS_ECN 128     /* negotiates ECN */
#define PERS_SYNFIN 256  /* answers SYN+FIN like SYN */
#define PERS_ICMP_NODF 512 /* ICMP messages never carry DF (nmap U1 DF=N, IE DFI=N) */
#define PERS_FIN_SILENT 1024 /* a segment with FIN but neither SYN, ACK nor RST to a closed port gets no reset (nmap T7 R=N) */
#define PERS_RST_NODF 2048 /* resets never carry DF (nmap T4-T7 DF=N of a stack with DF elsewhere) */
#define PERS_QUOTE_ZEROCK 4096 /* ICMP errors quote the datagram with its IP and UDP checksums zeroed (nmap U1 RIPCK=Z RUCK=0) */
#define PERS_ACK_SILENT 8192 /* a bare ACK to a closed port gets no reset (nmap T6 R=N) */
#define PERS_RST_WINDOW 16384 /* a reset from a port the host serves carries the SYN-ACK window (nmap T4 W) */

#define VLAN_HLEN 4
#define VLAN_VID_MASK 0x0fff

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

#define OUI_STRIDE 8 /* per MAC block: 6 bytes of prefix, its length in bits (24, 28, 36), pad */

/* IPID_INC_SWAPPED: incremental, written in the host's little-endian order (nmap BI). */
enum ipid_mode { IPID_KEEP = 0, IPID_INC = 1, IPID_ZERO = 2, IPID_RANDOM = 3, IPID_INC_SWAPPED = 4 };

enum policy { POL_PASS = 0, POL_DROP = 1, POL_RESET = 2 };

enum counter {
	C_ARP_REPLY = 0,
	C_ARP_MALFORMED,
	C_ARP_CONFLICT,
	C_DARK_DROP,
	C_ND_REPLY,
	C_ND_MALFORMED,
	C_MAC_MISMATCH,
	C_SYN_DROP,
	C_SYN_RESET,
	C_SYN_STRIPPED,
	C_EDGE_DROP,
	C_TC_MAC,
	C_TC_PERSONA,
	C_TC_SYNACK,
	C_EVENT_LOST,
	C_MAC_OK,
	C_ANSWER_PASS,       /* packets that spoofable requests elicit, within the destination's byte bucket */
	C_ANSWER_DROP,       /* ... over it: dropped */
	C_ANSWER_DROP_BYTES, /* bytes of those (counted by length, not packets) */
	C_VLAN_OTHER,        /* tagged frames of another VLAN (or tagged with none configured): passed */
	NR_COUNTERS,
};

struct addr_key {
	__u32 prefixlen;
	__u8 addr[16];
};

#define MAX_MIX 8
#define EF_ALLPORTS 1 /* no port list: the stack decides every port */

/* One profile of a prefix's mix. */
struct profile_ent {
	__u64 cum;          /* cumulative weight, scaled so that the last is 1<<32 */
	__u8 name[MAX_NAME];/* the profile's name */
	__u32 name_len;
	__u32 n_ouis;       /* 0: the hosts keep the interface's MAC */
	__u8 ouis[MAX_OUIS * OUI_STRIDE];
	__u32 profile;      /* index of the profile (for its ports) */
	__u32 pers;         /* personality index + 1; 0: the sensor's own stack */
	__u32 flags;        /* EF_* */
	__u32 pad;
};

/* One emulated prefix (a sensor [[hosts]] rule): a profile, or a weighted mix of
 * profiles of which a fraction of the addresses are live, both drawn per address from
 * the seed as the sensor draws them (hostRegistry.match). */
struct prefix_info {
	__u64 fnv;          /* FNV-1a state after the deployment seed's 8 bytes */
	__u64 live;         /* a host when its draw (32 bits) is below; 0: every address */
	__u32 flags;        /* PF_* */
	__u32 bits;         /* IPv4 prefix length (PF_EDGES) */
	__u32 n;            /* profiles in ent */
	__u32 pad;
	struct profile_ent ent[MAX_MIX];
};

struct personality {
	__u32 flags;  /* PERS_* */
	__u8 ttl;
	__u8 ipid;    /* enum ipid_mode */
	__u8 wscale;
	__u8 icmp_ipid; /* enum ipid_mode of ICMP messages; IPID_KEEP: ipid */
	__u16 window;
	__u16 mss;
	__u16 quote; /* bytes quoted beyond the IP header in ICMP errors; 0: keep */
	__u16 mss_default; /* ECHOMSS: the SYN-ACK's MSS when the client sent none; 0: mss */
	__u16 band_lo, band_hi, band_to; /* ECHOMSS: a client MSS in [lo, hi] is answered with to */
	__u8 ttl_open; /* TTL of TCP segments from an open port (0: ttl) */
	__u8 pad3;
};

struct port_key {
	__u32 profile;
	__u16 port;
	__u16 pad;
};

struct flow_key {
	__u8 client[16];
	__u8 host[16];
	__u16 cport;
	__u16 hport;
};

struct conflict {
	__u8 addr[16];
	__u8 mac[6];
	__u8 kind; /* 0 claim (ARP/NA from another MAC), 1 probe (ARP probe) */
	__u8 pad;
	__u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct addr_key);
	__type(value, struct prefix_info);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
} prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct personality);
	__uint(max_entries, MAX_PERS);
} personas SEC(".maps");

/* Served TCP ports per profile; a SYN to another port of a host gets the policy. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct port_key);
	__type(value, __u8);
	__uint(max_entries, 4096);
} ports SEC(".maps");

/* TCP ports the sensor listens on for every local address: a SYN to one of them at
 * a local address that is not emulated gets the policy. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, __u8);
	__uint(max_entries, 1024);
} listened SEC(".maps");

/* The sensor's own addresses (IPv4-mapped or IPv6). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct in6_addr);
	__type(value, __u8);
	__uint(max_entries, 256);
} locals SEC(".maps");

/* Hosts whose address a real machine claims: value is when (ns). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct in6_addr);
	__type(value, __u64);
	__uint(max_entries, 4096);
} dark SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct in6_addr);
	__type(value, __u32);
	__uint(max_entries, 65536);
} ipids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, __u16);
	__uint(max_entries, 65536);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NR_COUNTERS);
} kcounters SEC(".maps");

/* The answer-byte bucket of one destination: what the hosts may still send it. */
struct answer_state {
	__u64 tokens; /* bytes times 1e9 */
	__u64 last;   /* ns of the last refill */
};

/* Per destination (IPv4-mapped or IPv6): the bytes the emulated hosts send in answer to
 * requests that a spoofed source can make (UDP, ICMP, SYN-ACKs and resets), bounded so
 * that a spoofed victim is never flooded even if userspace budgets fail. LRU: a spoofed
 * flood of many victims evicts old entries, which then start full again; each of them
 * still gets at most one burst plus the rate. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct in6_addr);
	__type(value, struct answer_state);
	__uint(max_entries, 65536);
} answers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} conflicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 1);
} chain SEC(".maps");

/* Set by the loader. */
volatile __u8 dev_mac[6];
volatile __u32 policy_closed = POL_RESET; /* SYN to a port the host does not serve */
volatile __u32 policy_local = POL_DROP;   /* SYN to a listened port of a non-emulated local address */
volatile __u32 policy_edge = POL_DROP;    /* anything to a subnet edge or a dark host */
volatile __u16 vlan_id = 0;               /* 802.1Q VID of the hosts' link; 0: untagged frames */
volatile __u64 answer_rate = 0;           /* bytes per second per destination; 0: no bucket */
volatile __u64 answer_burst = 0;          /* the bucket's depth in bytes */
volatile __u64 answer_cap_ns = 0;         /* refill time of a full burst (burst*1e9/rate), set by the loader */
volatile __u64 clock_ns = 0;              /* tests only: the bucket's clock when non-zero */

static __always_inline void count_n(__u32 c, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&kcounters, &c);
	if (v)
		*v += n;
}

static __always_inline void count(__u32 c)
{
	count_n(c, 1);
}

static __always_inline __u64 mix64(__u64 x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

#define FNV_BYTE(h, b) (((h) ^ (__u8)(b)) * FNV_PRIME)

/* resolve draws the profile of an address as the sensor does: FNV-1a 64 over the
 * deployment seed, the address and a label, then splitmix64 (sensor.hostSeed); the label
 * "\0live" decides whether the address is a host, "\0profile" which profile of the mix,
 * the profile's name gives the host seed. NULL: no host there. */
static __always_inline struct profile_ent *resolve(struct prefix_info *pi, const __u8 *a16, __u64 *seed)
{
	__u64 h = pi->fnv;
#pragma unroll
	for (int i = 0; i < 16; i++)
		h = FNV_BYTE(h, a16[i]);
	if (pi->live) {
		__u64 x = h;
		x = FNV_BYTE(x, 0);
		x = FNV_BYTE(x, 'l');
		x = FNV_BYTE(x, 'i');
		x = FNV_BYTE(x, 'v');
		x = FNV_BYTE(x, 'e');
		if ((mix64(x) >> 32) >= pi->live)
			return NULL;
	}
	__u32 idx = 0;
	if (pi->n > 1) {
		__u64 x = h;
		x = FNV_BYTE(x, 0);
		x = FNV_BYTE(x, 'p');
		x = FNV_BYTE(x, 'r');
		x = FNV_BYTE(x, 'o');
		x = FNV_BYTE(x, 'f');
		x = FNV_BYTE(x, 'i');
		x = FNV_BYTE(x, 'l');
		x = FNV_BYTE(x, 'e');
		__u64 v = mix64(x) >> 32;
		idx = MAX_MIX - 1;
#pragma unroll
		for (int i = MAX_MIX - 1; i >= 0; i--)
			if (i < pi->n && v < pi->ent[i].cum)
				idx = i;
		if (idx >= pi->n)
			idx = pi->n - 1;
	}
	if (idx >= MAX_MIX)
		return NULL;
	struct profile_ent *pe = &pi->ent[idx];
	for (__u32 i = 0; i < MAX_NAME; i++) {
		if (i >= pe->name_len)
			break;
		h = FNV_BYTE(h, pe->name[i]);
	}
	*seed = mix64(h);
	return pe;
}

/* host_mac computes profiles.HostMAC(seed, ouis). */
static __always_inline int host_mac(const struct profile_ent *pe, __u64 seed, __u8 *mac)
{
	__u64 x = mix64(seed ^ MAC_SALT);
	__u32 n = pe->n_ouis;
	if (n == 0 || n > MAX_OUIS)
		return -1;
	__u32 idx = (__u32)((x >> 40) % n);
	if (idx >= MAX_OUIS)
		return -1;
	const __u8 *o = &pe->ouis[idx * OUI_STRIDE];
	mac[0] = o[0];
	mac[1] = o[1];
	mac[2] = o[2];
	/* Bytes 3-5: the block's prefix bits (MA-M 28, MA-S 36), the seed's below. */
	__u8 r[3] = {x >> 16, x >> 8, x};
	int bits = o[6];
#pragma unroll
	for (int i = 0; i < 3; i++) {
		int b = bits - 24 - 8 * i;
		__u8 m = b >= 8 ? 0xff : b <= 0 ? 0 : (__u8)(0xff << (8 - b));
		mac[3 + i] = (o[3 + i] & m) | (r[i] & ~m);
	}
	return 0;
}

/* host_of resolves an address to its profile and MAC; -1 when no host with a MAC of its
 * own is there. */
static __always_inline int host_of(struct prefix_info *pi, const __u8 *a16, struct profile_ent **pe, __u8 *mac)
{
	__u64 seed;
	*pe = resolve(pi, a16, &seed);
	if (!*pe)
		return -1;
	return host_mac(*pe, seed, mac);
}

static __always_inline void map4(__u8 *a16, __u32 a4)
{
	__builtin_memset(a16, 0, 10);
	a16[10] = 0xff;
	a16[11] = 0xff;
	__builtin_memcpy(a16 + 12, &a4, 4);
}

/* lookup finds the prefix of an address (IPv4-mapped); NULL when not emulated. */
static __always_inline struct prefix_info *lookup(const __u8 *a16)
{
	struct addr_key k = {.prefixlen = 128};
	__builtin_memcpy(k.addr, a16, 16);
	return bpf_map_lookup_elem(&prefixes, &k);
}

/* edge reports the network and broadcast addresses of an IPv4 prefix below /31. */
static __always_inline int edge(const struct prefix_info *pi, const __u8 *a16)
{
	if (!(pi->flags & PF_EDGES) || pi->bits >= 31 || pi->bits == 0)
		return 0;
	__u32 a = ((__u32)a16[12] << 24) | ((__u32)a16[13] << 16) | ((__u32)a16[14] << 8) | a16[15];
	__u32 hm = (1U << (32 - pi->bits)) - 1;
	return (a & hm) == 0 || (a & hm) == hm;
}

static __always_inline int is_dark(const __u8 *a16)
{
	return bpf_map_lookup_elem(&dark, a16) != NULL;
}

static __always_inline int mac_eq(const __u8 *a, const volatile __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

static __always_inline void go_dark(const __u8 *a16, const __u8 *mac, __u8 kind)
{
	__u64 now = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&dark, a16, &now, BPF_NOEXIST) != 0)
		return; /* already dark (or full): told once */
	count(C_ARP_CONFLICT);
	struct conflict *c = bpf_ringbuf_reserve(&conflicts, sizeof(*c), 0);
	if (!c) {
		count(C_EVENT_LOST);
		return;
	}
	__builtin_memcpy(c->addr, a16, 16);
	__builtin_memcpy(c->mac, mac, 6);
	c->kind = kind;
	c->pad = 0;
	c->ns = now;
	bpf_ringbuf_submit(c, 0);
}

static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

/* csum16 updates a checksum for one 16-bit word changed (RFC 1624). */
static __always_inline void csum16(__u16 *sum, __u16 old, __u16 new)
{
	__u32 c = (__u16)~*sum;
	c += (__u16)~old;
	c += new;
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	*sum = ~c;
}

struct arphdr4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
} __attribute__((packed));

static __always_inline int handle_arp(struct xdp_md *ctx, struct ethhdr *eth, void *l3, void *end)
{
	struct arphdr4 *a = l3;
	if ((void *)(a + 1) > end)
		return XDP_PASS; /* too short to name a target: not ours to judge */
	__u8 tpa[16], spa[16];
	__u32 t4, s4;
	__builtin_memcpy(&t4, a->tpa, 4);
	__builtin_memcpy(&s4, a->spa, 4);
	map4(tpa, t4);
	map4(spa, s4);
	__u16 op = bpf_ntohs(a->op);
	int wellformed = a->htype == bpf_htons(1) && a->ptype == bpf_htons(ETH_P_IP) && a->hlen == 6 &&
			 a->plen == 4 && (op == 1 || op == 2) && !(a->sha[0] & 1);

	/* A machine announcing or answering for an emulated address, or probing for it,
	 * claims it: the host goes dark. */
	if (wellformed) {
		struct prefix_info *sp = s4 ? lookup(spa) : NULL;
		struct profile_ent *pe;
		__u8 mac[6];
		if (sp && (sp->flags & PF_ONLINK) && !bpf_map_lookup_elem(&locals, spa) && host_of(sp, spa, &pe, mac) == 0 &&
		    !mac_eq(a->sha, mac))
			go_dark(spa, a->sha, 0);
		if (!s4 && op == 1) {
			struct prefix_info *tp = lookup(tpa);
			if (tp && (tp->flags & PF_ONLINK) && host_of(tp, tpa, &pe, mac) == 0 && !mac_eq(a->sha, mac))
				go_dark(tpa, a->sha, 1);
		}
	}
	struct prefix_info *pi = lookup(tpa);
	if (!pi || !(pi->flags & PF_ONLINK) || bpf_map_lookup_elem(&locals, tpa))
		return XDP_PASS;
	if (!wellformed) {
		count(C_ARP_MALFORMED);
		return XDP_DROP;
	}
	struct profile_ent *pe;
	__u8 mac[6];
	int have = host_of(pi, tpa, &pe, mac) == 0;
	if (op == 2) {
		__u8 *rmac = mac;
		if (!have)
			return XDP_PASS;
		/* An answer to the kernel's own request sent from this host's address. */
		if (mac_eq(eth->h_dest, rmac)) {
			eth->h_dest[0] = dev_mac[0];
			eth->h_dest[1] = dev_mac[1];
			eth->h_dest[2] = dev_mac[2];
			eth->h_dest[3] = dev_mac[3];
			eth->h_dest[4] = dev_mac[4];
			eth->h_dest[5] = dev_mac[5];
		}
		return XDP_PASS;
	}
	if (edge(pi, tpa) || !pe) {
		count(C_EDGE_DROP); /* a subnet edge or an address with no device */
		return XDP_DROP;
	}
	if (is_dark(tpa)) {
		count(C_DARK_DROP);
		return XDP_DROP;
	}
	if (!have)
		return XDP_PASS; /* a profile without a MAC of its own: the kernel answers */
	if (!s4) /* a probe from the claimant, handled above */
		return XDP_DROP;
	/* A directed reply in place. */
	__u8 req_sha[6];
	__builtin_memcpy(req_sha, a->sha, 6);
	a->op = bpf_htons(2);
	__builtin_memcpy(a->tha, req_sha, 6);
	__builtin_memcpy(a->tpa, &s4, 4);
	__builtin_memcpy(a->sha, mac, 6);
	__builtin_memcpy(a->spa, &t4, 4);
	__builtin_memcpy(eth->h_dest, req_sha, 6);
	__builtin_memcpy(eth->h_source, mac, 6);
	count(C_ARP_REPLY);
	return XDP_TX;
}

/* Neighbour solicitation (RFC 4861 4.3) and advertisement. */
struct nd_msg {
	__u8 type;
	__u8 code;
	__be16 csum;
	__be32 flags;
	__u8 target[16];
	__u8 opt_type;
	__u8 opt_len;
	__u8 opt_mac[6];
} __attribute__((packed));

static __always_inline int handle_nd(struct xdp_md *ctx, struct ethhdr *eth, struct ipv6hdr *ip6, void *end)
{
	struct nd_msg *nd = (void *)(ip6 + 1);
	if ((void *)nd + 24 > end)
		return XDP_PASS;
	if (nd->type != 135 && nd->type != 136)
		return XDP_PASS;
	struct prefix_info *pi = lookup(nd->target);
	if (!pi || !(pi->flags & PF_ONLINK))
		return XDP_PASS;
	__u8 target[16];
	__builtin_memcpy(target, nd->target, 16);
	__u8 mac[6];
	struct profile_ent *pe;
	if (host_of(pi, target, &pe, mac) != 0) {
		if (pe)
			return XDP_PASS;
		count(C_EDGE_DROP);
		return XDP_DROP;
	}
	/* RFC 4861 7.1.1: hop limit 255, code 0, an ICMP length of 24 or more; a source
	 * link-layer option only with a specified source. */
	int unspec = 1;
#pragma unroll
	for (int i = 0; i < 16; i++)
		if (ip6->saddr.in6_u.u6_addr8[i])
			unspec = 0;
	__u16 plen = bpf_ntohs(ip6->payload_len);
	if (ip6->hop_limit != 255 || nd->code != 0 || plen < 24 || (void *)(ip6 + 1) + plen > end) {
		count(C_ND_MALFORMED);
		return XDP_DROP;
	}
	if (nd->type == 136) {
		/* An advertisement from another MAC claims the address. */
		if ((void *)(nd + 1) <= end && plen >= 32 && nd->opt_type == 2 && nd->opt_len == 1 &&
		    !mac_eq(nd->opt_mac, mac))
			go_dark(target, nd->opt_mac, 0);
		return XDP_PASS;
	}
	if (is_dark(target)) {
		count(C_DARK_DROP);
		return XDP_DROP;
	}
	if (unspec) {
		/* Duplicate address detection by another machine: it wants the address. */
		go_dark(target, eth->h_source, 1);
		return XDP_DROP;
	}
	/* The reply needs the source link-layer option's room: use the frame when it has
	 * it (solicitations from Linux do), else leave it to the stack. */
	if ((void *)(nd + 1) > end || plen < 32)
		return XDP_PASS;
	__u8 src_mac[6];
	__builtin_memcpy(src_mac, eth->h_source, 6);
	struct in6_addr peer = ip6->saddr;
	/* Advertisement: solicited, override, to the solicitor. */
	ip6->daddr = peer;
	__builtin_memcpy(ip6->saddr.in6_u.u6_addr8, target, 16);
	ip6->payload_len = bpf_htons(32);
	nd->type = 136;
	nd->code = 0;
	nd->flags = bpf_htonl(0x60000000);
	nd->opt_type = 2;
	nd->opt_len = 1;
	__builtin_memcpy(nd->opt_mac, mac, 6);
	nd->csum = 0;
	/* Checksum: pseudo-header (addresses, length, next header) and the 32 bytes. */
	struct {
		__u8 src[16];
		__u8 dst[16];
		__be32 len;
		__be32 nh;
	} ph;
	__builtin_memcpy(ph.src, target, 16);
	__builtin_memcpy(ph.dst, &peer, 16);
	ph.len = bpf_htonl(32);
	ph.nh = bpf_htonl(IPPROTO_ICMPV6);
	__s64 s = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	if (s < 0)
		return XDP_DROP;
	s = bpf_csum_diff(NULL, 0, (__be32 *)nd, 32, s);
	if (s < 0)
		return XDP_DROP;
	nd->csum = fold(s);
	/* Trim anything after the option (other options, padding). */
	int extra = (void *)end - ((void *)(nd + 1));
	__builtin_memcpy(eth->h_dest, src_mac, 6);
	__builtin_memcpy(eth->h_source, mac, 6);
	if (extra > 0 && bpf_xdp_adjust_tail(ctx, -extra) != 0)
		return XDP_DROP;
	count(C_ND_REPLY);
	return XDP_TX;
}

/* tcp_reset turns a SYN into the RST+ACK a closed port answers with, in place. */
static __always_inline int tcp_reset(struct xdp_md *ctx, int v6, __u32 l2, const struct personality *pp)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || (l2 != ETH_HLEN && l2 != ETH_HLEN + VLAN_HLEN))
		return XDP_DROP;
	void *l3 = data + l2;
	__u8 tmp[6];
	__builtin_memcpy(tmp, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, tmp, 6);
	struct tcphdr *th;
	__u32 len;
	__u64 s;
	if (!v6) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end || ip->ihl != 5)
			return XDP_DROP;
		th = (void *)(ip + 1);
		if ((void *)(th + 1) > end)
			return XDP_DROP;
		__u32 seq = bpf_ntohl(th->seq) + 1 + (bpf_ntohs(ip->tot_len) - 20 - th->doff * 4) + th->fin;
		__be32 a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		ip->tot_len = bpf_htons(40);
		ip->ttl = pp ? pp->ttl : 64;
		ip->frag_off = pp && (!(pp->flags & PERS_DF) || (pp->flags & PERS_RST_NODF)) ? 0 : bpf_htons(0x4000);
		ip->id = 0;
		if (pp && (pp->ipid == IPID_INC || pp->ipid == IPID_INC_SWAPPED)) {
			__u8 h16[16];
			map4(h16, ip->saddr);
			__u32 *c = bpf_map_lookup_elem(&ipids, h16);
			if (c) {
				ip->id = pp->ipid == IPID_INC ? bpf_htons((__u16)*c) : (__u16)*c;
				__sync_fetch_and_add(c, 1);
			}
		} else if (pp && pp->ipid == IPID_RANDOM) {
			ip->id = (__u16)bpf_get_prandom_u32();
		}
		ip->tos = 0;
		ip->check = 0;
		__be16 p = th->source;
		th->source = th->dest;
		th->dest = p;
		th->ack_seq = bpf_htonl(seq);
		th->seq = 0;
		((__u8 *)th)[12] = 5 << 4;
		((__u8 *)th)[13] = 0x14; /* RST ACK */
		th->window = 0;
		th->check = 0;
		th->urg_ptr = 0;
		s = bpf_csum_diff(NULL, 0, (__be32 *)ip, 20, 0);
		ip->check = fold(s);
		struct {
			__be32 src, dst;
			__be16 zp, len;
		} ph = {ip->saddr, ip->daddr, bpf_htons(IPPROTO_TCP), bpf_htons(20)};
		s = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
		s = bpf_csum_diff(NULL, 0, (__be32 *)th, 20, s);
		th->check = fold(s);
		len = l2 + 40;
	} else {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return XDP_DROP;
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > end)
			return XDP_DROP;
		__u32 seq = bpf_ntohl(th->seq) + 1 + (bpf_ntohs(ip6->payload_len) - th->doff * 4) + th->fin;
		struct in6_addr a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		ip6->payload_len = bpf_htons(20);
		ip6->hop_limit = pp ? pp->ttl : 64;
		__be16 p = th->source;
		th->source = th->dest;
		th->dest = p;
		th->ack_seq = bpf_htonl(seq);
		th->seq = 0;
		((__u8 *)th)[12] = 5 << 4;
		((__u8 *)th)[13] = 0x14;
		th->window = 0;
		th->check = 0;
		th->urg_ptr = 0;
		struct {
			struct in6_addr src, dst;
			__be32 len, nh;
		} ph = {ip6->saddr, ip6->daddr, bpf_htonl(20), bpf_htonl(IPPROTO_TCP)};
		s = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
		s = bpf_csum_diff(NULL, 0, (__be32 *)th, 20, s);
		th->check = fold(s);
		len = l2 + 40 + 20;
	}
	int extra = (int)(end - data) - (int)len;
	if (extra > 0 && bpf_xdp_adjust_tail(ctx, -extra) != 0)
		return XDP_DROP;
	count(C_SYN_RESET);
	return XDP_TX;
}

static __always_inline int apply_policy(struct xdp_md *ctx, __u32 pol, int v6, __u32 l2, const struct personality *pp)
{
	if (pol == POL_RESET)
		return tcp_reset(ctx, v6, l2, pp);
	if (pol == POL_DROP) {
		count(C_SYN_DROP);
		return XDP_DROP;
	}
	return XDP_PASS;
}

#define MAX_OPT 40
#define ICMP_ECHOREPLY 0

/* nop_out overwrites an option of n (2, 3 or 10) bytes at TCP offset off with NOPs,
 * updating the checksum byte by byte (a byte at an even offset is the low half of a
 * little-endian loaded word). */
static __always_inline int nop_out(struct tcphdr *th, __u8 *p, void *end, __u32 off, __u8 n)
{
	if ((void *)(p + n) > end)
		return -1;
	__u16 sum = th->check;
#pragma unroll
	for (int j = 0; j < 10; j++) {
		if (j < n) {
			__u16 o = p[j];
			__u16 w = ((off + j) & 1) ? (o << 8) : o;
			__u16 nw = ((off + j) & 1) ? (1 << 8) : 1;
			csum16(&sum, w, nw);
			p[j] = 1;
		}
	}
	th->check = sum;
	return 0;
}

struct strip_ctx {
	struct xdp_md *ctx;
	__u32 toff;   /* TCP header offset in the frame */
	__u32 optlen; /* bytes of options */
	__u32 i;      /* next option */
	__u32 flags;  /* the persona's PERS_* */
	__u32 mss;    /* the client's MSS, 0 when absent */
};

/* strip_one looks at one option (a bpf_loop callback, so the verifier checks it once
 * rather than every path through up to 40 options). */
static long strip_one(__u32 n, void *arg)
{
	struct strip_ctx *c = arg;
	void *data = (void *)(long)c->ctx->data;
	void *end = (void *)(long)c->ctx->data_end;
	__u32 i = c->i;
	if (i >= c->optlen || i >= MAX_OPT)
		return 1;
	__u32 toff = c->toff;
	if (toff > 14 + 60)
		return 1;
	struct tcphdr *th = data + toff;
	if ((void *)(th + 1) > end)
		return 1;
	__u8 *p = (__u8 *)(th + 1) + (i & 63);
	if ((void *)(p + 1) > end)
		return 1;
	__u8 kind = p[0];
	if (kind == 0)
		return 1;
	if (kind == 1) {
		c->i = i + 1;
		return 0;
	}
	if ((void *)(p + 2) > end)
		return 1;
	__u8 l = p[1];
	if (l < 2 || i + l > c->optlen)
		return 1;
	__u32 off = 20 + (i & 63);
	if (kind == 2 && l == 4) {
		if ((void *)(p + 4) > end)
			return 1;
		c->mss = ((__u32)p[2] << 8) | p[3];
	} else if (kind == 8 && l == 10 && !(c->flags & PERS_TS)) {
		if (nop_out(th, p, end, off, 10) < 0)
			return 1;
		count(C_SYN_STRIPPED);
	} else if (kind == 4 && l == 2 && !(c->flags & PERS_SACK)) {
		if (nop_out(th, p, end, off, 2) < 0)
			return 1;
		count(C_SYN_STRIPPED);
	} else if (kind == 3 && l == 3 && !(c->flags & PERS_WS)) {
		if (nop_out(th, p, end, off, 3) < 0)
			return 1;
		count(C_SYN_STRIPPED);
	}
	c->i = i + l;
	return 0;
}

static __always_inline int handle_tcp(struct xdp_md *ctx, int v6, __u32 l2, const __u8 *src16, const __u8 *dst16,
				      struct tcphdr *th, void *end, struct prefix_info *pi, struct profile_ent *pe)
{
	if ((void *)(th + 1) > end)
		return XDP_PASS;
	int bare_fin = th->fin && !th->syn && !th->ack && !th->rst;
	int bare_ack = th->ack && !th->syn && !th->fin && !th->rst;
	if ((bare_fin || bare_ack) && pi && pe && pe->pers && !(pe->flags & EF_ALLPORTS)) {
		/* nmap T7 (FIN, PSH, URG to a closed port) and T6 (ACK to a closed port):
		 * silence for personas that give none. */
		__u32 k = pe->pers - 1;
		struct personality *fp = bpf_map_lookup_elem(&personas, &k);
		struct port_key fk = {.profile = pe->profile, .port = bpf_ntohs(th->dest)};
		__u32 want = bare_fin ? PERS_FIN_SILENT : PERS_ACK_SILENT;
		if (fp && (fp->flags & want) && !bpf_map_lookup_elem(&ports, &fk)) {
			count(C_SYN_DROP);
			return XDP_DROP;
		}
		return XDP_PASS;
	}
	if (!th->syn || th->ack || th->rst)
		return XDP_PASS;
	/* nmap's T3 probe and friends: SYN with FIN. */
	int synfin = th->fin;
	struct personality *pp = NULL;
	if (pi && pe && pe->pers) {
		__u32 k = pe->pers - 1;
		pp = bpf_map_lookup_elem(&personas, &k);
	}
	if (!pi || !pe) {
		/* The sensor's own address on a port it listens on for the hosts. */
		__u16 dport = bpf_ntohs(th->dest);
		if (bpf_map_lookup_elem(&locals, dst16) && bpf_map_lookup_elem(&listened, &dport))
			return apply_policy(ctx, policy_local, v6, l2, NULL);
		return XDP_PASS;
	}
	struct port_key pk = {.profile = pe->profile, .port = bpf_ntohs(th->dest)};
	if (!(pe->flags & EF_ALLPORTS) && !bpf_map_lookup_elem(&ports, &pk))
		return apply_policy(ctx, policy_closed, v6, l2, pp);
	if (!pp)
		return XDP_PASS;
	/* Flags byte 13: CWR ECE URG ACK PSH RST SYN FIN. Without ECN, a SYN asking for it
	 * (ECE+CWR) loses the request; with SYNFIN, SYN+FIN loses FIN, URG and PSH. */
	__u16 *fw = (__u16 *)((__u8 *)th + 12);
	__u16 oldw = *fw;
	__u8 *fl = (__u8 *)th + 13;
	if (!(pp->flags & PERS_ECN))
		*fl &= ~0xc0;
	if (synfin && (pp->flags & PERS_SYNFIN))
		*fl &= ~0x29;
	if (*fw != oldw)
		csum16(&th->check, oldw, *fw);
	struct strip_ctx sc = {.ctx = ctx, .toff = (void *)th - (void *)(long)ctx->data, .optlen = th->doff * 4,
			       .flags = pp->flags};
	sc.optlen = sc.optlen > 20 ? sc.optlen - 20 : 0;
	bpf_loop(MAX_OPT, strip_one, &sc, 0);
	__u16 mss = sc.mss;
	if (pp->flags & PERS_ECHOMSS) {
		struct flow_key fk = {.cport = th->source, .hport = th->dest};
		__builtin_memcpy(fk.client, src16, 16);
		__builtin_memcpy(fk.host, dst16, 16);
		bpf_map_update_elem(&flows, &fk, &mss, BPF_ANY);
	}
	return XDP_PASS;
}

SEC("xdp")
int xdp_kident(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		goto next;
	__u16 proto = eth->h_proto;
	void *l3 = eth + 1;
	__u32 l2 = ETH_HLEN;
	/* The hosts' link is untagged (vlan_id 0) or the 802.1Q VLAN vlan_id: frames of
	 * other VLANs (and QinQ) pass untouched. */
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;
		if ((void *)(vh + 1) > end)
			goto next;
		if (!vlan_id || proto != bpf_htons(ETH_P_8021Q) || (bpf_ntohs(vh->h_vlan_TCI) & VLAN_VID_MASK) != vlan_id) {
			count(C_VLAN_OTHER);
			goto next;
		}
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
		l2 = ETH_HLEN + VLAN_HLEN;
	} else if (vlan_id) {
		goto next;
	}
	if (proto == bpf_htons(ETH_P_ARP))
		return handle_arp(ctx, eth, l3, end);

	__u8 src16[16], dst16[16];
	void *l4;
	__u8 l4proto;
	int v6 = 0;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			goto next;
		map4(dst16, ip->daddr);
		map4(src16, ip->saddr);
		l4 = (void *)ip + ip->ihl * 4;
		l4proto = ip->protocol;
		if (ip->frag_off & bpf_htons(0x1fff))
			l4proto = 0; /* a later fragment: no L4 header */
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			goto next;
		__builtin_memcpy(dst16, &ip6->daddr, 16);
		__builtin_memcpy(src16, &ip6->saddr, 16);
		l4 = ip6 + 1;
		l4proto = ip6->nexthdr;
		v6 = 1;
		if (l4proto == IPPROTO_ICMPV6)
			return handle_nd(ctx, eth, ip6, end);
	} else {
		goto next;
	}
	struct prefix_info *pi = lookup(dst16);
	if (pi && bpf_map_lookup_elem(&locals, dst16))
		pi = NULL; /* the sensor's own address inside an emulated prefix */
	struct profile_ent *pe = NULL;
	if (pi) {
		__u8 mac[6];
		int have = host_of(pi, dst16, &pe, mac) == 0;
		if (edge(pi, dst16) || !pe || is_dark(dst16)) {
			count(is_dark(dst16) ? C_DARK_DROP : C_EDGE_DROP);
			if (policy_edge != POL_PASS)
				return XDP_DROP;
		}
		if ((pi->flags & PF_ONLINK) && have) {
			if (!(eth->h_dest[0] == mac[0] && eth->h_dest[1] == mac[1] && eth->h_dest[2] == mac[2] &&
			      eth->h_dest[3] == mac[3] && eth->h_dest[4] == mac[4] && eth->h_dest[5] == mac[5])) {
				count(C_MAC_MISMATCH);
				return XDP_DROP;
			}
			eth->h_dest[0] = dev_mac[0];
			eth->h_dest[1] = dev_mac[1];
			eth->h_dest[2] = dev_mac[2];
			eth->h_dest[3] = dev_mac[3];
			eth->h_dest[4] = dev_mac[4];
			eth->h_dest[5] = dev_mac[5];
			count(C_MAC_OK);
		}
	}
	if (l4proto == IPPROTO_TCP) {
		int r = handle_tcp(ctx, v6, l2, src16, dst16, l4, end, pi, pe);
		if (r != XDP_PASS)
			return r;
	}
next:
	bpf_tail_call(ctx, &chain, 0);
	return XDP_PASS;
}

/* ---- egress ---- */

#define NS 1000000000ULL

/* answer_ok charges len bytes to dst's answer bucket; 0: over it, drop. Not atomic: two
 * CPUs answering one destination at the same instant may both pass on the same tokens
 * (at most one packet each beyond the bound). */
static __always_inline int answer_ok(const __u8 *dst16, __u32 len)
{
	__u64 rate = answer_rate, burst = answer_burst, capns = answer_cap_ns;
	if (!rate)
		return 1;
	__u64 now = clock_ns;
	if (!now)
		now = bpf_ktime_get_coarse_ns();
	__u64 full = burst * NS, cost = (__u64)len * NS;
	struct answer_state *st = bpf_map_lookup_elem(&answers, dst16);
	if (!st) {
		struct answer_state init = {.tokens = full, .last = now};
		if (cost > full) {
			init.tokens = full;
			bpf_map_update_elem(&answers, dst16, &init, BPF_NOEXIST);
			return 0;
		}
		init.tokens = full - cost;
		bpf_map_update_elem(&answers, dst16, &init, BPF_NOEXIST);
		return 1;
	}
	__u64 el = now > st->last ? now - st->last : 0;
	if (el > capns)
		el = capns;
	__u64 t = st->tokens + el * rate;
	if (t > full)
		t = full;
	st->last = now;
	if (t < cost) {
		st->tokens = t;
		return 0;
	}
	st->tokens = t - cost;
	return 1;
}

/* answer_bucket decides a packet from an emulated host to dst16: packets a spoofed
 * request can elicit (UDP, ICMP, ICMPv6 other than neighbour discovery, TCP SYN-ACKs and
 * resets) are charged to the destination's bucket. TC_ACT_SHOT when over it. */
static __always_inline int answer_bucket(struct __sk_buff *skb, const __u8 *dst16, __u8 l4proto, __u32 toff)
{
	if (!answer_rate)
		return TC_ACT_OK;
	if (l4proto == IPPROTO_TCP) {
		__u8 fl;
		if (bpf_skb_load_bytes(skb, toff + 13, &fl, 1) < 0)
			return TC_ACT_OK;
		if ((fl & 0x12) != 0x12 && !(fl & 0x04))
			return TC_ACT_OK; /* neither SYN-ACK nor reset: a handshake was completed */
	} else if (l4proto == IPPROTO_ICMPV6) {
		__u8 ty;
		if (bpf_skb_load_bytes(skb, toff, &ty, 1) < 0)
			return TC_ACT_OK;
		if (ty >= 133 && ty <= 137)
			return TC_ACT_OK; /* neighbour discovery and router messages */
	} else if (l4proto != IPPROTO_UDP && l4proto != IPPROTO_ICMP) {
		return TC_ACT_OK;
	}
	__u32 len = skb->len;
	if (answer_ok(dst16, len)) {
		count(C_ANSWER_PASS);
		return TC_ACT_OK;
	}
	count(C_ANSWER_DROP);
	count_n(C_ANSWER_DROP_BYTES, len);
	return TC_ACT_SHOT;
}

static __always_inline int l4_word(struct __sk_buff *skb, __u32 csum_off, __u32 off, __u16 old, __u16 new)
{
	if (old == new)
		return 0;
	if (bpf_l4_csum_replace(skb, csum_off, old, new, 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, 2, 0);
}

/* synack rewrites a SYN-ACK's window, MSS and window scale. */
static __always_inline void synack(struct __sk_buff *skb, __u32 toff, __u32 doff, const struct personality *pp,
				   const __u8 *host16, const __u8 *client16, __be16 hport, __be16 cport)
{
	__u32 csum_off = toff + 16;
	__u16 old;
	if (bpf_skb_load_bytes(skb, toff + 14, &old, 2) < 0)
		return;
	if (pp->window)
		l4_word(skb, csum_off, toff + 14, old, bpf_htons(pp->window));
	__u16 mss = pp->mss;
	if (pp->flags & PERS_ECHOMSS) {
		struct flow_key fk = {.cport = cport, .hport = hport};
		__builtin_memcpy(fk.client, client16, 16);
		__builtin_memcpy(fk.host, host16, 16);
		__u16 *cm = bpf_map_lookup_elem(&flows, &fk);
		if (cm) {
			if (*cm && pp->band_to && *cm >= pp->band_lo && *cm <= pp->band_hi)
				mss = pp->band_to;
			else if (*cm && *cm < mss)
				mss = *cm;
			else if (!*cm && pp->mss_default)
				mss = pp->mss_default;
			bpf_map_delete_elem(&flows, &fk);
		}
	}
	if (doff <= 20 || doff > 60)
		goto done;
	/* Linux writes its SYN-ACK options in one order: MSS first; then SACK permitted
	 * and timestamps (or NOPs in their place); NOP and window scale last. */
	__u32 optlen = doff - 20;
	__u32 base = toff + 20;
	__u8 kl[4];
	if ((pp->flags & PERS_MSS) && optlen >= 4 && bpf_skb_load_bytes(skb, base, kl, 4) == 0 && kl[0] == 2 && kl[1] == 4) {
		__u16 o, nw = bpf_htons(mss);
		__builtin_memcpy(&o, kl + 2, 2);
		l4_word(skb, csum_off, base + 2, o, nw);
	}
	if ((pp->flags & PERS_WS) && optlen >= 8 && bpf_skb_load_bytes(skb, base + optlen - 4, kl, 4) == 0 && kl[0] == 1 &&
	    kl[1] == 3 && kl[2] == 3) {
		/* NOP, kind, length, shift: the shift is the low byte of the last word. */
		__u16 o, nw;
		__builtin_memcpy(&o, kl + 2, 2);
		kl[3] = pp->wscale;
		__builtin_memcpy(&nw, kl + 2, 2);
		l4_word(skb, csum_off, base + optlen - 2, o, nw);
	}
done:
	count(C_TC_SYNACK);
}

#define MAX_QUOTE 64
#define ICMP_BUF (8 + 60 + MAX_QUOTE)

/* icmp_quote shortens an ICMP error (unreachable, time exceeded, parameter problem) to
 * the offending datagram's IP header plus quote bytes, fixing the lengths and checksums. */
static __always_inline void icmp_quote(struct __sk_buff *skb, __u32 l2, __u32 toff, __u16 quote, int zerock)
{
	__u8 ic[12];
	if (quote > MAX_QUOTE || toff != l2 + 20)
		return;
	if (bpf_skb_load_bytes(skb, toff, ic, 12) < 0)
		return;
	if (ic[0] != 3 && ic[0] != 11 && ic[0] != 12)
		return;
	__u32 inner = (ic[8] & 0xf) * 4;
	if (inner < 20 || inner > 60)
		return;
	__u32 icmp_len = 8 + inner + quote;
	__u32 new_len = toff + icmp_len;
	if (new_len >= skb->len)
		return;
	if (bpf_skb_change_tail(skb, new_len, 0) < 0)
		return;
	__be16 old_tot, new_tot = bpf_htons(new_len - l2);
	if (bpf_skb_load_bytes(skb, l2 + 2, &old_tot, 2) < 0)
		return;
	bpf_l3_csum_replace(skb, l2 + 10, old_tot, new_tot, 2);
	bpf_skb_store_bytes(skb, l2 + 2, &new_tot, 2, 0);
	/* The ICMP checksum over the shortened message, zero-padded to 4 bytes. */
	__u8 buf[ICMP_BUF] = {};
	__u32 n = icmp_len;
	if (n < 8 || n > ICMP_BUF)
		return;
	if (bpf_skb_load_bytes(skb, toff, buf, n) < 0)
		return;
	buf[2] = 0;
	buf[3] = 0;
	if (zerock) {
		/* The quoted IP header's checksum, and a quoted UDP header's. */
		buf[8 + 10] = 0;
		buf[8 + 11] = 0;
		bpf_skb_store_bytes(skb, toff + 8 + 10, buf + 8 + 10, 2, 0);
		if (buf[8 + 9] == IPPROTO_UDP && quote >= 8 && inner <= 60) {
			__u32 uo = 8 + inner + 6;
			if (uo + 2 <= ICMP_BUF) {
				buf[uo] = 0;
				buf[uo + 1] = 0;
				bpf_skb_store_bytes(skb, toff + uo, buf + uo, 2, 0);
			}
		}
	}
	__u32 n4 = (n + 3) & ~3U;
	if (n4 > ICMP_BUF || n4 < 4)
		return;
	__s64 sum = bpf_csum_diff(NULL, 0, (__be32 *)buf, n4, 0);
	if (sum < 0)
		return;
	__u16 c = fold(sum);
	bpf_skb_store_bytes(skb, toff + 2, &c, 2, 0);
}

/* tcp_port_open reports whether a host's TCP port (network order) is one its profile
 * serves. */
static __always_inline int tcp_port_open(const struct profile_ent *pe, __be16 port)
{
	if (pe->flags & EF_ALLPORTS)
		return 1;
	struct port_key pk = {.profile = pe->profile, .port = bpf_ntohs(port)};
	return bpf_map_lookup_elem(&ports, &pk) != NULL;
}

SEC("tc")
int tc_kident(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	__u16 proto = eth->h_proto;
	__u32 l2 = ETH_HLEN;
	/* The VLAN: in the skb (the usual case, a VLAN device's frames on its parent) or
	 * inline (a device without VLAN offload, or reorder_hdr off). */
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = (void *)(eth + 1);
		if ((void *)(vh + 1) > end || skb->vlan_present || proto != bpf_htons(ETH_P_8021Q) ||
		    (bpf_ntohs(vh->h_vlan_TCI) & VLAN_VID_MASK) != vlan_id || !vlan_id)
			return TC_ACT_OK;
		proto = vh->h_vlan_encapsulated_proto;
		l2 = ETH_HLEN + VLAN_HLEN;
	} else if (skb->vlan_present ? (skb->vlan_tci & VLAN_VID_MASK) != vlan_id || !vlan_id : vlan_id != 0) {
		return TC_ACT_OK;
	}
	__u8 src16[16], dst16[16];
	struct prefix_info *pi;
	__u8 mac[6];

	if (proto == bpf_htons(ETH_P_ARP)) {
		/* The kernel asking from an emulated address: the host's MAC asks. */
		struct arphdr4 *a = data + l2;
		if ((void *)(a + 1) > end || a->plen != 4 || a->hlen != 6)
			return TC_ACT_OK;
		__u32 s4;
		__builtin_memcpy(&s4, a->spa, 4);
		map4(src16, s4);
		pi = lookup(src16);
		struct profile_ent *ape;
		if (!pi || !(pi->flags & PF_ONLINK) || bpf_map_lookup_elem(&locals, src16) || host_of(pi, src16, &ape, mac) != 0)
			return TC_ACT_OK;
		bpf_skb_store_bytes(skb, ETH_ALEN, mac, 6, 0);
		bpf_skb_store_bytes(skb, l2 + 8, mac, 6, 0);
		count(C_TC_MAC);
		return TC_ACT_OK;
	}
	__u32 toff;
	__u8 l4proto;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + l2;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return TC_ACT_OK;
		map4(src16, ip->saddr);
		map4(dst16, ip->daddr);
		toff = l2 + ip->ihl * 4;
		l4proto = ip->protocol;
		if (ip->frag_off & bpf_htons(0x1fff))
			l4proto = 0; /* a later fragment: no L4 header */
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l2;
		if ((void *)(ip6 + 1) > end)
			return TC_ACT_OK;
		__builtin_memcpy(src16, &ip6->saddr, 16);
		__builtin_memcpy(dst16, &ip6->daddr, 16);
		toff = l2 + sizeof(*ip6);
		l4proto = ip6->nexthdr;
	} else {
		return TC_ACT_OK;
	}
	pi = lookup(src16);
	if (!pi || bpf_map_lookup_elem(&locals, src16))
		return TC_ACT_OK;
	struct profile_ent *pe;
	int have = host_of(pi, src16, &pe, mac) == 0;
	if (!pe)
		return TC_ACT_OK;
	if (answer_bucket(skb, dst16, l4proto, toff) != TC_ACT_OK)
		return TC_ACT_SHOT;
	if ((pi->flags & PF_ONLINK) && have) {
		bpf_skb_store_bytes(skb, ETH_ALEN, mac, 6, 0);
		count(C_TC_MAC);
	}
	if (!pe->pers)
		return TC_ACT_OK;
	__u32 pk = pe->pers - 1;
	struct personality *pp = bpf_map_lookup_elem(&personas, &pk);
	if (!pp)
		return TC_ACT_OK;
	count(C_TC_PERSONA);
	if (toff > 120)
		return TC_ACT_OK;
	/* The TCP header's first 20 bytes (ports and flags), when there is one. */
	__u8 th[20];
	int have_th = l4proto == IPPROTO_TCP && bpf_skb_load_bytes(skb, toff, th, 20) == 0;
	__u8 ttl = pp->ttl;
	if (have_th && pp->ttl_open) {
		__be16 hport;
		__builtin_memcpy(&hport, th, 2);
		if (tcp_port_open(pe, hport))
			ttl = pp->ttl_open;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		struct iphdr *ip = data + l2;
		if ((void *)(ip + 1) > end)
			return TC_ACT_OK;
		int later = ip->frag_off & bpf_htons(0x1fff);
		/* TTL (with protocol: one word), flags+fragment offset, identification. */
		__u16 old_tp = *(__u16 *)&ip->ttl;
		__u16 old_fo = ip->frag_off;
		__u16 old_id = ip->id;
		__u16 new_tp = old_tp;
		((__u8 *)&new_tp)[0] = ttl;
		int df = (pp->flags & PERS_DF) && !(l4proto == IPPROTO_ICMP && (pp->flags & PERS_ICMP_NODF)) &&
			 !(have_th && (th[13] & 0x04) && (pp->flags & PERS_RST_NODF));
		__u16 new_fo = df ? (old_fo | bpf_htons(0x4000)) : (old_fo & ~bpf_htons(0x4000));
		__u16 new_id = old_id;
		__u8 mode = pp->ipid;
		if (l4proto == IPPROTO_ICMP && pp->icmp_ipid)
			mode = pp->icmp_ipid;
		if (!later) {
			switch (mode) {
			case IPID_INC:
			case IPID_INC_SWAPPED: {
				__u32 segs = skb->gso_segs ? skb->gso_segs : 1;
				__u32 *c = bpf_map_lookup_elem(&ipids, src16);
				if (!c) {
					__u32 start = bpf_get_prandom_u32();
					bpf_map_update_elem(&ipids, src16, &start, BPF_NOEXIST);
					c = bpf_map_lookup_elem(&ipids, src16);
				}
				if (c) {
					/* Not atomic with the read: two CPUs sending for one host at
					 * the same instant may repeat an ID, as real stacks under
					 * load do. */
					new_id = mode == IPID_INC ? bpf_htons((__u16)*c) : (__u16)*c;
					__sync_fetch_and_add(c, segs);
				}
				break;
			}
			case IPID_ZERO:
				new_id = 0;
				break;
			case IPID_RANDOM:
				new_id = (__u16)bpf_get_prandom_u32();
				break;
			}
		}
		__u32 csum = l2 + 10;
		if (old_tp != new_tp) {
			bpf_l3_csum_replace(skb, csum, old_tp, new_tp, 2);
			bpf_skb_store_bytes(skb, l2 + 8, &new_tp, 2, 0);
		}
		if (old_fo != new_fo) {
			bpf_l3_csum_replace(skb, csum, old_fo, new_fo, 2);
			bpf_skb_store_bytes(skb, l2 + 6, &new_fo, 2, 0);
		}
		if (old_id != new_id) {
			bpf_l3_csum_replace(skb, csum, old_id, new_id, 2);
			bpf_skb_store_bytes(skb, l2 + 4, &new_id, 2, 0);
		}
		if (later)
			return TC_ACT_OK;
	} else {
		bpf_skb_store_bytes(skb, l2 + 7, &ttl, 1, 0);
	}
	if (have_th) {
		__u8 flags = th[13];
		if ((flags & 0x04) && (pp->flags & PERS_RST_WINDOW)) {
			__be16 hport;
			__builtin_memcpy(&hport, th, 2);
			if (tcp_port_open(pe, hport)) {
				__u16 ow, nw = bpf_htons(pp->window);
				__builtin_memcpy(&ow, th + 14, 2);
				l4_word(skb, toff + 16, toff + 14, ow, nw);
			}
		}
		if ((flags & 0x12) == 0x12) { /* SYN+ACK */
			__be16 hport, cport;
			__builtin_memcpy(&hport, th, 2);
			__builtin_memcpy(&cport, th + 2, 2);
			synack(skb, toff, (th[12] >> 4) * 4, pp, src16, dst16, hport, cport);
		}
	} else if (l4proto == IPPROTO_ICMP && proto == bpf_htons(ETH_P_IP) && pp->quote) {
		icmp_quote(skb, l2, toff, pp->quote, pp->flags & PERS_QUOTE_ZEROCK);
	}
	if (l4proto == IPPROTO_ICMP && proto == bpf_htons(ETH_P_IP) && (pp->flags & PERS_ECHOCODE0)) {
		__u8 ic[2];
		if (bpf_skb_load_bytes(skb, toff, ic, 2) < 0)
			return TC_ACT_OK;
		if (ic[0] == ICMP_ECHOREPLY && ic[1] != 0) {
			__u16 o, nw;
			__builtin_memcpy(&o, ic, 2);
			ic[1] = 0;
			__builtin_memcpy(&nw, ic, 2);
			l4_word(skb, toff + 2, toff, o, nw);
		}
	}
	return TC_ACT_OK;
}

char __license[] SEC("license") = "Dual BSD/GPL";

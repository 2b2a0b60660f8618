// Package bpf holds icsnare's XDP rate limiter for UDP services: the C program, its
// generated Go bindings (committed, so building needs no clang), the loader, map
// readers, notifications and a Prometheus collector.
package bpf

//go:generate go tool bpf2go -tags linux -target bpfel -type rule -type pattern -type matcher -type gstate -type src_key -type src_state -type counter -type event ratelimit ratelimit.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -tags linux -target bpfel -type prefix_info -type personality -type port_key -type addr_key -type flow_key kident kident.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu

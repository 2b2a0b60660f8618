package bpf

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The "known" bitmap (see ratelimit.c): KNOWN_BITS bits per half, two halves.
const (
	knownBits  = 1 << 18
	knownWords = knownBits / 64
)

// knownBitmap is the memory-mapped known map.
type knownBitmap struct {
	mem   []byte
	words []uint64 // 2*knownWords
}

func mapKnown(fd int) (*knownBitmap, error) {
	mem, err := unix.Mmap(fd, 0, 2*knownWords*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("xdp: mmap known bitmap: %w", err)
	}
	return &knownBitmap{mem: mem, words: unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), 2*knownWords)}, nil
}

func (kb *knownBitmap) close() {
	if kb != nil && kb.mem != nil {
		_ = unix.Munmap(kb.mem)
		kb.mem, kb.words = nil, nil
	}
}

// knownBit is known_bit() in ratelimit.c.
func knownBit(k *ratelimitSrcKey) uint32 {
	const m = 0xff51afd7ed558ccd
	h := uint64(0x9e3779b97f4a7c15)
	h = (h ^ uint64(uint32(k.Port)|uint32(k.Family)<<16|uint32(k.Class)<<24)) * m
	for i := 0; i < 4; i++ {
		h = (h ^ uint64(binary.LittleEndian.Uint32(k.Addr[4*i:]))) * m
	}
	h ^= h >> 33
	return uint32(h & (knownBits - 1))
}

func (kb *knownBitmap) has(half uint32, k *ratelimitSrcKey) bool {
	b := knownBit(k)
	return atomic.LoadUint64(&kb.words[half*knownWords+b/64])>>(b%64)&1 == 1
}

// rebuildKnown rebuilds the half the program does not read from the per-source
// table's known sources (answered at least twice), then makes the program read it.
// Sources that become known meanwhile are marked in both halves by the program
// itself, so no known source loses its bit.
func (l *Limiter) rebuildKnown() error {
	var active uint32
	if err := l.objs.KnownHalf.Get(&active); err != nil {
		return fmt.Errorf("xdp: known half: %w", err)
	}
	next := (active & 1) ^ 1
	words := l.known.words[next*knownWords : (next+1)*knownWords]
	for i := range words {
		atomic.StoreUint64(&words[i], 0)
	}
	err := l.walkSources(func(k *ratelimitSrcKey, st *ratelimitSrcState) {
		if st.Passed < 2 {
			return // answered once at most: not known (ratelimit.c)
		}
		b := knownBit(k)
		atomic.OrUint64(&words[b/64], 1<<(b%64))
	})
	if err != nil {
		return err // the program keeps reading the complete old half
	}
	if err := l.objs.KnownHalf.Set(next); err != nil {
		return fmt.Errorf("xdp: known half: %w", err)
	}
	return nil
}

package main

import (
	"os"
	"testing"
	"time"
)

func TestCPUSampleSince(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name           string
		earlier, later cpuSample
		want           time.Duration
	}{
		{"threads' nanoseconds",
			cpuSample{total: 100 * ms, threads: map[int]time.Duration{1: 60*ms + 1, 2: 40 * ms}},
			cpuSample{total: 130 * ms, threads: map[int]time.Duration{1: 75*ms + 4, 2: 52*ms + 500}},
			27*ms + 503},
		{"a thread started since counts whole",
			cpuSample{total: 100 * ms, threads: map[int]time.Duration{1: 100 * ms}},
			cpuSample{total: 110 * ms, threads: map[int]time.Duration{1: 105 * ms, 7: 3 * ms}},
			8 * ms},
		{"a thread exited: the process total",
			cpuSample{total: 100 * ms, threads: map[int]time.Duration{1: 50 * ms, 2: 50 * ms}},
			cpuSample{total: 140 * ms, threads: map[int]time.Duration{1: 70 * ms}},
			40 * ms},
		{"threads unreadable: the process total",
			cpuSample{total: 100 * ms},
			cpuSample{total: 120 * ms, threads: map[int]time.Duration{1: 1}},
			20 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.later.since(tt.earlier); got != tt.want {
				t.Errorf("since = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"123456789 2000 31\n", 123456789, false},
		{"0 0 0", 0, false},
		{"1 2", 0, true},
		{"x 2 3", 0, true},
		{"-5 2 3", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSchedstat([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSchedstat(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestProcCPUOwnProcess samples this process around some work: its threads are read,
// their sum moves on, and it agrees with the process total within a few of the total's 10 ms units
// and what the Go runtime's other threads did meanwhile.
func TestProcCPUOwnProcess(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(before.threads) == 0 {
		t.Fatal("no threads read")
	}
	x := uint64(1)
	for i := 0; i < 50_000_000; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if x == 0 {
		t.Log(x) // keeps the loop
	}
	d := after.since(before)
	if d <= 0 {
		t.Fatalf("since = %v after the work", d)
	}
	if tot := after.total - before.total; d < tot-50*time.Millisecond || d > tot+50*time.Millisecond {
		t.Errorf("threads' sum %v, process total %v: more apart than the total's resolution", d, tot)
	}
}

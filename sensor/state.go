package sensor

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icsnare/icsnare/state"
)

// DefaultStateDir is where `icsnare run` keeps its seed and host state unless told otherwise.
const DefaultStateDir = "/var/lib/icsnare"

// StateConfig is the [state] section: the directory that keeps the deployment seed, the
// hosts' boot record and what attackers changed on each host.
type StateConfig struct {
	// Dir is the state directory; "" keeps nothing (a random seed per process unless
	// seed is set; writes live as long as the host stays in memory).
	Dir string `toml:"dir"`
	// OnRestart is "continue" (hosts' uptimes go on across restarts) or "reboot" (every
	// host looks freshly rebooted after a restart: uptime near 0, snmpEngineBoots + 1).
	OnRestart    string `toml:"on_restart"`
	MaxHostBytes int    `toml:"max_host_bytes"` // kept bytes per host (keys and values)
	MaxHostKeys  int    `toml:"max_host_keys"`  // kept keys per host
	MaxBytes     int64  `toml:"max_bytes"`      // kept bytes in total; past it writes are refused
	Queue        int    `toml:"queue"`          // writes waiting for the disk; past it writes are refused
}

func (c StateConfig) validate() error {
	switch c.OnRestart {
	case "", "continue", "reboot":
	default:
		return fmt.Errorf("state.on_restart %q: want continue or reboot", c.OnRestart)
	}
	if c.MaxHostBytes < 0 || c.MaxHostKeys < 0 || c.MaxBytes < 0 || c.Queue < 0 {
		return errors.New("state: bounds must not be negative")
	}
	return nil
}

func (c StateConfig) limits() state.Limits {
	return state.Limits{HostBytes: c.MaxHostBytes, HostKeys: c.MaxHostKeys, TotalBytes: c.MaxBytes, Queue: c.Queue}
}

// bootRecord is the deployment's boot history, kept in the store: hosts' boot times derive
// from it and their seeds, so no per-host record is needed for uptimes to continue.
type bootRecord struct {
	Epoch    time.Time `json:"epoch"`             // the deployment's first start
	Boots    int64     `json:"boots"`             // restarts made to look like reboots
	Rebooted time.Time `json:"rebooted,omitzero"` // the last such restart
}

const bootKey = "boot"

// CheckState validates the state directory the way run would use it, changing nothing.
func CheckState(cfg Config) error {
	if cfg.State.Dir == "" {
		return nil
	}
	return state.Check(cfg.State.Dir)
}

// openState prepares the state directory (created owner-only and handed to the run user,
// before privileges drop), reads or generates the seed and opens the store. With no
// directory, it returns a nil store and a seed that lasts for this process.
func openState(cfg Config, log *slog.Logger) (*state.Store, string, bootRecord, error) {
	now := time.Now()
	boot := bootRecord{Epoch: now}
	dir := cfg.State.Dir
	if dir == "" {
		seed := cfg.Seed
		if seed == "" {
			var b [32]byte
			rand.Read(b[:])
			seed = fmt.Sprintf("%x", b)
			log.Warn("no seed and no state directory: host identities change at every restart")
		}
		return nil, seed, boot, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", boot, fmt.Errorf("state directory: %w", err)
	}
	seed := cfg.Seed
	if seed == "" {
		s, created, err := state.LoadSeed(dir, rand.Read)
		if err != nil {
			return nil, "", boot, err
		}
		if created {
			log.Info("generated the deployment seed", "file", filepath.Join(dir, state.SeedFile))
		}
		seed = s
	}
	st, err := state.Open(dir, cfg.State.limits(), log)
	if err != nil {
		return nil, "", boot, err
	}
	fail := func(err error) (*state.Store, string, bootRecord, error) {
		st.Close()
		return nil, "", boot, err
	}
	if b, ok, err := st.GetMeta(bootKey); err != nil {
		return fail(err)
	} else if ok {
		if err := json.Unmarshal(b, &boot); err != nil || boot.Epoch.IsZero() {
			log.Warn("state: boot record unreadable; starting a new one", "err", err)
			boot = bootRecord{Epoch: now}
		} else if cfg.State.OnRestart == "reboot" {
			boot.Boots++
			boot.Rebooted = now
		}
	}
	b, _ := json.Marshal(boot)
	if err := st.PutMeta(bootKey, b); err != nil {
		return fail(err)
	}
	if err := chownState(dir, cfg.Privileges.User, cfg.Privileges.Group); err != nil {
		return fail(err)
	}
	log.Info("state", "dir", dir, "boot_epoch", boot.Epoch.UTC().Format(time.RFC3339), "boots", boot.Boots,
		"hosts_kept", st.Stats().Hosts)
	return st, seed, boot, nil
}

// chownState gives the state directory and its files to the user privileges drop to, so
// the sensor can still write them afterwards. It does nothing unless running as root.
func chownState(dir, userName, groupName string) error {
	if os.Geteuid() != 0 || userName == "" || userName == "root" {
		return nil
	}
	u, err := user.Lookup(userName)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	gidStr := u.Gid
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		gidStr = g.Gid
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(gidStr)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	for _, p := range []string{dir, filepath.Join(dir, state.SeedFile), filepath.Join(dir, state.DBFile)} {
		if err := os.Lchown(p, uid, gid); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	return nil
}

// stateMetrics exports the store's counters at scrape time.
func (m *metrics) stateMetrics(st *state.Store) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "icsnare_state_writes_total",
		Help: "Host state writes committed to the state directory."}, func() float64 { return float64(st.Stats().Written) }))
	for _, reason := range state.Reasons {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "icsnare_state_writes_refused_total",
			Help:        "Host state writes not kept: queue_full, host_full (max_host_bytes, max_host_keys), store_full (max_bytes).",
			ConstLabels: prometheus.Labels{"reason": reason}}, func() float64 { return float64(st.Refused(reason)) }))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icsnare_state_bytes",
		Help: "Bytes of host state kept."}, func() float64 { return float64(st.Stats().Bytes) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icsnare_state_hosts",
		Help: "Hosts with kept state."}, func() float64 { return float64(st.Stats().Hosts) }))
}

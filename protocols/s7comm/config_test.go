package s7comm

import (
	"testing"

	"github.com/icsnare/icsnare/protocols/protocoltest"
)

func TestDefaultProfileConfig(t *testing.T) {
	p := protocoltest.Profile(t, "default")
	svc := protocoltest.Configure(t, protocol{}, p).(*Service)
	cfg := svc.Config()
	if cfg.PDUSize != 240 || cfg.Rack != 0 || cfg.Slot != 2 || cfg.Mode != ModeRun {
		t.Fatalf("cpu knobs: %+v", cfg)
	}
	if len(cfg.Ident11) != 3 || len(cfg.Ident1C) != 8 {
		t.Fatalf("identity records: %v %v", cfg.Ident11, cfg.Ident1C)
	}
	if a := cfg.area(AreaDB, 1); a == nil || a.Size != 128 || a.Format != FormatWords {
		t.Fatalf("DB1: %+v", a)
	}
	if cfg.block(BlockDB, 10) == nil || cfg.block(BlockOB, 1) == nil {
		t.Fatalf("blocks: %v", cfg.Blocks)
	}
}

package protocols

import (
	"strings"
	"testing"

	"github.com/icsnare/icsnare/profiles"
)

// optProto is a Configurable test protocol with one repeatable flag.
type optProto struct {
	name  string
	flags []string
}

type optValues struct {
	Words []string `toml:"words"`
}

func (p optProto) Name() string { return p.name }
func (optProto) Configure(*profiles.Section, any) (Service, error) {
	return nil, nil
}
func (optProto) NewOptions() any { return &optValues{} }
func (p optProto) Flags() []Flag {
	var out []Flag
	for _, f := range p.flags {
		out = append(out, Flag{Name: f, Key: "words", Usage: "a `word`", Set: func(o any, v string) error {
			o.(*optValues).Words = append(o.(*optValues).Words, v)
			return nil
		}})
	}
	return out
}

func TestOptionsRegistry(t *testing.T) {
	Register(optProto{name: "opttest-a", flags: []string{"opttest-word"}})
	opts, err := NewOptions("opttest-a")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, f := range Flags() {
		if f.Protocol == "opttest-a" && f.Name == "opttest-word" {
			found = true
			if err := f.Set(opts, "x"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !found || len(opts.(*optValues).Words) != 1 {
		t.Fatalf("flag not listed or not applied: %v %+v", found, opts)
	}
	if _, err := NewOptions("opttest-none"); err == nil || !strings.Contains(err.Error(), `no protocol "opttest-none"`) {
		t.Fatalf("unknown protocol: err = %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "both declare the flag -opttest-word") {
				t.Errorf("a second protocol with the same flag: recover() = %v", r)
			}
		}()
		Register(optProto{name: "opttest-b", flags: []string{"opttest-word"}})
	}()
}

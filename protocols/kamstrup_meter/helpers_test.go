package kamstrupmeter

import (
	"os"
	"testing"

	"github.com/icsnare/icsnare/profiles"
)

// templateDir is Conpot's kamstrup_382 template, regenerated (testdata/conpot/README.md).
const templateDir = "../../testdata/conpot/kamstrup_382"

// loadTemplate loads the kamstrup_382 template unchanged through profiles.Load.
func loadTemplate(t testing.TB) *profiles.Profile {
	t.Helper()
	p, err := profiles.Load(os.DirFS(templateDir), "kamstrup_382", templateDir)
	if err != nil {
		t.Fatal(err)
	}
	if w := p.Warnings(); len(w) > 0 {
		t.Fatalf("template warnings: %v", w)
	}
	return p
}

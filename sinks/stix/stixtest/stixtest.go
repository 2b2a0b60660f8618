// Package stixtest validates STIX 2.1 bundles in tests against the OASIS STIX 2.1 JSON
// schemas kept under sinks/stix/testdata/schemas (BSD licence, see the LICENSE there).
package stixtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaBase is the $id prefix of the OASIS schemas.
const schemaBase = "http://raw.githubusercontent.com/oasis-open/cti-stix2-json-schemas/stix2.1/schemas/"

// Validator checks STIX 2.1 bundles and objects.
type Validator struct {
	bundle *jsonschema.Schema
	byType map[string]*jsonschema.Schema
}

func schemaDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "schemas")
}

var (
	once   sync.Once
	shared *Validator
	err    error
)

// New returns the validator of the schemas (formats asserted), compiled once per test
// binary, or fails t.
func New(t testing.TB) *Validator {
	t.Helper()
	once.Do(func() { shared, err = compile() })
	if err != nil {
		t.Fatal(err)
	}
	return shared
}

func compile() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	dir := schemaDir()
	types := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rel, _ := filepath.Rel(dir, path)
		url := schemaBase + filepath.ToSlash(rel)
		if err := c.AddResource(url, doc); err != nil {
			return err
		}
		if sub := filepath.Dir(rel); sub == "sdos" || sub == "sros" || sub == "observables" {
			types[strings.TrimSuffix(filepath.Base(rel), ".json")] = url
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading the STIX schemas: %w", err)
	}
	v := &Validator{byType: map[string]*jsonschema.Schema{}}
	if v.bundle, err = c.Compile(schemaBase + "common/bundle.json"); err != nil {
		return nil, fmt.Errorf("compiling the bundle schema: %w", err)
	}
	for typ, url := range types {
		if v.byType[typ], err = c.Compile(url); err != nil {
			return nil, fmt.Errorf("compiling %s: %w", url, err)
		}
	}
	return v, nil
}

// Bundle validates raw as a bundle, and each of its objects against its type's schema
// (which names the failing object more clearly than the bundle's anyOf does).
func (v *Validator) Bundle(raw []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("bundle is not JSON: %w", err)
	}
	if err := v.bundle.Validate(inst); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	objs, _ := inst.(map[string]any)["objects"].([]any)
	for i, o := range objs {
		if err := v.Object(o); err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
	}
	return nil
}

// Object validates one decoded object (from jsonschema.UnmarshalJSON or encoding/json
// with UseNumber) against the schema of its type.
func (v *Validator) Object(o any) error {
	m, ok := o.(map[string]any)
	if !ok {
		return fmt.Errorf("not an object")
	}
	typ, _ := m["type"].(string)
	s, ok := v.byType[typ]
	if !ok {
		return fmt.Errorf("no schema for type %q", typ)
	}
	if err := s.Validate(o); err != nil {
		return fmt.Errorf("%s %v: %w", typ, m["id"], err)
	}
	return nil
}

package packaging

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/events"
	"github.com/icsnare/icsnare/protocols"
	_ "github.com/icsnare/icsnare/protocols/all"
	"github.com/icsnare/icsnare/sensor"
	_ "github.com/icsnare/icsnare/sinks/all"
)

// tomlKeys lists the dotted TOML keys of t's fields: nested structs are tables, everything
// else (durations, sizes, maps, lists of scalars) a key; lists of structs are arrays of
// tables whose keys count too.
func tomlKeys(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		key := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		_, text := reflect.PointerTo(ft).MethodByName("UnmarshalText")
		_, tomlU := reflect.PointerTo(ft).MethodByName("UnmarshalTOML")
		if ft.Kind() == reflect.Struct && !text && !tomlU {
			out[key] = true // the table itself
			tomlKeys(ft, key+".", out)
			continue
		}
		out[key] = true
	}
}

var (
	tableRe = regexp.MustCompile(`^#?\s*\[\[?([a-z0-9_.]+)\]\]?`)
	keyRe   = regexp.MustCompile(`^#?\s*([a-z_][a-z0-9_]*)\s*=`)
)

// fileKeys lists the dotted keys packaging/icsnare.toml names, set or commented out.
func fileKeys(text string) map[string]bool {
	out := map[string]bool{}
	table := ""
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if m := tableRe.FindStringSubmatch(line); m != nil {
			table = m[1]
			out[table] = true
			continue
		}
		if m := keyRe.FindStringSubmatch(line); m != nil {
			if table == "" {
				out[m[1]] = true
			} else {
				out[table+"."+m[1]] = true
			}
		}
	}
	return out
}

// TestExampleConfigNamesEveryOption checks that packaging/icsnare.toml loads and names
// every option of the sensor, of every protocol's [protocols.<name>] table and of every
// sink kind's [sinks.<kind>] table.
func TestExampleConfigNamesEveryOption(t *testing.T) {
	raw, err := os.ReadFile("icsnare.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sensor.LoadConfig("icsnare.toml"); err != nil {
		t.Fatalf("icsnare.toml does not load: %v", err)
	}
	want := map[string]bool{}
	tomlKeys(reflect.TypeOf(sensor.Config{}), "", want)
	for _, name := range protocols.Names() {
		opts, err := protocols.NewOptions(name)
		if err != nil {
			t.Fatal(err)
		}
		if opts != nil {
			want["protocols."+name] = true
			tomlKeys(reflect.TypeOf(opts), "protocols."+name+".", want)
		}
	}
	for _, name := range events.Names() {
		opts, err := events.NewOptions(name)
		if err != nil {
			t.Fatal(err)
		}
		want["sinks."+name] = true
		tomlKeys(reflect.TypeOf(opts), "sinks."+name+".", want)
	}
	have := fileKeys(string(raw))
	var missing []string
	for k := range want {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("icsnare.toml does not name %d options: %s", len(missing), strings.Join(missing, ", "))
	}
	t.Logf("%d options, all named", len(want))
}
